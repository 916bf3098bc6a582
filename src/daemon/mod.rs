//! `yujing run`: the same driver as replay, with a Kafka consumer group as its
//! source ([`crate::source::kafka`]), the Kafka producer as its sink, task
//! updates from their topic and the HTTP API, and a checkpointer
//! ([`checkpointer`]). This module only wires them. SIGTERM or SIGINT stops
//! consuming, flushes the producer and exits 0.
//!
//! Checkpoints: every `checkpoint_interval` and at shutdown, the engine state (open
//! windows' partial states included) and, per partition, the offset after the last
//! message consumed are written atomically to `state.dir` and, when configured, to
//! the state topic ([`state_topic`]); then those offsets are committed to Kafka. A
//! restart restores the newer of the two and re-reads nothing older; messages below
//! the checkpoint's offsets are skipped if the commit lagged.
//! After a clean shutdown nothing is emitted twice; after a crash, what was emitted
//! since the last checkpoint is emitted again with the same ids, and the outbox
//! ([`outbox`]) keeps it off the topics. The state dir and its files live in
//! [`checkpoint`].
//!
//! Nothing the broker does stops it: HTTP is served first, what must reach the
//! broker at start is retried with backoff, a checkpoint waits until every output
//! is acknowledged (not ready meanwhile), and a process restarted after a crash
//! joins its group only once the dead one's session is over.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use checkpoint::StateDir;
use checkpoint_writer::CheckpointWriter;
use outbox::read_back;
use rdkafka::config::ClientConfig;
use rdkafka::producer::ThreadedProducer;
use state_topic::{StateTopic, Stored};

pub mod checkpoint;
pub mod checkpoint_writer;
pub mod checkpointer;
pub mod outbox;
pub mod partitioned;
pub mod reference_watch;
pub mod slot;
pub mod state_topic;

use crate::config::{Config, KafkaConfig};
use crate::core::time::parse_duration;
use crate::decode::{DecodeOptions, DecodePool};
use crate::driver::ReloadRequests;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::alertmanager::Notifier;
use crate::sink::kafka::{Deliveries, KafkaSink, OutputTopics};
use crate::sink::observe::Observers;
use crate::source::kafka::Offsets;

/// Compiles the pipelines and routing table again, from where they came from.
pub type Recompile = Box<dyn FnMut() -> Result<Compiled>>;

