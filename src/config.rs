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
    /// Longest string value accepted (a list counts all its items), in bytes.
    pub max_field_bytes: Option<usize>,
    /// How far ahead of the processing clock an event may be dated (default 5m);
    /// later ones are dead letters `future`.
    pub max_future: Option<String>,
    /// Largest alert, task event or dead letter written, in bytes (default
    /// 256 KiB, below Kafka's 1,000,000-byte `message.max.bytes`); longer string
    /// values are cut with a marker.
    pub max_output_bytes: Option<usize>,
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Routing table for response tasks; the shipped one when absent.
    pub routing: Option<PathBuf>,
    /// `yujing run`: the Kafka cluster, topics and client settings.
    pub kafka: Option<KafkaConfig>,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// Push alerts to Alertmanager (daemon and demo), when present.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Residents per district (the `district_population` table); default: the generator's districts.
    pub population: Option<BTreeMap<String, i64>>,
    /// The file this was read from, and its text, for located diagnostics.
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
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

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    /// A partition without messages for this long stops holding the watermark back.
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Passed to librdkafka as they are (security.protocol, sasl.*, ssl.*, …).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn default_idle() -> String {
    "30s".into()
}

impl KafkaConfig {
    /// A librdkafka client configuration: the brokers and the `settings` as given.
    pub fn client(&self) -> rdkafka::config::ClientConfig {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.settings {
            c.set(key, value);
        }
        c
    }
}

/// `[kafka.topics]`: one topic per feed (default: the feed's name) and the outputs
/// (default: `alerts`, `tasks`, `task_updates`, `dead_letters`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Feed → topic.
    pub feeds: BTreeMap<String, String>,
    pub alerts: String,
    pub tasks: String,
    pub task_updates: String,
    pub dead_letters: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            feeds: BTreeMap::new(),
            alerts: "alerts".into(),
            tasks: "tasks".into(),
            task_updates: "task_updates".into(),
            dead_letters: "dead_letters".into(),
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub dir: PathBuf,
    /// How often the daemon checkpoints (and at shutdown).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: String,
}

fn default_checkpoint_interval() -> String {
    "10s".into()
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("state"),
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    /// Bearer token for `POST /api/tasks/{id}`; read from this environment variable.
    #[serde(default = "default_token_env")]
    pub token_env: String,
}

fn default_token_env() -> String {
    "YUJING_API_TOKEN".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9464".into(),
            token_env: default_token_env(),
        }
    }
}

/// `[alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093` (plain HTTP).
    pub url: String,
    /// Firing alerts are sent again this often; keep it below Alertmanager's `resolve_timeout`.
    #[serde(default = "default_resend")]
    pub resend_interval: String,
    /// Per request.
    #[serde(default = "default_am_timeout")]
    pub timeout: String,
}

fn default_resend() -> String {
    "1m".into()
}

fn default_am_timeout() -> String {
    "5s".into()
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
        rebase(&mut config.state.dir);
        config.replay.inputs.values_mut().for_each(rebase);
        // Durations are checked here, so `yujing check` reports them with a position.
        let mut diags = Vec::new();
        let mut duration = |key: &str, value: &str| {
            if let Err(m) = crate::core::time::parse_duration(value) {
                let offset = text
                    .lines()
                    .scan(0, |at, l| {
                        let start = *at;
                        *at += l.len() + 1;
                        Some((start, l))
                    })
                    .find(|(_, l)| l.trim_start().starts_with(key))
                    .map_or(0, |(start, _)| start);
                diags.push(Diagnostic::at(
                    path,
                    &text,
                    offset,
                    format!("bad `{key}`: {m}"),
                ));
            }
        };
        if let Some(k) = &config.kafka {
            duration("idle_timeout", &k.idle_timeout);
        }
        duration("checkpoint_interval", &config.state.checkpoint_interval);
        if let Some(d) = &config.max_future {
            duration("max_future", d);
        }
        if let Some(am) = &config.alertmanager {
            duration("resend_interval", &am.resend_interval);
            duration("timeout", &am.timeout);
        }
        if let Some(am) = &config.alertmanager
            && !am.url.starts_with("http://")
        {
            let offset = text.find(&am.url).unwrap_or(0);
            diags.push(Diagnostic::at(
                path,
                &text,
                offset,
                "`alertmanager.url` must start with http:// (put a TLS proxy in front for https)"
                    .into(),
            ));
        }
        if !diags.is_empty() {
            return Err(Error::Invalid(Diagnostics(diags)));
        }
        config.source = Some((path.to_path_buf(), text));
        Ok(config)
    }

    /// Mistakes only the catalog can tell: a `[kafka.topics.feeds]` entry for a
    /// name that is not a feed (a reference table such as `district_population`
    /// has no topic, and a misspelt feed would silently read its default topic).
    pub fn check_feeds(&self, feeds: &std::collections::BTreeSet<String>) -> Vec<Diagnostic> {
        let (Some(k), Some((path, text))) = (&self.kafka, &self.source) else {
            return Vec::new();
        };
        k.topics
            .feeds
            .keys()
            .filter(|name| !feeds.contains(*name))
            .map(|name| {
                let offset = text
                    .find(&format!("\n{name} "))
                    .or_else(|| text.find(&format!("\n{name}=")))
                    .map_or(0, |o| o + 1);
                Diagnostic::at(
                    path,
                    text,
                    offset,
                    format!(
                        "`{name}` in [kafka.topics.feeds] is not a feed (feeds: {})",
                        feeds.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
            .collect()
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
