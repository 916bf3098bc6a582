//! The daemon's checkpointer: between the driver's steps it says whether the
//! daemon is ready, and every `checkpoint_interval` it flushes the outputs and,
//! once the broker has acknowledged them, writes the engine state (open windows'
//! partial states included), the offsets consumed so far and the output ends to
//! the state dir, then commits the offsets. At a
//! stop it takes the last checkpoint, leaves the group and marks the state dir
//! stopped. [`restore`] puts a checkpoint back into a driver at start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{self, Checkpoint, StateDir};
use super::state_topic::StateTopic;
use crate::driver::{Checkpointer, Driver};
use crate::engine::Engine;
use crate::error::Result;
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::sink::kafka::{Deliveries, KafkaSink};
use crate::sink::observe::Observed;
use crate::source::kafka::{KafkaSource, Offsets};
use crate::task::TaskStatus;

/// How long a flush waits for the broker's acknowledgements.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

type DaemonSink = Observed<KafkaSink>;

pub struct DaemonCheckpointer {
    pub state: StateDir,
    /// Where checkpoints are also written, durable in Kafka.
    pub topic: Option<StateTopic>,
    /// The sequence of the latest checkpoint taken (or restored).
    pub sequence: u64,
    pub deliveries: Deliveries,
    /// The output topics' ends at start-up; deliveries raise them.
    pub start_ends: Offsets,
    pub interval: Duration,
    pub readiness: Readiness,
    pub metrics: Arc<Metrics>,
    last: Instant,
    outputs_delivered: bool,
}

impl DaemonCheckpointer {
    pub fn new(
        state: StateDir,
        deliveries: Deliveries,
        start_ends: Offsets,
        interval: Duration,
        readiness: Readiness,
        metrics: Arc<Metrics>,
    ) -> Self {
        DaemonCheckpointer {
            state,
            topic: None,
            sequence: 0,
            deliveries,
            start_ends,
            interval,
            readiness,
            metrics,
            last: Instant::now(),
            outputs_delivered: true,
        }
    }

    /// Writes the checkpoint, then commits its offsets.
    fn checkpoint(
        &mut self,
        engine: &mut Engine,
        source: &mut KafkaSource,
        sink: &DaemonSink,
    ) -> Result<()> {
        let started = Instant::now();
        let positions = source.positions();
        let (incidents, tasks) = match sink.view.lock() {
            Ok(v) => (
                v.incidents.values().cloned().collect(),
                // Done tasks are history: the tasks topic has them.
                v.tasks
                    .values()
                    .filter(|t| t.status != TaskStatus::Done)
                    .cloned()
                    .collect(),
            ),
            Err(_) => Default::default(),
        };
        let cp = Checkpoint {
            format: checkpoint::FORMAT,
            sequence: self.sequence + 1,
            engine: engine.state(),
            offsets: positions.resume,
            // No broker round trip: the ends at start-up, raised by our deliveries.
            outputs: self.deliveries.ends(&self.start_ends),
            consumed: positions.consumed,
            incidents,
            tasks,
        };
        tracing::debug!(elapsed = ?started.elapsed(), "checkpoint: state and output ends taken");
        let written = cp.to_bytes().and_then(|bytes| {
            self.metrics.checkpoint_bytes.set(bytes.len() as i64);
            self.state.write(&bytes)?;
            match &self.topic {
                Some(topic) => topic.write(cp.sequence, &bytes),
                None => Ok(()),
            }
        });
        if let Err(e) = written {
            self.metrics.checkpoint_failures.inc();
            return Err(e);
        }
        self.sequence = cp.sequence;
        // Offsets are committed only once the checkpoint is durable (in the
        // state topic too: an instance elsewhere starts from it).
        source.commit(&cp.offsets);
        self.metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}

impl Checkpointer<KafkaSource, DaemonSink> for DaemonCheckpointer {
    fn after_step(
        &mut self,
        engine: &mut Engine,
        source: &mut KafkaSource,
        sink: &mut DaemonSink,
    ) -> Result<()> {
        if self.last.elapsed() >= self.interval {
            // Outputs first, so the checkpoint (and the offsets committed after it)
            // never claims more than the broker acknowledged. While outputs cannot
            // be delivered the daemon is not ready and keeps its last checkpoint.
            match sink.inner.flush(FLUSH_WAIT) {
                Ok(()) => {
                    self.outputs_delivered = true;
                    if let Err(e) = self.checkpoint(engine, source, sink) {
                        tracing::error!(error = %e, "checkpoint");
                    }
                }
                Err(e) => {
                    self.outputs_delivered = false;
                    tracing::warn!(error = %e, "outputs not yet acknowledged; no checkpoint this time");
                }
            }
            self.last = Instant::now();
        }
        if source.assigned() {
            self.readiness.set(self.outputs_delivered);
        }
        Ok(())
    }

    fn at_stop(
        &mut self,
        engine: &mut Engine,
        source: &mut KafkaSource,
        sink: &mut DaemonSink,
    ) -> Result<()> {
        tracing::info!("stopping");
        // If the broker is away the outputs are not sent and the last checkpoint
        // stands (a restart emits the rest again, with the same ids, and the
        // read-back skips them).
        match sink.inner.flush(FLUSH_WAIT) {
            Ok(()) => self.checkpoint(engine, source, sink)?,
            Err(e) => {
                tracing::error!(error = %e, "outputs not acknowledged at shutdown; keeping the last checkpoint")
            }
        }
        // Leave the group before saying so: a successor may then join at once.
        source.close();
        self.state.stopped();
        // The last handle: dropping it sends what is pending to Alertmanager.
        drop(sink.alertmanager.take());
        Ok(())
    }
}

/// Puts a checkpoint back: the engine state (but pipelines whose clocks are
/// past what the processing clock allows, or whose definition changed, start
/// afresh), the API's view, what the previous process already sent, and the
/// offsets below which it consumed.
pub fn restore(
    driver: &mut Driver<KafkaSource, DaemonSink>,
    mut cp: Checkpoint,
    metrics: &Metrics,
) {
    let latest = driver.engine.command_limits().latest;
    let discarded = |name: &str| {
        metrics
            .pipeline_state_discarded
            .with_label_values(&[name])
            .inc()
    };
    for name in cp.engine.drop_clocks_after(latest) {
        tracing::error!(pipeline = %name, "the checkpoint's clock of this pipeline is in the future: it starts afresh");
        discarded(&name);
    }
    for name in driver.engine.restore(cp.engine) {
        tracing::warn!(pipeline = %name, "the pipeline changed since the checkpoint: it starts afresh");
        discarded(&name);
    }
    driver.sink.restore(cp.incidents, cp.tasks);
    driver.sink.inner.dead_letters_sent_below = cp
        .consumed
        .into_iter()
        .flat_map(|(t, parts)| parts.into_iter().map(move |(p, o)| ((t.clone(), p), o)))
        .collect();
    driver.source.skip_below(cp.offsets);
}
