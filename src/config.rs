//! `yujing.toml`: where pipelines and schemas live, the PII key, and for replay
//! the input files and output directory. Paths are relative to the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Diagnostic, Diagnostics, Error, Result, line_col};

/// The secret behind PII pseudonyms (see [`crate::secret`] for where it is looked up).
pub const PII_KEY_ENV: &str = "YUJING_PII_KEY";

/// The secret holding the Kafka SASL password.
pub const KAFKA_PASSWORD: &str = "YUJING_KAFKA_PASSWORD";

/// Shortest PII key `yujing run` accepts: 32 bytes, the BLAKE3 key size, so
/// guessing the key is no easier than guessing a hash.
pub const MIN_PII_KEY_BYTES: usize = 32;

/// The development key `replay` and `demo` fall back to.
pub const DEVELOPMENT_PII_KEY: &str = "yujing-development-key";

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
    /// Threads that decode records beside the window stage (replay and the
    /// daemon); default: one per core the process may use; 1: decode inline.
    pub decode_threads: Option<usize>,
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
    /// Reference tables the pipelines' SQL may join by name (`[tables.NAME]`).
    #[serde(default)]
    pub tables: BTreeMap<String, crate::reference::TableDef>,
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
    /// Passed to librdkafka as they are (security.protocol, sasl.*, ssl.*, …),
    /// all but the password.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(skip)]
    pub sasl_password: Option<crate::secret::Secret>,
}

fn default_idle() -> String {
    "30s".into()
}

impl KafkaConfig {
    /// Reads the SASL password from the secret [`KAFKA_PASSWORD`], when set, for
    /// every client made after.
    pub fn with_secrets(mut self) -> Result<Self> {
        if self.settings.contains_key("sasl.password") {
            return Err(Error::Other(format!(
                "`sasl.password` does not belong in yujing.toml: give it in ${KAFKA_PASSWORD} \
                 (or ${KAFKA_PASSWORD}_FILE, or the systemd credential `{KAFKA_PASSWORD}`)"
            )));
        }
        self.sasl_password = crate::secret::read(KAFKA_PASSWORD)?.map(|(s, _)| s);
        Ok(self)
    }

    /// A librdkafka client configuration: the brokers, the `settings` as given,
    /// and the SASL password read by [`KafkaConfig::with_secrets`].
    pub fn client(&self) -> rdkafka::config::ClientConfig {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.settings {
            c.set(key, value);
        }
        if let Some(password) = &self.sasl_password {
            c.set("sasl.password", password.expose());
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

impl TopicsConfig {
    /// The topic of `feed`: the one configured, else the feed's own name.
    pub fn of_feed(&self, feed: &str) -> String {
        self.feeds
            .get(feed)
            .cloned()
            .unwrap_or_else(|| feed.to_string())
    }
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
    /// A compacted Kafka topic each checkpoint is also written to (before its
    /// offsets are committed), so an instance on another machine, with an
    /// empty `dir`, takes the state over; `dir` is then a cache.
    #[serde(default)]
    pub topic: Option<String>,
    /// State kept per task (partition *p* of every co-partitioned feed topic),
    /// so several instances share one group and a task's state moves with it
    /// (docs/scaling.md). Needs `topic`.
    #[serde(default)]
    pub per_partition: bool,
}

fn default_checkpoint_interval() -> String {
    "10s".into()
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("state"),
            checkpoint_interval: default_checkpoint_interval(),
            topic: None,
            per_partition: false,
        }
    }
}

/// `[http]`: where the API listens, who may use it, and HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    /// Who may call `/api/*`; without any, every `/api/*` request is refused.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// The secret (see [`crate::secret`]) Prometheus must send as a bearer
    /// token for `/metrics`; open when absent.
    pub metrics_token: Option<String>,
    /// HTTPS: a PEM certificate chain and its key; plain HTTP when absent. A path
    /// may start with `$CREDENTIALS_DIRECTORY/` (systemd's `LoadCredential=`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Longest a request may take, from its first byte to the response.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    /// Largest request body accepted (task actions are a few hundred bytes).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

/// One `[[http.tokens]]`: a bearer token with a role. Its name is the `actor`
/// recorded for every task action taken with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// An operator bound to a department acts only on that department's tasks.
    pub department: Option<String>,
    /// The secret holding the token (see [`crate::secret`]), e.g. `YUJING_TOKEN_DUTY`.
    pub secret: String,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read alerts and tasks.
    Viewer,
    /// Read, and act on tasks (acknowledge, done, reassign, note).
    Operator,
}

fn default_request_timeout() -> String {
    "10s".into()
}

