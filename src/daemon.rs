//! `yujing run`: the same engine as replay, fed by a Kafka consumer group instead
//! of files. Messages become chunks per partition (each partition is an input with
//! its own watermark; one idle for `idle_timeout` stops holding the watermark
//! back), task updates come from their topic and the HTTP API, and alerts, task
//! events and dead letters go to their topics. SIGTERM or SIGINT stops consuming,
//! flushes the producer and exits 0.
//!
//! Not yet here (see README, "The daemon"): checkpoints of the engine state and
//! offset commits, so a restart reprocesses its topics from the beginning; output
//! ids are deterministic, so consumers can drop what they have seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};

use crate::config::{Config, KafkaConfig};
use crate::deadletter::{DeadLetter, Origin};
use crate::decode::DecodeOptions;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::{ApiUpdate, AppState, router};
use crate::metrics::Metrics;
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::Sink;
use crate::sink::kafka::{ApiView, KafkaSink, OutputTopics};
use crate::source::{Chunk, SourceName};
use crate::task::Command;
use crate::task::command::INPUT;
use crate::time::parse_duration;

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
) -> Result<()> {
    let k = config
        .kafka
        .clone()
        .ok_or_else(|| Error::Other("`yujing run` needs a [kafka] section in the config".into()))?;
    let idle = Duration::from_millis(parse_duration(&k.idle_timeout).map_err(Error::Other)? as u64);
    let tasks = compiled.task_manager();
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

    let mut consumer_config = client(&k);
    consumer_config
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if !k.settings.contains_key("session.timeout.ms") {
        consumer_config.set("session.timeout.ms", "6000");
    }
    let consumer: BaseConsumer = consumer_config.create().map_err(kafka_err("consumer"))?;
    let mut topics: Vec<&str> = topic_feed.keys().map(String::as_str).collect();
    topics.push(&k.topics.task_updates);
    consumer
        .subscribe(&topics)
        .map_err(kafka_err("subscribing"))?;
    let producer: ThreadedProducer<DefaultProducerContext> = client(&k)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .map_err(kafka_err("producer"))?;

    let metrics = Arc::new(Metrics::new());
    let view = Arc::new(Mutex::new(ApiView::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (updates_tx, updates_rx) = mpsc::channel::<ApiUpdate>();
    serve(
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
    let mut sink = KafkaSink::new(
        producer,
        OutputTopics {
            alerts: k.topics.alerts.clone(),
            tasks: k.topics.tasks.clone(),
            dead_letters: k.topics.dead_letters.clone(),
        },
        view,
        metrics.clone(),
    );
    // Partitions become the inputs; the feed-level inputs step aside.
    for f in &feeds {
        engine.finish_feed(f, &mut sink)?;
    }
    tracing::info!(brokers = %k.brokers, group = %k.group_id, "consuming");

    let mut last_seen: HashMap<String, Instant> = HashMap::new();
    let mut idle_inputs: std::collections::HashSet<String> = Default::default();
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
            let payload = m.payload().unwrap_or_default();
            if m.topic() == k.topics.task_updates {
                let origin = Origin::Kafka {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                let text = String::from_utf8_lossy(payload);
                match Command::parse(&text) {
                    Ok(mut c) => {
                        c.origin = Some(origin);
                        engine.task_command(c);
                    }
                    Err((reason, field, detail)) => sink.dead_letter(&DeadLetter {
                        feed: INPUT.into(),
                        reason,
                        field,
                        detail,
                        raw: text.into_owned(),
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
        if !ready.load(Ordering::Relaxed)
            && let Ok(assignment) = consumer.assignment()
            && assignment.count() > 0
        {
            for e in assignment.elements() {
                if let Some(feed) = topic_feed.get(e.topic()) {
                    let input = format!("{feed}/{}", e.partition());
                    engine.add_input(feed, &input);
                    last_seen.insert(input, Instant::now());
                }
            }
            ready.store(true, Ordering::Relaxed);
            metrics.ready.set(1);
            tracing::info!(partitions = assignment.count(), "ready");
        }
        for chunk in chunks.values() {
            let input = chunk.input();
            last_seen.insert(input.clone(), Instant::now());
            idle_inputs.remove(&input);
            let before = engine.stats.events;
            engine.process(chunk, &mut sink)?;
            metrics
                .events
                .with_label_values(&[chunk.feed.as_ref()])
                .inc_by(engine.stats.events - before);
        }
        // Updates (HTTP or topic) apply even while no events arrive.
        engine.tick(&mut sink)?;
        let now = Instant::now();
        let mut newly_idle: Vec<(Instant, String)> = last_seen
            .iter()
            .filter(|(i, t)| now.duration_since(**t) >= idle && !idle_inputs.contains(*i))
            .map(|(i, t)| (*t, i.clone()))
            .collect();
        // One input stays active: were all idle, the watermark would jump to the end
        // of time and close every open window before its events could arrive.
        if idle_inputs.len() + newly_idle.len() >= last_seen.len() {
            newly_idle.sort();
            newly_idle.pop();
        }
        let newly_idle: Vec<String> = newly_idle.into_iter().map(|(_, i)| i).collect();
        for input in newly_idle {
            tracing::debug!(%input, "idle");
            engine.finish_feed(&input, &mut sink)?;
            idle_inputs.insert(input);
        }
    }
    tracing::info!("stopping");
    sink.flush(Duration::from_secs(5))?;
    Ok(())
}

/// Starts the HTTP server and the signal handlers on a thread of their own.
fn serve(listen: &str, state: AppState, stop: Arc<AtomicBool>) -> Result<()> {
    let (bound_tx, bound_rx) = mpsc::channel::<std::result::Result<(), String>>();
    let listen = listen.to_string();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = bound_tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(&listen).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound_tx.send(Err(format!("listening on {listen}: {e}")));
                    return;
                }
            };
            let _ = bound_tx.send(Ok(()));
            let signals = stop.clone();
            tokio::spawn(async move {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = term => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                signals.store(true, Ordering::Relaxed);
            });
            if let Err(e) = axum::serve(listener, router(state)).await {
                tracing::error!(error = %e, "http server");
            }
        });
    });
    match bound_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Other(e)),
        Err(_) => Err(Error::Other("the HTTP server did not start".into())),
    }
}
