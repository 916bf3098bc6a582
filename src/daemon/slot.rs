//! One consumer of the feeds with its engine, state and outputs: the whole
//! group's partitions when one instance runs per group, or one task's
//! partitions when state is kept per partition ([`super::partitioned`]). A slot
//! restores the newer checkpoint of its state dir and the state topic (under
//! its own key), reads its outputs back from the checkpoint's ends, consumes
//! from the checkpoint's offsets and checkpoints until told to stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::checkpointer::{self, DaemonCheckpointer};
use super::{
    checkpoint_interval, checkpoint_writer, consumer_config, kafka_sink, open_state,
    read_back_outputs, wait_for_predecessor,
};
use crate::config::{Config, KafkaConfig};
use crate::core::time::parse_duration;
use crate::decode::{DecodeOptions, DecodePool};
use crate::driver::{Driver, Reload};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::pipeline::Compiled;
use crate::schema::Catalog;
use crate::sink::kafka::{Deliveries, KafkaSink};
use crate::sink::observe::{Observed, Observers};
use crate::source::kafka::{KafkaSource, Offsets};
use crate::task::command::Update;

/// What every slot of a process shares.
pub struct Shared {
    pub config: Config,
    pub catalog: Catalog,
    pub options: DecodeOptions,
    pub runtime: Arc<tokio::runtime::Runtime>,
    pub observers: Observers,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    pub reset_state: bool,
    /// One pool decodes for every slot (none on one core).
    pub decode_pool: Option<Arc<DecodePool>>,
}

/// The partitions a task reads, assigned to it rather than by the group.
#[derive(Debug, Clone)]
pub struct Assigned {
    /// Partition *p* of each feed topic its pipelines read; `None`: every
    /// partition of them (the task of the pipelines not keyed by district).
    pub partition: Option<i32>,
    /// Topic → its number of partitions; task updates are read from all of them.
    pub counts: Arc<BTreeMap<String, i32>>,
}

pub struct Slot {
    /// Its `group_id` names the slot's state (the state topic's key) and commits.
    pub k: KafkaConfig,
    pub dir: PathBuf,
    /// `None`: the group assigns partitions (one instance per group).
    pub assigned: Option<Assigned>,
    pub stop: Arc<AtomicBool>,
    pub updates: Receiver<Update>,
}

/// An engine of `compiled`, task deadlines on the processing clock.
pub fn engine(shared: &Shared, compiled: Compiled) -> Result<Engine> {
    Engine::compiled_on(
        shared.catalog.clone(),
        compiled,
        shared.options.clone(),
        shared.runtime.clone(),
        crate::task::TaskClock::Processing(shared.options.clock.clone()),
    )
}

/// Runs the slot with `engine` until it is told to stop; its last checkpoint
/// is then written. `reload`: redeploys on SIGHUP (one instance per group).
pub fn run(shared: &Shared, slot: Slot, engine: Engine, reload: Option<Reload>) -> Result<()> {
    let metrics = &shared.metrics;
    let Some((state, loaded)) = open_state(
        &shared.config,
        &slot.k,
        &slot.dir,
        shared.reset_state,
        metrics,
        &slot.stop,
    )?
    else {
        return Ok(());
    };
    let from = loaded.checkpoint.as_ref().map(|cp| &cp.outputs);
    let Some((already_sent, start_ends)) = read_back_outputs(&slot.k, from, &slot.stop) else {
        return Ok(());
    };
    let consumer_config = consumer_config(&slot.k);
    let resume = loaded.checkpoint.as_ref().map(|cp| &cp.offsets);
    let source = match &slot.assigned {
        None if !wait_for_predecessor(&state, &consumer_config, &slot.stop) => return Ok(()),
        assigned => kafka_source(
            &slot.k,
            consumer_config,
            &engine,
            metrics,
            assigned.as_ref(),
            resume,
        )?,
    };
    let deliveries = Deliveries::new(metrics.clone());
    let sink = output(shared, &slot.k, &deliveries, already_sent)?;
    let mut driver = Driver::new(engine, source, sink)?;
    let sequence = loaded.checkpoint.as_ref().map_or(0, |cp| cp.sequence);
    if let Some(cp) = loaded.checkpoint {
        let format = cp.format;
        checkpointer::restore(&mut driver, cp, metrics);
        tracing::info!(dir = %state.path().display(), format, "restored the checkpoint");
    }
    let checkpointer = checkpointer(shared, &slot.k, state, deliveries, start_ends, sequence)?;
    let mut driver = driver
        .with_decode_pool(shared.decode_pool.clone())
        .with_checkpointer(Box::new(checkpointer))
        .with_updates(slot.updates)
        .with_stop(slot.stop);
    if let Some(reload) = reload {
        driver = driver.with_reload(reload);
    }
    if let Some(a) = &slot.assigned {
        // Another task may hold the task an update names; one task says which
        // updates are bad.
        driver = driver.only_held_tasks(a.partition == Some(0));
    }
    tracing::info!(brokers = %slot.k.brokers, group = %slot.k.group_id, "consuming");
    let ran = driver.run();
    if slot.assigned.is_some() {
        // Its next owner shows them.
        driver.sink.withdraw();
    }
    ran
}

