//! The daemon's checkpointer: between the driver's steps it says whether the
//! daemon is ready, and every `checkpoint_interval` it flushes the outputs and,
//! once the broker has acknowledged them, takes the engine state (open windows'
//! partial states included), the offsets consumed so far and the output ends,
//! and hands them to the [writer](super::checkpoint_writer); the offsets are
//! committed when the writer says the checkpoint is durable. At a stop it takes
//! the last checkpoint, waits for it, leaves the group and marks the state dir
//! stopped. [`restore`] puts a checkpoint back into a driver at start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{self, Checkpoint};
use super::checkpoint_writer::{CheckpointWriter, Written};
use crate::driver::{Checkpointer, Driver};
use crate::engine::Engine;
use crate::error::Result;
use crate::http::Readiness;
use crate::metrics::Metrics;
use crate::sink::kafka::{Deliveries, KafkaSink};
use crate::sink::observe::Observed;
use crate::source::kafka::{KafkaSource, Offsets};

/// How long a flush waits for the broker's acknowledgements.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

type DaemonSink = Observed<KafkaSink>;

pub struct DaemonCheckpointer {
    /// Writes checkpoints to the state dir and the state topic on its thread.
    pub writer: CheckpointWriter,
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
        writer: CheckpointWriter,
        deliveries: Deliveries,
        start_ends: Offsets,
        interval: Duration,
        readiness: Readiness,
        metrics: Arc<Metrics>,
    ) -> Self {
        DaemonCheckpointer {
            writer,
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

    /// Takes the checkpoint (the open windows sealed) and hands it to the writer.
    fn checkpoint(&mut self, engine: &mut Engine, source: &mut KafkaSource, sink: &mut DaemonSink) {
        let taken = Instant::now();
        let positions = source.positions();
        let (incidents, tasks) = sink.own_view();
        self.sequence += 1;
        let cp = Checkpoint {
            format: checkpoint::FORMAT,
            sequence: self.sequence,
            engine: engine.state(),
            offsets: positions.clone(),
            // No broker round trip: the ends at start-up, raised by our deliveries.
            outputs: self.deliveries.ends(&self.start_ends),
            consumed: positions,
            incidents,
            tasks,
        };
        tracing::debug!(elapsed = ?taken.elapsed(), "checkpoint: state and output ends taken");
        if let Err(e) = self.writer.submit(cp, taken) {
            self.metrics.checkpoint_failures.inc();
            tracing::error!(error = %e, "checkpoint");
        }
    }

    /// Commits the offsets of a checkpoint once it is durable (in the state
    /// topic too: an instance elsewhere starts from it).
    fn written(&self, w: Written, source: &KafkaSource) {
        match w.result {
            Ok(bytes) => {
                self.metrics.checkpoint_bytes.set(bytes as i64);
                source.commit(&w.offsets);
                self.metrics
                    .checkpoint_seconds
                    .observe(w.taken.elapsed().as_secs_f64());
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                tracing::error!(sequence = w.sequence, error = %e, "checkpoint");
            }
        }
    }
}

impl Checkpointer<KafkaSource, DaemonSink> for DaemonCheckpointer {
    fn after_step(
        &mut self,
        engine: &mut Engine,
        source: &mut KafkaSource,
        sink: &mut DaemonSink,
    ) -> Result<()> {
        if let Some(w) = self.writer.finished() {
            self.written(w, source);
        }
        if self.last.elapsed() >= self.interval && !self.writer.busy() {
            // Outputs first, so the checkpoint (and the offsets committed after it)
            // never claims more than the broker acknowledged. While outputs cannot
            // be delivered the daemon is not ready and keeps its last checkpoint.
            match sink.inner.flush(FLUSH_WAIT) {
                Ok(()) => {
                    self.outputs_delivered = true;
                    self.checkpoint(engine, source, sink);
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
        if let Some(w) = self.writer.wait() {
            self.written(w, source);
        }
        // If the broker is away the outputs are not sent and the last checkpoint
        // stands (a restart emits the rest again, with the same ids, and the
        // read-back skips them).
        match sink.inner.flush(FLUSH_WAIT) {
            // Stopped before its partitions were assigned (a task moved on at
            // once): it consumed nothing, and the checkpoint it restored stands.
            Ok(()) if !source.assigned() => {}
            Ok(()) => {
                self.checkpoint(engine, source, sink);
                if let Some(w) = self.writer.wait() {
                    self.written(w, source);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "outputs not acknowledged at shutdown; keeping the last checkpoint")
            }
        }
        // Leave the group before saying so: a successor may then join at once.
        source.close();
        self.writer.stop();
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
    driver.source.start_idle(driver.engine.finished_inputs());
}
