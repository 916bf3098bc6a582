//! `yujing run`: the same engine as replay, fed by a Kafka consumer group instead
//! of files. Messages become chunks per partition (each partition is an input with
//! its own watermark; one idle for `idle_timeout` stops holding the watermark
//! back), task updates come from their topic and the HTTP API, and alerts, task
//! events and dead letters go to their topics. SIGTERM or SIGINT stops consuming,
//! flushes the producer and exits 0.
//!
//! Checkpoints: every `checkpoint_interval` and at shutdown, the engine state (all
//! but open bins) and, per partition, the offset to resume from are written
//! atomically to `state.dir`; then those offsets are committed to Kafka. The resume
//! offset of a feed partition is that of its earliest message with an event in a
//! still-open bin, so a restart re-reads exactly what it needs to rebuild the open
//! windows; messages below the checkpoint's offsets are skipped if the commit lagged.
//! After a clean shutdown nothing is emitted twice; after a crash, what was emitted
//! since the last checkpoint is emitted again with the same ids, and the outbox
//! ([`outbox`]) keeps it off the topics. The state dir and its files live in
//! [`checkpoint`].
//!
//! Nothing the broker does stops it: HTTP is served first, what must reach the
//! broker at start is retried with backoff, a checkpoint waits until every output
//! is acknowledged (not ready meanwhile), and a process restarted after a crash
//! joins its group only once the dead one's session is over.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use checkpoint::{Checkpoint, Offsets, StateDir};
use outbox::read_back;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::ThreadedProducer;
use rdkafka::{Offset, TopicPartitionList};

pub mod checkpoint;
mod outbox;

use crate::config::{Config, KafkaConfig};
use crate::deadletter::{DeadLetter, Origin};
use crate::decode::DecodeOptions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::{ApiUpdate, AppState};
use crate::metrics::Metrics;
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::Sink;
use crate::sink::alertmanager::Notifier;
use crate::sink::kafka::{Deliveries, KafkaSink, OutputTopics};
use crate::sink::observe::{ApiView, Observed, Observers};
use crate::source::{Chunk, SourceName};
use crate::task::Command;
use crate::task::command::INPUT;
use crate::time::{Millis, parse_duration};

/// Per partition, what a restart must re-read: the first offset and latest event
/// time of each chunk not yet known to be in closed windows, and the next offset.
#[derive(Debug, Default)]
struct PartitionLog {
    chunks: VecDeque<(i64, Option<Millis>)>,
    next: i64,
}

impl PartitionLog {
    /// The offset to resume from, given the earliest open bin; forgets chunks whose
    /// events are all before it (their windows have closed for good).
    fn resume_at(&mut self, earliest_open: Option<Millis>) -> i64 {
        let needed = |t: Option<Millis>| matches!((t, earliest_open), (Some(t), Some(e)) if t >= e);
        while self.chunks.front().is_some_and(|c| !needed(c.1)) {
            self.chunks.pop_front();
        }
        self.chunks.front().map_or(self.next, |c| c.0)
    }
}

fn client(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.settings {
        c.set(key, value);
    }
    c
}

fn kafka_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e}"))
}