/// The checkpointer of the slot's state, going on from checkpoint `sequence`.
fn checkpointer(
    shared: &Shared,
    k: &KafkaConfig,
    state: super::checkpoint::StateDir,
    deliveries: Deliveries,
    start_ends: Offsets,
    sequence: u64,
) -> Result<DaemonCheckpointer> {
    let writer = checkpoint_writer(&shared.config, k, state)?;
    let mut checkpointer = DaemonCheckpointer::new(
        writer,
        deliveries,
        start_ends,
        checkpoint_interval(&shared.config)?,
        shared.readiness.clone(),
        shared.metrics.clone(),
    );
    checkpointer.sequence = sequence;
    Ok(checkpointer)
}

/// The outputs' producer, observed; `already_sent` is not sent again.
fn output(
    shared: &Shared,
    k: &KafkaConfig,
    deliveries: &Deliveries,
    already_sent: std::collections::HashSet<String>,
) -> Result<Observed<KafkaSink>> {
    let mut kafka_sink = kafka_sink(k, deliveries.clone(), &shared.metrics)?;
    kafka_sink.max_output_bytes = shared
        .config
        .max_output_bytes
        .unwrap_or(kafka_sink.max_output_bytes);
    kafka_sink.sent = already_sent;
    Ok(Observed::new(kafka_sink, &shared.observers))
}

/// The consumer of the feed topics of the pipelines and of task updates:
/// subscribed to them in the group, or assigned a task's partitions (from the
/// checkpoint's offsets, else the slot's committed ones).
fn kafka_source(
    k: &KafkaConfig,
    config: ClientConfig,
    engine: &Engine,
    metrics: &Arc<Metrics>,
    assigned: Option<&Assigned>,
    resume: Option<&Offsets>,
) -> Result<KafkaSource> {
    let idle = std::time::Duration::from_millis(
        parse_duration(&k.idle_timeout).map_err(Error::Other)? as u64,
    );
    let topic_feed: BTreeMap<String, String> = engine
        .feeds_read()
        .into_iter()
        .map(|f| (k.topics.of_feed(&f), f))
        .collect();
    let consumer: BaseConsumer = config.create().map_err(Error::doing("consumer"))?;
    let mut topics: Vec<&str> = topic_feed.keys().map(String::as_str).collect();
    topics.push(&k.topics.task_updates);
    match assigned {
        None => consumer
            .subscribe(&topics)
            .map_err(Error::doing("subscribing"))?,
        Some(a) => {
            let mut tpl = TopicPartitionList::new();
            for topic in topics {
                let count = a.counts.get(topic).copied().unwrap_or(0);
                let only = a.partition.filter(|_| topic != k.topics.task_updates);
                for p in (0..count).filter(|p| only.is_none_or(|o| o == *p)) {
                    let at = resume
                        .and_then(|r| r.get(topic)?.get(&p))
                        .map_or(Offset::Stored, |o| Offset::Offset(*o));
                    tpl.add_partition_offset(topic, p, at)
                        .map_err(Error::doing("assigning"))?;
                }
            }
            consumer.assign(&tpl).map_err(Error::doing("assigning"))?;
        }
    }
    Ok(KafkaSource::new(
        consumer,
        topic_feed,
        k.topics.task_updates.clone(),
        idle,
        metrics.clone(),
    ))
}
