//! The daemon's sink: alerts, task events and dead letters go to their Kafka
//! topics as JSON (keyed by incident, dispatch and feed), through an idempotent
//! producer. (Metrics and the HTTP API's view are kept by the
//! [`Observed`](super::observe::Observed) sink in front of this one.)
//!
//! After a restart the sink first learns what the previous process already sent
//! since its last checkpoint (the output topics read back from the checkpointed
//! end offsets: an outbox) and does not send those records again; ids are
//! deterministic, so the same record has the same id.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::Sink;
use crate::alert::Alert;
use crate::core::deadletter::DeadLetter;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::source::kafka::Offsets;
use crate::task::TaskEvent;
use crate::window::WindowResult;

/// Output topics.
#[derive(Debug, Clone)]
pub struct OutputTopics {
    pub alerts: String,
    pub tasks: String,
    pub dead_letters: String,
}

/// Records where the broker put each output record, so a checkpoint knows the
/// output topics' ends without asking the broker; counts what it refused.
#[derive(Clone, Default)]
pub struct Deliveries {
    ends: Arc<Mutex<Offsets>>,
    metrics: Option<Arc<Metrics>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Ok(mut ends) = self.ends.lock() {
                    let end = ends
                        .entry(m.topic().to_string())
                        .or_default()
                        .entry(m.partition())
                        .or_insert(0);
                    *end = (*end).max(m.offset() + 1);
                }
            }
            // Retries are unbounded, so this is a refusal (e.g. the broker's size
            // limit): say so loudly and count it.
            Err((e, m)) => {
                tracing::error!(error = %e, topic = m.topic(), "an output record was not delivered");
                if let Some(metrics) = &self.metrics {
                    metrics
                        .outputs_failed
                        .with_label_values(&[m.topic(), "undelivered"])
                        .inc();
                }
            }
        }
    }
}

impl Deliveries {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Deliveries {
            ends: Arc::default(),
            metrics: Some(metrics),
        }
    }

    /// `base` (the ends found at start-up) raised by what was delivered since.
    pub fn ends(&self, base: &Offsets) -> Offsets {
        let mut out = base.clone();
        if let Ok(d) = self.ends.lock() {
            for (topic, parts) in d.iter() {
                for (p, o) in parts {
                    let e = out.entry(topic.clone()).or_default().entry(*p).or_insert(0);
                    *e = (*e).max(*o);
                }
            }
        }
        out
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    topics: OutputTopics,
    /// Largest record sent; longer values are cut (see [`super::fit`]).
    pub max_output_bytes: usize,
    metrics: Option<Arc<Metrics>>,
    /// Ids of records already on the output topics (see the module comment).
    pub sent: std::collections::HashSet<String>,
    /// Per input partition, the offset below which the previous process had
    /// consumed, and so sent every dead letter: records read again (a format-3
    /// checkpoint re-reads its open windows) do not send theirs twice.
    pub dead_letters_sent_below: BTreeMap<(String, i32), i64>,
}

/// The id that identifies an output record on its topic.
pub fn output_id(value: &serde_json::Value) -> Option<String> {
    if let Some(id) = value.get("alert_id").and_then(|v| v.as_str()) {
        return Some(format!("alert:{id}"));
    }
    if let Some(id) = value.get("event_id").and_then(|v| v.as_str())
        && value.get("task").is_some()
    {
        return Some(format!("task:{id}"));
    }
    // A dead letter: its input, place and reason (and pipeline, for late events).
    let part = |k: &str| value.get(k).map(|v| v.to_string()).unwrap_or_default();
    Some(format!(
        "dead:{}",
        crate::alert::stable_id(&[
            &part("feed"),
            &part("source"),
            &part("reason"),
            &part("pipeline")
        ])
    ))
}

impl KafkaSink {
    pub fn new(
        producer: ThreadedProducer<Deliveries>,
        topics: OutputTopics,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        KafkaSink {
            producer,
            topics,
            max_output_bytes: super::DEFAULT_MAX_OUTPUT_BYTES,
            metrics,
            sent: Default::default(),
            dead_letters_sent_below: BTreeMap::new(),
        }
    }

    /// Sends a JSON record unless the previous process already did. A record too
    /// large is cut to fit; one that still cannot be sent is counted and logged,
    /// never an error that stops the daemon (it would meet the same record again
    /// after a restart).
    fn send_once<T: serde::Serialize>(
        &mut self,
        output: &'static str,
        topic: &str,
        key: &str,
        record: &T,
    ) -> Result<()> {
        let mut value = serde_json::to_value(record).map_err(|e| Error::Other(e.to_string()))?;
        if !self.sent.is_empty()
            && let Some(id) = output_id(&value)
            && self.sent.remove(&id)
        {
            return Ok(());
        }
        // Serialised once: `fit` measures the bytes it hands back.
        let payload = match super::fit(&mut value, self.max_output_bytes) {
            Some((bytes, false)) => bytes,
            Some((bytes, true)) => {
                tracing::warn!(output, "an output record was too large: long values cut");
                self.count(|m| m.outputs_truncated.with_label_values(&[output]).inc());
                bytes
            }
            None => {
                tracing::error!(output, "an output record cannot be made to fit; not sent");
                self.count(|m| {
                    m.outputs_failed
                        .with_label_values(&[output, "too_large"])
                        .inc()
                });
                return Ok(());
            }
        };
        if let Err(e) = self.send(topic, key, &payload) {
            tracing::error!(output, error = %e, "the producer refused an output record");
            self.count(|m| {
                m.outputs_failed
                    .with_label_values(&[output, "refused"])
                    .inc()
            });
        }
        Ok(())
    }

    fn count(&self, f: impl FnOnce(&Metrics)) {
        if let Some(m) = &self.metrics {
            f(m);
        }
    }

    /// Sends one record, waiting while the producer's queue is full.
    fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<()> {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(Error::Other(format!("producing to {topic}: {e}"))),
            }
        }
    }

    /// Waits until everything sent is acknowledged by the broker.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| Error::Other(format!("flushing the producer: {e}")))
    }
}

impl Sink for KafkaSink {
    /// Window rows stay in the engine: the daemon's outputs are alerts and tasks.
    fn window(&mut self, _window: &WindowResult, _ordered: bool) -> Result<()> {
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        if let crate::core::deadletter::Origin::Kafka {
            topic,
            partition,
            offset,
        } = &dead.source
            && self
                .dead_letters_sent_below
                .get(&(topic.clone(), *partition))
                .is_some_and(|below| offset < below)
        {
            return Ok(());
        }
        let topic = self.topics.dead_letters.clone();
        self.send_once("dead_letters", &topic, &dead.feed, dead)
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        let topic = self.topics.alerts.clone();
        self.send_once("alerts", &topic, &alert.incident_id, alert)
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        let topic = self.topics.tasks.clone();
        self.send_once("tasks", &topic, &event.task.dispatch_id, event)
    }
}
