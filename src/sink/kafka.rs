//! The daemon's sink: alerts, task events and dead letters go to their Kafka
//! topics as JSON (keyed by incident, dispatch and feed), through an idempotent
//! producer; the same records update the HTTP API's view and the metrics.

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
        self.send(&self.topics.dead_letters, &dead.feed, &Self::json(dead)?)
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
        self.send(&self.topics.alerts, &alert.incident_id, &Self::json(alert)?)
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
        self.send(
            &self.topics.tasks,
            &event.task.dispatch_id,
            &Self::json(event)?,
        )
    }
}