/// Runs until SIGTERM or SIGINT; SIGHUP redeploys the set `recompile` gives.
pub fn run(
    config: Config,
    catalog: Catalog,
    compiled: Compiled,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    reset_state: bool,
    recompile: Recompile,
) -> Result<()> {
    // SIGHUP and POST /api/reload ask for redeploys; the HTTP server's thread takes SIGHUP.
    let reload_requests = Arc::new(ReloadRequests::default());
    let k = kafka_config(&config)?;
    let departments = compiled.routing.departments();
    // Deadlines and acknowledgements run on the processing clock in the daemon.
    let processing = options.clock.clone();
    let metrics = Arc::new(Metrics::new().with_departments(departments.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    reference_watch::spawn(catalog.tables.clone(), metrics.clone(), stop.clone());
    // Built before anything is served, so a set that does not build fails at once.
    let engine = Engine::compiled_on(
        catalog.clone(),
        compiled.clone(),
        options.clone(),
        runtime.clone(),
        crate::task::TaskClock::Processing(processing.clone()),
    )?;
    let observers = Observers {
        metrics: metrics.clone(),
        view: Default::default(),
        alertmanager: alertmanager(&config, &metrics)?.map(Arc::new),
    };
    // Served first: while the broker is away the daemon is alive (/healthz) and
    // says it is not ready (/readyz).
    let mut guard = crate::http::Guard::from_config(&config.http)?;
    guard.departments = departments;
    // A redeploy reaches one engine; with tasks, restart the instances one by one.
    guard.reload = (!config.state.per_partition).then(|| reload_requests.clone());
    guard.clock = processing;
    let (readiness, updates) =
        crate::http::serve(&config.http.listen, &observers, guard, stop.clone())?;
    let dir = config.state.dir.clone();
    let per_partition = config.state.per_partition;
    let shared = slot::Shared {
        decode_pool: decode_pool(config.decode_threads),
        config,
        catalog,
        options,
        runtime,
        observers,
        readiness,
        metrics,
        reset_state,
    };
    if per_partition {
        // Each task builds an engine of its share of the pipelines.
        drop(engine);
        return partitioned::run(shared, k, compiled, updates, stop);
    }
    let reload = crate::driver::Reload {
        requests: reload_requests,
        compile: recompile,
        warm: Some(dir.join(WARM_STATE)),
    };
    let slot = slot::Slot {
        k,
        dir,
        assigned: None,
        stop,
        updates,
    };
    slot::run(&shared, slot, engine, Some(reload))
}

/// The writer of checkpoints to the state dir and, if configured, the state topic.
fn checkpoint_writer(
    config: &Config,
    k: &KafkaConfig,
    state: StateDir,
) -> Result<CheckpointWriter> {
    let topic = config
        .state
        .topic
        .as_ref()
        .map(|t| StateTopic::new(k, t))
        .transpose()?;
    CheckpointWriter::spawn(state, topic)
}

/// The state dir, locked, and the newer checkpoint of the dir's and the state
/// topic's; `None` if the daemon was told to stop while the broker was away.
fn open_state(
    config: &Config,
    k: &KafkaConfig,
    dir: &std::path::Path,
    reset: bool,
    metrics: &Metrics,
    stop: &AtomicBool,
) -> Result<Option<(StateDir, checkpoint::Loaded)>> {
    let state = StateDir::open(dir)?;
    state.keep_alive(KEEP_ALIVE);
    let mut loaded = state.load(reset)?;
    metrics
        .checkpoints_set_aside
        .inc_by(loaded.set_aside.len() as u64);
    if let Some(topic) = &config.state.topic {
        let Some(newer) = from_state_topic(k, topic, &loaded, reset, stop)? else {
            return Ok(None);
        };
        loaded.checkpoint = newer.or(loaded.checkpoint);
    }
    Ok(Some((state, loaded)))
}

/// The state topic's checkpoint when it is newer than the state dir's (`Some(None)`:
/// it is not); `None` if the daemon was told to stop while the broker was away.
/// One that does not add up is said, and refused like a bad file when the state
/// dir has none to fall back on.
fn from_state_topic(
    k: &KafkaConfig,
    topic: &str,
    local: &checkpoint::Loaded,
    reset: bool,
    stop: &AtomicBool,
) -> Result<Option<Option<checkpoint::Checkpoint>>> {
    let Some(stored) = until_it_works("reading the state topic", stop, || {
        state_topic::read_latest(k, topic)
    }) else {
        return Ok(None);
    };
    let local_sequence = local.checkpoint.as_ref().map(|cp| cp.sequence);
    let (sequence, bytes) = match stored {
        Stored::Nothing => return Ok(Some(None)),
        Stored::Found(sequence, _) if local_sequence.is_some_and(|l| l >= sequence) => {
            return Ok(Some(None));
        }
        Stored::Found(sequence, bytes) => (sequence, bytes),
        Stored::Unusable(why) => {
            tracing::error!(topic, reason = %why, "the state topic's checkpoint is unusable");
            if local.checkpoint.is_none() && !reset {
                return Err(Error::Other(format!(
                    "the state topic {topic} holds no usable checkpoint ({why}); start with --reset-state to start afresh"
                )));
            }
            return Ok(Some(None));
        }
    };
    match checkpoint::parse(&bytes) {
        Ok(cp) => {
            tracing::info!(topic, sequence, local = ?local_sequence, "the state topic's checkpoint is the newer one");
            Ok(Some(Some(cp)))
        }
        Err(why) if local.checkpoint.is_some() || reset => {
            tracing::error!(topic, sequence, reason = %why, "the state topic's checkpoint does not read");
            Ok(Some(None))
        }
        Err(why) => Err(Error::Other(format!(
            "the state topic {topic}'s checkpoint {sequence} does not read ({why}); start with --reset-state to start afresh"
        ))),
    }
}

/// `[kafka]`, its secrets read.
fn kafka_config(config: &Config) -> Result<KafkaConfig> {
    config
        .kafka
        .clone()
        .ok_or_else(|| Error::Other("`yujing run` needs a [kafka] section in the config".into()))?
        .with_secrets()
}

fn checkpoint_interval(config: &Config) -> Result<Duration> {
    let ms = parse_duration(&config.state.checkpoint_interval).map_err(Error::Other)?;
    Ok(Duration::from_millis(ms as u64))
}

/// What a previous process sent after its last checkpoint (all of it, if it
/// never took one) is not sent again: the ids on the output topics from the
/// checkpoint's ends (`from`), and where the topics end now. Read before joining
/// the group, so the group's rebalance does not wait on it; `None` if the
/// daemon was told to stop first.
fn read_back_outputs(
    k: &KafkaConfig,
    from: Option<&Offsets>,
    stop: &AtomicBool,
) -> Option<(HashSet<String>, Offsets)> {
    let from = from.cloned().unwrap_or_default();
    let output_topics = [
        k.topics.alerts.as_str(),
        k.topics.tasks.as_str(),
        k.topics.dead_letters.as_str(),
    ];
    let (sent, ends) = until_it_works("reading back the output topics", stop, || {
        read_back(k, &output_topics, &from)
    })?;
    if !sent.is_empty() {
        tracing::info!(records = sent.len(), "already sent before the restart");
    }
    Some((sent, ends))
}

fn consumer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = k.client();
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if !k.settings.contains_key("session.timeout.ms") {
        c.set("session.timeout.ms", "6000");
    }
    c
}

/// A predecessor killed moments ago may still count as a member of the group
/// until its session times out; joining before that, some brokers (tansu) keep
/// its share of the partitions assigned to it for good. Joining after costs
/// nothing: the group would wait for that session to end anyway. False if the
/// daemon was told to stop meanwhile.
fn wait_for_predecessor(state: &StateDir, consumer: &ClientConfig, stop: &AtomicBool) -> bool {
    let Some(alive) = state.predecessor_crashed else {
        return true;
    };
    let session = Duration::from_millis(
        consumer
            .get("session.timeout.ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(6000),
    );
    // It died within KEEP_ALIVE of its last mark; its session ends `session` later.
    let until = alive + KEEP_ALIVE + session + Duration::from_secs(1);
    let Ok(wait) = until.duration_since(std::time::SystemTime::now()) else {
        return true;
    };
    tracing::info!(
        ?wait,
        "the previous process did not stop cleanly: waiting for its group session to end"
    );
    sleep_unless_stopped(wait, stop)
}

/// The idempotent producer of the output topics.
fn kafka_sink(
    k: &KafkaConfig,
    deliveries: Deliveries,
    metrics: &Arc<Metrics>,
) -> Result<KafkaSink> {
    let producer: ThreadedProducer<Deliveries> = k
        .client()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Retry for as long as the broker is away rather than drop an output.
        .set(
            "message.timeout.ms",
            k.settings
                .get("message.timeout.ms")
                .map_or("0", String::as_str),
        )
        .create_with_context(deliveries)
        .map_err(Error::doing("producer"))?;
    Ok(KafkaSink::new(
        producer,
        OutputTopics {
            alerts: k.topics.alerts.clone(),
            tasks: k.topics.tasks.clone(),
            dead_letters: k.topics.dead_letters.clone(),
        },
        Some(metrics.clone()),
    ))
}

/// Runs `attempt` until it succeeds, waiting longer after each failure (up to
/// 30 s); `None` when the daemon is told to stop first. For what the broker must
/// answer before the daemon can go on: an outage is waited out, not exited.
fn until_it_works<T>(
    what: &str,
    stop: &AtomicBool,
    mut attempt: impl FnMut() -> Result<T>,
) -> Option<T> {
    let mut wait = Duration::from_millis(500);
    loop {
        match attempt() {
            Ok(v) => return Some(v),
            Err(e) => tracing::warn!(error = %e, retry_in = ?wait, "{what}"),
        }
        if !sleep_unless_stopped(wait, stop) {
            return None;
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Sleeps for `wait`, waking every 100 ms to see whether the daemon is told to
/// stop; false if it was.
fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !stop.load(Ordering::Relaxed)
}

/// In the state dir: a state saved by `yujing replay --save-state` over
/// history, which warms the pipelines a redeploy starts afresh.
pub const WARM_STATE: &str = "warm.json";

/// How often the state dir's lock is marked alive.
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// The Alertmanager notifier, when `[alertmanager]` is configured.
pub fn alertmanager(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<Notifier>> {
    let Some(am) = &config.alertmanager else {
        return Ok(None);
    };
    let ms = |v: &str| parse_duration(v).map(|m| Duration::from_millis(m as u64));
    Ok(Some(Notifier::start(
        crate::sink::alertmanager::Target::from_config(am)?,
        ms(&am.resend_interval).map_err(Error::Other)?,
        ms(&am.timeout).map_err(Error::Other)?,
        metrics.clone(),
    )?))
}

/// The pool that decodes a poll's chunks side by side (none on one core).
fn decode_pool(threads: Option<usize>) -> Option<Arc<DecodePool>> {
    let pool = DecodePool::for_cores(threads);
    tracing::info!(
        decode_threads = pool.as_ref().map_or(1, |p| p.threads()),
        "decoding"
    );
    pool
}
