//! What every command that runs pipelines reads first: the config, the
//! schemas, the reference tables (pseudonymised with the PII key) and the
//! pipelines and routing table, all mistakes reported together.

use std::path::PathBuf;

use yujing::config::{Config, KeyPolicy, pii_secret};
use yujing::decode::DecodeOptions;
use yujing::error::{Diagnostics, Error};
use yujing::pipeline;
use yujing::reference::Tables;
use yujing::schema::Catalog;

use crate::Sources;

pub struct Loaded {
    pub config: Config,
    pub catalog: Catalog,
    pub pipelines_dir: Option<PathBuf>,
}

impl Loaded {
    /// Plans every pipeline; all mistakes of all files are reported together.
    pub fn compile(
        self,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<(Config, Catalog, pipeline::Compiled)> {
        let compiled = match &self.pipelines_dir {
            Some(dir) => rt.block_on(pipeline::compile_dir(dir, &self.catalog)),
            None => rt.block_on(pipeline::compile_embedded(&self.catalog)),
        }
        .map_err(Error::Invalid)?;
        let mut compiled = compiled;
        let feeds = self.catalog.feeds.keys().cloned().collect();
        let mistakes = self.config.check_feeds(&feeds);
        if !mistakes.is_empty() {
            return Err(Error::Invalid(Diagnostics(mistakes)).into());
        }
        if let Some(path) = &self.config.routing {
            compiled.routing = yujing::task::routing::RoutingTable::load(path, &feeds)
                .and_then(|r| r.with_tables(&self.catalog.tables))
                .map_err(|d| Error::Invalid(Diagnostics(d)))?;
        }
        Ok((self.config, self.catalog, compiled))
    }
}

/// Reads the config, schemas and reference tables. The tables' PII columns
/// are pseudonymised with the PII key when one is set, else the development
/// key: whether a command may run without one is [`decode_options`]' to say.
pub fn load(sources: &Sources) -> anyhow::Result<Loaded> {
    let config = match &sources.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let schemas = sources.schemas.clone().or(config.schemas.clone());
    let mut catalog = Catalog::load(schemas.as_deref())?;
    if let Some(population) = &config.population {
        catalog.population = population.clone();
    }
    if !config.tables.is_empty() {
        let secret = match yujing::secret::read(yujing::config::PII_KEY_ENV)? {
            Some((key, _)) => key.expose().to_string(),
            None => yujing::config::DEVELOPMENT_PII_KEY.to_string(),
        };
        let key = DecodeOptions::with_secret(&secret).pii_key;
        let declared = yujing::reference::load_all(&config.tables, "".as_ref(), key)
            .map_err(|d| Error::Invalid(Diagnostics(d)))?;
        // A declared table replaces the shipped one of its name.
        catalog.tables.extend(declared);
        catalog.check_names().map_err(Error::Invalid)?;
    }
    let pipelines_dir = sources.pipelines.clone().or(config.pipelines.clone());
    Ok(Loaded {
        config,
        catalog,
        pipelines_dir,
    })
}

/// A redeploy's load: tables the running set already has, declared the same,
/// take what was just read in place (the pipelines kept running read them
/// too); new or redeclared ones are the ones just read.
pub fn reload(sources: &Sources, running: &Tables) -> anyhow::Result<Loaded> {
    let mut loaded = load(sources)?;
    for (name, table) in loaded.catalog.tables.iter_mut() {
        if let Some(old) = running.get(name).filter(|old| old.def == table.def) {
            old.adopt(table);
            *table = old.clone();
        }
    }
    Ok(loaded)
}

pub fn decode_options(config: &Config, policy: KeyPolicy) -> anyhow::Result<DecodeOptions> {
    let mut o = DecodeOptions::with_secret(&pii_secret(policy)?);
    if let Some(n) = config.max_record_bytes {
        o.max_record_bytes = n;
    }
    if let Some(n) = config.max_field_bytes {
        o.max_field_bytes = n;
    }
    if let Some(d) = &config.max_future {
        o.max_future = yujing::core::time::parse_duration(d).map_err(anyhow::Error::msg)?;
    }
    Ok(o)
}