/// Runs until SIGTERM or SIGINT.
pub fn run(
    config: Config,
    catalog: Catalog,
    compiled: Compiled,
    options: DecodeOptions,
    runtime: Arc<tokio::runtime::Runtime>,
    reset_state: bool,
) -> Result<()> {
    let k = config
        .kafka
        .clone()
        .ok_or_else(|| Error::Other("`yujing run` needs a [kafka] section in the config".into()))?;
    let idle = Duration::from_millis(parse_duration(&k.idle_timeout).map_err(Error::Other)? as u64);
    let tasks = compiled.task_manager();
    let command_options = options.clone();
    let mut engine = Engine::new(catalog, compiled.pipelines, options, runtime)?
        .with_compounds(compiled.compounds)
        .with_tasks(tasks);
    let feeds: Vec<String> = engine.feeds_read().into_iter().collect();
    let topic_feed: BTreeMap<String, String> = feeds
        .iter()
        .map(|f| {
            (
                k.topics.feeds.get(f).cloned().unwrap_or_else(|| f.clone()),
                f.clone(),
            )
        })
        .collect();

    let metrics = Arc::new(Metrics::new());
    let view = Arc::new(Mutex::new(ApiView::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (updates_tx, updates_rx) = mpsc::channel::<ApiUpdate>();
    // Served first: while the broker is away the daemon is alive (/healthz) and
    // says it is not ready (/readyz).
    crate::http::spawn(
        &config.http.listen,
        AppState {
            metrics: metrics.clone(),
            view: view.clone(),
            ready: ready.clone(),
            token: std::env::var(&config.http.token_env)
                .ok()
                .filter(|t| !t.is_empty()),
            updates: updates_tx,
        },
        stop.clone(),
    )?;
    let mut state = StateDir::open(&config.state.dir)?;
    state.keep_alive(KEEP_ALIVE);
    let loaded = state.load(reset_state)?;
    metrics
        .checkpoints_set_aside
        .inc_by(loaded.set_aside.len() as u64);
    let checkpoint_found = loaded.checkpoint;

    // What a previous process sent after its last checkpoint (all of it, if it
    // never took one) is not sent again. Read before joining the group, so the
    // group's rebalance does not wait on it.
    let from = checkpoint_found
        .as_ref()
        .map(|cp| cp.outputs.clone())
        .unwrap_or_default();
    let output_topics = [
        k.topics.alerts.as_str(),
        k.topics.tasks.as_str(),
        k.topics.dead_letters.as_str(),
    ];
    let Some((already_sent, start_ends)) =
        until_it_works("reading back the output topics", &stop, || {
            read_back(&k, &output_topics, &from)
        })
    else {
        return Ok(());
    };
    let mut consumer_config = client(&k);
    consumer_config
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if !k.settings.contains_key("session.timeout.ms") {
        consumer_config.set("session.timeout.ms", "6000");
    }
    // A predecessor killed moments ago may still count as a member of the group
    // until its session times out; joining before that, some brokers (tansu) keep
    // its share of the partitions assigned to it for good. Joining after costs
    // nothing: the group would wait for that session to end anyway.
    let session = Duration::from_millis(
        consumer_config
            .get("session.timeout.ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(6000),
    );
    if let Some(alive) = state.predecessor_crashed {
        // It died within KEEP_ALIVE of its last mark; its session ends `session` later.
        let until = alive + KEEP_ALIVE + session + Duration::from_secs(1);
        if let Ok(wait) = until.duration_since(std::time::SystemTime::now()) {
            tracing::info!(
                ?wait,
                "the previous process did not stop cleanly: waiting for its group session to end"
            );
            if !sleep_unless_stopped(wait, &stop) {
                return Ok(());
            }
        }
    }
    let consumer: BaseConsumer = consumer_config.create().map_err(kafka_err("consumer"))?;
    let mut topics: Vec<&str> = topic_feed.keys().map(String::as_str).collect();
    topics.push(&k.topics.task_updates);
    consumer
        .subscribe(&topics)
        .map_err(kafka_err("subscribing"))?;
    let deliveries = Deliveries::new(metrics.clone());
    let producer: ThreadedProducer<Deliveries> = client(&k)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Retry for as long as the broker is away rather than drop an output.
        .set(
            "message.timeout.ms",
            k.settings
                .get("message.timeout.ms")
                .map_or("0", String::as_str),
        )
        .create_with_context(deliveries.clone())
        .map_err(kafka_err("producer"))?;
    let mut kafka_sink = KafkaSink::new(
        producer,
        OutputTopics {
            alerts: k.topics.alerts.clone(),
            tasks: k.topics.tasks.clone(),
            dead_letters: k.topics.dead_letters.clone(),
        },
        Some(metrics.clone()),
    );
    if let Some(n) = config.max_output_bytes {
        kafka_sink.max_output_bytes = n;
    }
    let observers = Observers {
        metrics: metrics.clone(),
        view,
        alertmanager: alertmanager(&config, &metrics)?.map(Arc::new),
    };
    let mut sink = Observed::new(kafka_sink, &observers);
    drop(observers);
    // Partitions become the inputs; the feed-level inputs step aside.
    for f in &feeds {
        engine.finish_feed(f, &mut sink)?;
    }
    let interval = Duration::from_millis(
        parse_duration(&config.state.checkpoint_interval).map_err(Error::Other)? as u64,
    );
    let mut skip_below: BTreeMap<(String, i32), i64> = BTreeMap::new();
    sink.inner.sent = already_sent;
    if !sink.inner.sent.is_empty() {
        tracing::info!(
            records = sink.inner.sent.len(),
            "already sent before the restart"
        );
    }
    if let Some(mut cp) = checkpoint_found {
        let discarded = |name: &str| {
            metrics
                .pipeline_state_discarded
                .with_label_values(&[name])
                .inc()
        };
        let latest = command_options.command_limits().latest;
        for name in cp.engine.drop_clocks_after(latest) {
            tracing::error!(pipeline = %name, "the checkpoint's clock of this pipeline is in the future: it starts afresh");
            discarded(&name);
        }
        for name in engine.restore(cp.engine) {
            tracing::warn!(pipeline = %name, "the pipeline changed since the checkpoint: it starts afresh");
            discarded(&name);
        }
        sink.restore(cp.incidents, cp.tasks);
        sink.inner.dead_letters_sent_below = cp
            .consumed
            .into_iter()
            .flat_map(|(t, parts)| parts.into_iter().map(move |(p, o)| ((t.clone(), p), o)))
            .collect();
        for (topic, parts) in cp.offsets {
            for (p, o) in parts {
                skip_below.insert((topic.clone(), p), o);
            }
        }
        tracing::info!(dir = %state.path().display(), format = cp.format, "restored the checkpoint");
    }
    let mut logs: BTreeMap<(String, i32), PartitionLog> = BTreeMap::new();
    let view = sink.view.clone();
    let mut last_checkpoint = Instant::now();
    let mut last_lag = Instant::now();
    let checkpoint = |engine: &Engine,
                      logs: &mut BTreeMap<(String, i32), PartitionLog>,
                      consumer: &BaseConsumer|
     -> Result<()> {
        let started = Instant::now();
        let earliest = engine.earliest_open();
        let mut offsets = Offsets::new();
        let mut consumed = Offsets::new();
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), log) in logs.iter_mut() {
            let at = if *topic == k.topics.task_updates {
                log.next
            } else {
                log.resume_at(earliest)
            };
            offsets.entry(topic.clone()).or_default().insert(*p, at);
            consumed
                .entry(topic.clone())
                .or_default()
                .insert(*p, log.next);
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(at));
        }
        let (incidents, tasks) = match view.lock() {
            Ok(v) => (
                v.incidents.values().cloned().collect(),
                // Done tasks are history: the tasks topic has them.
                v.tasks
                    .values()
                    .filter(|t| t.status != crate::task::TaskStatus::Done)
                    .cloned()
                    .collect(),
            ),
            Err(_) => Default::default(),
        };
        let cp = Checkpoint {
            format: checkpoint::FORMAT,
            engine: engine.state(),
            offsets,
            // No broker round trip: the ends at start-up, raised by our deliveries.
            outputs: deliveries.ends(&start_ends),
            consumed,
            incidents,
            tasks,
        };
        tracing::debug!(elapsed = ?started.elapsed(), "checkpoint: state and output ends taken");
        if let Err(e) = state.write(&cp) {
            metrics.checkpoint_failures.inc();
            return Err(e);
        }
        tracing::debug!(elapsed = ?started.elapsed(), "checkpoint: written");
        // Offsets are committed only once the checkpoint is durable.
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "committing offsets; the checkpoint's offsets still hold");
        }
        metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    };
    tracing::info!(brokers = %k.brokers, group = %k.group_id, "consuming");

    let (mut assigned, mut outputs_delivered) = (false, true);
    let set_ready = |now: bool| {
        if ready.swap(now, Ordering::Relaxed) != now {
            metrics.ready.set(i64::from(now));
            tracing::info!(ready = now, "readiness");
        }
    };
    let mut last_seen: HashMap<String, Instant> = HashMap::new();
    let mut idle_inputs: std::collections::HashSet<String> = Default::default();
    let mut had_data: std::collections::HashSet<String> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(u) = updates_rx.try_recv() {
            let time = engine.task_time().unwrap_or(0);
            engine.task_command(Command {
                time,
                task_id: u.task_id,
                action: u.action,
                actor: u.actor,
                department: u.department,
                note: u.note,
                origin: None,
            });
        }
        let mut chunks: BTreeMap<(String, i32), Chunk> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut polled = 0;
        while polled < 5000 && Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(50)) else {
                if polled > 0 {
                    break;
                }
                continue;
            };
            let m = match message {
                Ok(m) => m,
                Err(e) => {
                    // Broker down or restarting: librdkafka retries; keep going.
                    tracing::warn!(error = %e, "consumer");
                    continue;
                }
            };
            polled += 1;
            let at = (m.topic().to_string(), m.partition());
            // Below the checkpoint's offsets, or already consumed by this process:
            // after the broker restarts or the group rebalances, the consumer may
            // start again from an older committed offset.
            if skip_below.get(&at).is_some_and(|o| m.offset() < *o)
                || logs.get(&at).is_some_and(|l| m.offset() < l.next)
            {
                continue;
            }
            logs.entry(at).or_default().next = m.offset() + 1;
            let payload = m.payload().unwrap_or_default();
            if m.topic() == k.topics.task_updates {
                let origin = Origin::Kafka {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let text = String::from_utf8_lossy(payload);
                match Command::parse_within(&text, command_options.command_limits()) {
                    Ok(mut c) => {
                        c.origin = Some(origin);
                        engine.task_command(c);
                    }
                    Err((reason, field, detail)) => sink.dead_letter(&DeadLetter {
                        feed: INPUT.into(),
                        reason,
                        field,
                        detail,
                        raw: crate::decode::capped_raw(&text),
                        source: origin,
                        event_id: None,
                        pipeline: None,
                    })?,
                }
                continue;
            }
            let Some(feed) = topic_feed.get(m.topic()) else {
                continue;
            };
            let chunk = chunks
                .entry((m.topic().to_string(), m.partition()))
                .or_insert_with(|| {
                    Chunk::new(
                        feed.as_str().into(),
                        SourceName::Kafka {
                            topic: m.topic().into(),
                            partition: m.partition(),
                        },
                    )
                });
            chunk.push_line(payload, m.offset() as u64);
        }
        // Partitions assigned since the last look hold the watermark back from now
        // on; revoked ones step aside (their state does not move yet: docs/scaling.md).
        if let Ok(assignment) = consumer.assignment()
            && assignment.count() > 0
        {
            let mut now_assigned = std::collections::HashSet::new();
            for e in assignment.elements() {
                if let Some(feed) = topic_feed.get(e.topic()) {
                    let input = format!("{feed}/{}", e.partition());
                    if !last_seen.contains_key(&input) {
                        engine.add_input(feed, &input);
                        last_seen.insert(input.clone(), Instant::now());
                    }
                    now_assigned.insert(input);
                }
            }
            let revoked: Vec<String> = last_seen
                .keys()
                .filter(|i| !now_assigned.contains(*i))
                .cloned()
                .collect();
            for input in revoked {
                last_seen.remove(&input);
                idle_inputs.remove(&input);
                engine.finish_feed(&input, &mut sink)?;
            }
            if !assigned {
                assigned = true;
                tracing::info!(partitions = assignment.count(), "assigned");
            }
            set_ready(assigned && outputs_delivered);
        }
        // Idle partitions with data in this batch hold the watermark back again
        // before any of the batch is processed, so one partition's chunk does not
        // close windows that another's, in the same batch, still has events for.
        for chunk in chunks.values() {
            let input = chunk.input();
            if idle_inputs.remove(&input) {
                engine.add_input(&chunk.feed, &input);
            }
        }
        for ((topic, partition), chunk) in &chunks {
            let input = chunk.input();
            last_seen.insert(input.clone(), Instant::now());
            idle_inputs.remove(&input);
            let max_time = engine.process(chunk, &mut sink)?;
            // Only events move a watermark; a chunk of dead letters does not.
            if max_time.is_some() {
                had_data.insert(input.clone());
            }
            let first = chunk.lines.first().map_or(0, |l| l.pos as i64);
            logs.entry((topic.clone(), *partition))
                .or_default()
                .chunks
                .push_back((first, max_time));
        }
        // Updates (HTTP or topic) apply even while no events arrive.
        engine.tick(&mut sink)?;
        let now = Instant::now();
        let mut newly_idle: Vec<(Instant, String)> = last_seen
            .iter()
            .filter(|(i, t)| now.duration_since(**t) >= idle && !idle_inputs.contains(*i))
            .map(|(i, t)| (*t, i.clone()))
            .collect();
        // One input that has had data stays active: were all idle, the watermark
        // would jump to the end of time and close every open window before its
        // events could arrive. One that never had data only holds it back.
        if idle_inputs.len() + newly_idle.len() >= last_seen.len() {
            newly_idle.sort();
            if let Some(i) = newly_idle.iter().rposition(|(_, i)| had_data.contains(i)) {
                newly_idle.remove(i);
            }
        }
        let newly_idle: Vec<String> = newly_idle.into_iter().map(|(_, i)| i).collect();
        for input in newly_idle {
            tracing::debug!(%input, "idle");
            engine.finish_feed(&input, &mut sink)?;
            idle_inputs.insert(input);
        }
        if last_lag.elapsed() >= LAG_INTERVAL {
            consumer_lag(&consumer, &logs, &metrics);
            last_lag = Instant::now();
        }
        if last_checkpoint.elapsed() >= interval {
            // Outputs first, so the checkpoint (and the offsets committed after it)
            // never claims more than the broker acknowledged. While outputs cannot
            // be delivered the daemon is not ready and keeps its last checkpoint.
            match sink.inner.flush(Duration::from_secs(5)) {
                Ok(()) => {
                    outputs_delivered = true;
                    if let Err(e) = checkpoint(&engine, &mut logs, &consumer) {
                        tracing::error!(error = %e, "checkpoint");
                    }
                }
                Err(e) => {
                    outputs_delivered = false;
                    tracing::warn!(error = %e, "outputs not yet acknowledged; no checkpoint this time");
                }
            }
            set_ready(assigned && outputs_delivered);
            last_checkpoint = Instant::now();
        }
    }
    tracing::info!("stopping");
    // Outputs first, so the checkpoint never claims more than was sent; if the
    // broker is away they are not, and the last checkpoint stands (a restart
    // emits the rest again, with the same ids, and the read-back skips them).
    match sink.inner.flush(Duration::from_secs(5)) {
        Ok(()) => {
            tracing::debug!("outputs flushed");
            checkpoint(&engine, &mut logs, &consumer)?;
            tracing::debug!("checkpoint written and committed");
        }
        Err(e) => {
            tracing::error!(error = %e, "outputs not acknowledged at shutdown; keeping the last checkpoint")
        }
    }
    drop(consumer);
    state.stopped();
    // The last handle: dropping it sends what is pending to Alertmanager.
    drop(sink.alertmanager.take());
    tracing::debug!("alertmanager notifier closed");
    Ok(())
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