fn default_max_body() -> usize {
    16 << 10
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9464".into(),
            tokens: Vec::new(),
            metrics_token: None,
            tls_cert: None,
            tls_key: None,
            request_timeout: default_request_timeout(),
            max_body_bytes: default_max_body(),
        }
    }
}

/// `[alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `https://alertmanager.district.internal:9093`.
    pub url: String,
    /// For `https://`: the CA certificate (PEM) that signed Alertmanager's; the
    /// system's web roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Basic auth: the user, with the password in the secret `password_secret`.
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// Bearer auth (for a proxy in front): the secret holding the token.
    pub bearer_secret: Option<String>,
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
            if let Ok(rest) = p.strip_prefix("$CREDENTIALS_DIRECTORY")
                && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
            {
                *p = Path::new(&dir).join(rest);
            } else if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        config.pipelines.as_mut().map(rebase);
        config.schemas.as_mut().map(rebase);
        config.replay.out.as_mut().map(rebase);
        config.replay.task_updates.as_mut().map(rebase);
        config.routing.as_mut().map(rebase);
        config.http.tls_cert.as_mut().map(rebase);
        config.http.tls_key.as_mut().map(rebase);
        if let Some(am) = config.alertmanager.as_mut() {
            am.ca_file.as_mut().map(rebase);
        }
        rebase(&mut config.state.dir);
        config.replay.inputs.values_mut().for_each(rebase);
        for table in config.tables.values_mut() {
            rebase(&mut table.file);
            table.versions.iter_mut().for_each(|v| rebase(&mut v.file));
        }
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
        duration("request_timeout", &config.http.request_timeout);
        if let Some(d) = &config.max_future {
            duration("max_future", d);
        }
        if let Some(am) = &config.alertmanager {
            duration("resend_interval", &am.resend_interval);
            duration("timeout", &am.timeout);
        }
        diags.extend(config.check_endpoints(path, &text));
        if !diags.is_empty() {
            return Err(Error::Invalid(Diagnostics(diags)));
        }
        config.source = Some((path.to_path_buf(), text));
        Ok(config)
    }

    /// The endpoints' mistakes: an Alertmanager URL that is not HTTP(S), half an HTTPS pair.
    fn check_endpoints(&self, path: &Path, text: &str) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        if let Some(am) = &self.alertmanager
            && !(am.url.starts_with("http://") || am.url.starts_with("https://"))
        {
            let offset = text.find(&am.url).unwrap_or(0);
            diags.push(Diagnostic::at(
                path,
                text,
                offset,
                "`alertmanager.url` must start with https:// or http://".into(),
            ));
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            let offset = text.find("tls_").unwrap_or(0);
            diags.push(Diagnostic::at(
                path,
                text,
                offset,
                "HTTPS needs both `tls_cert` and `tls_key`".into(),
            ));
        }
        diags
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

/// Whether a run may fall back to the development PII key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// `yujing run`: a key of at least [`MIN_PII_KEY_BYTES`] or no start.
    Required,
    /// `replay`, `demo`, and `run --insecure-dev-key`: the development key
    /// when none is set, with a warning.
    DevelopmentAllowed,
}

/// The PII secret, by `policy`.
pub fn pii_secret(policy: KeyPolicy) -> Result<String> {
    let found = crate::secret::read(PII_KEY_ENV)?;
    match (found, policy) {
        (Some((key, _)), _) if key.len() >= MIN_PII_KEY_BYTES => Ok(key.expose().to_string()),
        (Some((key, at)), KeyPolicy::Required) => Err(Error::Other(format!(
            "the PII key in {at} is {} bytes; it must be at least {MIN_PII_KEY_BYTES} \
             (e.g. `head -c 32 /dev/urandom | base64`)",
            key.len()
        ))),
        (None, KeyPolicy::Required) => Err(Error::Other(format!(
            "no PII key: set ${PII_KEY_ENV}, ${PII_KEY_ENV}_FILE or the systemd credential \
             `{PII_KEY_ENV}` to at least {MIN_PII_KEY_BYTES} random bytes \
             (`--insecure-dev-key` runs with a public development key, for trials only)"
        ))),
        (Some((key, _)), KeyPolicy::DevelopmentAllowed) => {
            tracing::warn!("the PII key is shorter than {MIN_PII_KEY_BYTES} bytes");
            Ok(key.expose().to_string())
        }
        (None, KeyPolicy::DevelopmentAllowed) => {
            tracing::warn!(
                "{PII_KEY_ENV} is not set; PII pseudonyms use the public development key"
            );
            Ok(DEVELOPMENT_PII_KEY.to_string())
        }
    }
}
