//! The daemon's sink: alerts, task events and dead letters go to their Kafka
//! topics as JSON (keyed by incident, dispatch and feed), through an idempotent
//! producer; the same records update the HTTP API's view and the metrics.
//!
//! After a restart the sink first learns what the previous process already sent
//! since its last checkpoint (the output topics read back from the checkpointed
//! end offsets: an outbox) and does not send those records again; ids are
//! deterministic, so the same record has the same id.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::Sink;
use crate::alert::{Alert, Status};
use crate::deadletter::DeadLetter;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::task::{Task, TaskEvent};
use crate::window::WindowResult;

/// What the HTTP API shows: open incidents (their latest alert) and tasks.
#[derive(Debug, Default)]
pub struct ApiView {
    pub incidents: BTreeMap<String, Alert>,
    pub tasks: BTreeMap<String, Task>,
}

/// Output topics.
#[derive(Debug, Clone)]
pub struct OutputTopics {
    pub alerts: String,
    pub tasks: String,
    pub dead_letters: String,
}

pub struct KafkaSink {
    producer: ThreadedProducer<DefaultProducerContext>,
    topics: OutputTopics,
    pub view: Arc<Mutex<ApiView>>,
    pub metrics: Arc<Metrics>,
    /// Ids of records already on the output topics (see the module comment).
    pub sent: std::collections::HashSet<String>,
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
        producer: ThreadedProducer<DefaultProducerContext>,
        topics: OutputTopics,
        view: Arc<Mutex<ApiView>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        KafkaSink {
            producer,
            topics,
            view,
            metrics,
            sent: Default::default(),
        }
    }

    /// Sends a JSON record unless the previous process already did.
    fn send_once<T: serde::Serialize>(&mut self, topic: &str, key: &str, record: &T) -> Result<()> {
        let value = serde_json::to_value(record).map_err(|e| Error::Other(e.to_string()))?;
        if !self.sent.is_empty()
            && let Some(id) = output_id(&value)
            && self.sent.remove(&id)
        {
            return Ok(());
        }
        let topic = topic.to_string();
        self.send(&topic, key, &Self::json(&value)?)
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

    fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::Other(e.to_string()))
    }
}

impl Sink for KafkaSink {
    fn window(&mut self, window: &WindowResult, _ordered: bool) -> Result<()> {
        self.metrics
            .windows
            .with_label_values(&[window.pipeline.as_ref()])
            .inc();
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        self.metrics
            .dead_letters
            .with_label_values(&[dead.feed.as_str(), dead.reason.as_str()])
            .inc();
        let topic = self.topics.dead_letters.clone();
        self.send_once(&topic, &dead.feed, dead)
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        let status = match alert.status {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        };
        self.metrics
            .alerts
            .with_label_values(&[alert.pipeline.as_str(), alert.level.as_str(), status])
            .inc();
        if let Ok(mut view) = self.view.lock() {
            match alert.status {
                Status::Firing => {
                    view.incidents
                        .insert(alert.incident_id.clone(), alert.clone());
                }
                Status::Resolved => {
                    view.incidents.remove(&alert.incident_id);
                }
            }
            self.metrics
                .incidents_firing
                .set(view.incidents.len() as i64);
        }
        let topic = self.topics.alerts.clone();
        self.send_once(&topic, &alert.incident_id, alert)
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        let change = serde_json::to_value(event.change)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.metrics
            .task_events
            .with_label_values(&[change.as_str()])
            .inc();
        if let Ok(mut view) = self.view.lock() {
            view.tasks
                .insert(event.task.task_id.clone(), event.task.clone());
        }
        let topic = self.topics.tasks.clone();
        self.send_once(&topic, &event.task.dispatch_id, event)
    }
}