/// How often the state dir's lock is marked alive.
const KEEP_ALIVE: Duration = Duration::from_millis(500);

/// How often the consumer lag is measured (a metadata request per partition).
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Per assigned partition: its high watermark minus the next offset to consume.
fn consumer_lag(
    consumer: &BaseConsumer,
    logs: &BTreeMap<(String, i32), PartitionLog>,
    metrics: &Metrics,
) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    for e in assignment.elements() {
        let Ok((low, high)) =
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500))
        else {
            continue;
        };
        let next = logs
            .get(&(e.topic().to_string(), e.partition()))
            .map_or(low, |l| l.next.max(low));
        metrics
            .consumer_lag
            .with_label_values(&[e.topic(), &e.partition().to_string()])
            .set((high - next).max(0));
    }
}

/// The Alertmanager notifier, when `[alertmanager]` is configured.
pub fn alertmanager(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<Notifier>> {
    let Some(am) = &config.alertmanager else {
        return Ok(None);
    };
    let ms = |v: &str| parse_duration(v).map(|m| Duration::from_millis(m as u64));
    Ok(Some(Notifier::start(
        &am.url,
        ms(&am.resend_interval).map_err(Error::Other)?,
        ms(&am.timeout).map_err(Error::Other)?,
        metrics.clone(),
    )))
}
