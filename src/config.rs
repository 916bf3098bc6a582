//! `yujing.toml`: where pipelines and schemas live, the PII key, and for replay
//! the input files and output directory. Paths are relative to the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Diagnostic, Diagnostics, Error, Result, line_col};

/// Environment variable holding the secret behind PII pseudonyms.
pub const PII_KEY_ENV: &str = "YUJING_PII_KEY";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of pipeline files; the shipped pipelines when absent.
    pub pipelines: Option<PathBuf>,
    /// Directory of schema files that add to or replace the shipped ones.
    pub schemas: Option<PathBuf>,
    /// Largest record accepted, in bytes.
    pub max_record_bytes: Option<usize>,
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Routing table for response tasks; the shipped one when absent.
    pub routing: Option<PathBuf>,
    /// Residents per district (the `district_population` table); default: the generator's districts.
    pub population: Option<BTreeMap<String, i64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Feed name → JSON-lines file.
    #[serde(default)]
    pub inputs: BTreeMap<String, PathBuf>,
    pub out: Option<PathBuf>,
    /// Task updates applied during the replay.
    pub task_updates: Option<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map_or((0, 0), |s| line_col(&text, s.start));
            Error::Invalid(Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                line,
                col,
                message: e.message().trim().to_string(),
            }]))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        config.pipelines.as_mut().map(rebase);
        config.schemas.as_mut().map(rebase);
        config.replay.out.as_mut().map(rebase);
        config.replay.task_updates.as_mut().map(rebase);
        config.routing.as_mut().map(rebase);
        config.replay.inputs.values_mut().for_each(rebase);
        Ok(config)
    }
}

/// The PII secret from the environment, or a fixed development secret (with a warning).
pub fn pii_secret() -> String {
    match std::env::var(PII_KEY_ENV) {
        Ok(s) if !s.is_empty() => s,
        _ => {
            tracing::warn!("{PII_KEY_ENV} is not set; PII pseudonyms use the development key");
            "yujing-development-key".to_string()
        }
    }
}
