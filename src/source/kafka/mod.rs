//! A Kafka consumer group as a source. Each assigned partition of a feed topic is
//! an input with its own watermark; one without messages for `idle_timeout`
//! stops holding the watermark back until it has messages again, and a revoked
//! one steps aside. Messages of the task-updates topic become task updates.
//!
//! The source also remembers, per partition it owns, the next offset to consume
//! ([`KafkaSource::positions`]), and skips what a checkpoint says was already
//! consumed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;

use super::{Arrival, Chunk, Source, SourceName};
use crate::core::deadletter::Origin;
use crate::core::time::Millis;
use crate::error::Result;
use crate::metrics::Metrics;

/// Topic → partition → offset.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

mod positions;

/// How often the consumer lag is measured (a metadata request per partition).
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// The partitions of a consumer group as inputs.
pub struct KafkaSource {
    /// `None` once closed: the process has left the group.
    consumer: Option<BaseConsumer>,
    /// Feed topic → feed.
    topic_feed: BTreeMap<String, String>,
    task_topic: String,
    idle: Duration,
    metrics: Arc<Metrics>,
    /// Below a checkpoint's offsets: already consumed by a previous process.
    skip_below: BTreeMap<(String, i32), i64>,
    /// Per partition, the next offset to consume.
    next: BTreeMap<(String, i32), i64>,
    /// The partitions assigned to this process now.
    owned: HashSet<(String, i32)>,
    /// Assigned inputs and when each last had messages.
    last_seen: HashMap<String, Instant>,
    idle_inputs: HashSet<String>,
    /// Inputs idle in the restored state: they start idle once assigned.
    start_idle: HashSet<String>,
    had_data: HashSet<String>,
    assigned: bool,
    last_lag: Instant,
}

impl KafkaSource {
    /// `consumer` is subscribed to the feed topics of `topic_feed` and to `task_topic`.
    pub fn new(
        consumer: BaseConsumer,
        topic_feed: BTreeMap<String, String>,
        task_topic: String,
        idle: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        KafkaSource {
            consumer: Some(consumer),
            topic_feed,
            task_topic,
            idle,
            metrics,
            skip_below: BTreeMap::new(),
            next: BTreeMap::new(),
            owned: HashSet::new(),
            last_seen: HashMap::new(),
            idle_inputs: HashSet::new(),
            start_idle: HashSet::new(),
            had_data: HashSet::new(),
            assigned: false,
            last_lag: Instant::now(),
        }
    }

    /// Messages below these offsets were consumed before the checkpoint; they
    /// are skipped should the group's committed offsets lag behind.
    /// They are also where this process resumes: a partition without new
    /// messages keeps its offset in the next checkpoints.
    pub fn skip_below(&mut self, offsets: Offsets) {
        for (topic, parts) in offsets {
            for (p, o) in parts {
                self.skip_below.insert((topic.clone(), p), o);
                self.next.entry((topic.clone(), p)).or_insert(o);
            }
        }
    }

    /// Inputs that were idle when the restored state was taken start idle
    /// (no `Started`) until they have messages.
    pub fn start_idle(&mut self, inputs: impl IntoIterator<Item = String>) {
        self.start_idle.extend(inputs);
    }

    /// Leaves the group: the consumer closes, and nothing more is read.
    pub fn close(&mut self) {
        self.consumer = None;
    }

    /// Whether the group has assigned this process partitions yet.
    pub fn assigned(&self) -> bool {
        self.assigned
    }

    /// Polls for up to 200 ms or 5000 messages: chunks per partition, task
    /// updates in the order they came.
    fn poll(&mut self) -> (BTreeMap<(String, i32), Chunk>, Vec<Arrival>) {
        let mut chunks: BTreeMap<(String, i32), Chunk> = BTreeMap::new();
        let mut updates = Vec::new();
        let Some(consumer) = &self.consumer else {
            return (chunks, updates);
        };
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
            if self.skip_below.get(&at).is_some_and(|o| m.offset() < *o)
                || self.next.get(&at).is_some_and(|next| m.offset() < *next)
            {
                continue;
            }
            self.next.insert(at.clone(), m.offset() + 1);
            if m.topic() == self.task_topic {
                updates.push(task_update(&m));
            } else if let Some(feed) = self.topic_feed.get(m.topic()) {
                let chunk = chunks.entry(at).or_insert_with(|| {
                    Chunk::new(
                        feed.as_str().into(),
                        SourceName::Kafka {
                            topic: m.topic().into(),
                            partition: m.partition(),
                        },
                    )
                });
                chunk.push_line(m.payload().unwrap_or_default(), m.offset() as u64);
            }
        }
        (chunks, updates)
    }

    /// Partitions assigned since the last look hold the watermark back from now
    /// on; revoked ones step aside (their state does not move: docs/scaling.md).
    fn assignment(&mut self, arrivals: &mut Vec<Arrival>) {
        let Some(Ok(assignment)) = self.consumer.as_ref().map(Consumer::assignment) else {
            return;
        };
        if assignment.count() == 0 {
            return;
        }
        let mut now_assigned = HashSet::new();
        // A revoked partition's position is its new owner's to commit: the
        // checkpoint and the commits after it leave it out. (Its position stays, so
        // should it come back, what this process consumed is not taken twice.)
        self.owned = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for e in assignment.elements() {
            if let Some(feed) = self.topic_feed.get(e.topic()) {
                let input = format!("{feed}/{}", e.partition());
                if !self.last_seen.contains_key(&input) {
                    if self.start_idle.remove(&input) {
                        self.idle_inputs.insert(input.clone());
                    } else {
                        arrivals.push(Arrival::Started {
                            feed: feed.as_str().into(),
                            input: input.clone(),
                        });
                    }
                    self.last_seen.insert(input.clone(), Instant::now());
                }
                now_assigned.insert(input);
            }
        }
        let revoked: Vec<String> = self
            .last_seen
            .keys()
            .filter(|i| !now_assigned.contains(*i))
            .cloned()
            .collect();
        for input in revoked {
            self.last_seen.remove(&input);
            self.idle_inputs.remove(&input);
            arrivals.push(Arrival::Ended { input });
        }
        if !self.assigned {
            self.assigned = true;
            tracing::info!(partitions = assignment.count(), "assigned");
        }
    }

    /// Inputs without messages for `idle` stop holding the watermark back.
    fn newly_idle(&mut self, arrivals: &mut Vec<Arrival>) {
        let now = Instant::now();
        let mut newly_idle: Vec<(Instant, String)> = self
            .last_seen
            .iter()
            .filter(|(i, t)| now.duration_since(**t) >= self.idle && !self.idle_inputs.contains(*i))
            .map(|(i, t)| (*t, i.clone()))
            .collect();
        keep_one_per_feed(
            &mut newly_idle,
            &self.idle_inputs,
            self.last_seen.keys(),
            &self.had_data,
        );
        for (_, input) in newly_idle {
            tracing::debug!(%input, "idle");
            self.idle_inputs.insert(input.clone());
            arrivals.push(Arrival::Ended { input });
        }
    }

    /// Per assigned partition: its high watermark minus the next offset to consume.
    fn measure_lag(&self) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        for e in assignment.elements() {
            let Ok((low, high)) =
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_millis(500))
            else {
                continue;
            };
            let next = self
                .next
                .get(&(e.topic().to_string(), e.partition()))
                .map_or(low, |next| (*next).max(low));
            self.metrics
                .consumer_lag
                .with_label_values(&[e.topic(), &e.partition().to_string()])
                .set((high - next).max(0));
        }
    }
}

fn task_update(m: &BorrowedMessage<'_>) -> Arrival {
    Arrival::TaskUpdate {
        text: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        origin: Origin::Kafka {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
    }
}

/// Of the inputs about to go idle, keeps active per feed the one that had data
/// last, when every partition of the feed would otherwise be idle: a pipeline's
/// watermark is the minimum over its own feed's partitions, so with all of them
/// idle it would jump to the end of time and close every open window before the
/// feed's next events arrive (a quiet feed at night, while others run on). An
/// input that never had data only holds the watermark back, so it may go idle.
fn keep_one_per_feed<'a>(
    newly_idle: &mut Vec<(Instant, String)>,
    idle: &HashSet<String>,
    assigned: impl Iterator<Item = &'a String>,
    had_data: &HashSet<String>,
) {
    let feed_of = |input: &str| input.rsplit_once('/').map_or(input, |(f, _)| f).to_string();
    let mut unidle: HashMap<String, usize> = HashMap::new();
    for input in assigned {
        *unidle.entry(feed_of(input)).or_default() += 1;
    }
    for input in idle.iter().chain(newly_idle.iter().map(|(_, i)| i)) {
        if let Some(n) = unidle.get_mut(&feed_of(input)) {
            *n = n.saturating_sub(1);
        }
    }
    newly_idle.sort();
    for (feed, left) in unidle {
        if left > 0 {
            continue;
        }
        if let Some(i) = newly_idle
            .iter()
            .rposition(|(_, i)| feed_of(i) == feed && had_data.contains(i))
        {
            newly_idle.remove(i);
        }
    }
}

impl Source for KafkaSource {
    /// Partitions are the inputs: every feed-level input steps aside.
    fn feed_inputs(&self) -> Vec<String> {
        Vec::new()
    }

    fn next(&mut self) -> Result<Option<Vec<Arrival>>> {
        let mut arrivals = Vec::new();
        self.newly_idle(&mut arrivals);
        let (chunks, updates) = self.poll();
        arrivals.extend(updates);
        self.assignment(&mut arrivals);
        // Idle partitions with data in this batch hold the watermark back again
        // before any of the batch is processed, so one partition's chunk does not
        // close windows that another's, in the same batch, still has events for.
        for chunk in chunks.values() {
            let input = chunk.input();
            if self.idle_inputs.remove(&input) {
                arrivals.push(Arrival::Started {
                    feed: chunk.feed.clone(),
                    input,
                });
            }
        }
        arrivals.extend(chunks.into_values().map(Arrival::Chunk));
        if self.last_lag.elapsed() >= LAG_INTERVAL {
            self.measure_lag();
            self.last_lag = Instant::now();
        }
        Ok(Some(arrivals))
    }

    fn processed(&mut self, chunk: &Chunk, max_time: Option<Millis>) {
        if !matches!(chunk.source, SourceName::Kafka { .. }) {
            return;
        }
        let input = chunk.input();
        self.last_seen.insert(input.clone(), Instant::now());
        self.idle_inputs.remove(&input);
        // Only events move a watermark; a chunk of dead letters does not.
        if max_time.is_some() {
            self.had_data.insert(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Police keeps a partition busy while every labour partition goes quiet:
    /// the labour partition that had data last stays active, so the labour
    /// pipelines' windows do not close at the end of time.
    #[test]
    fn each_feed_keeps_one_partition_that_had_data_active() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let assigned: Vec<String> = [
            "labor_dispute/0",
            "labor_dispute/1",
            "labor_dispute/2",
            "police_incident/0",
            "police_incident/1",
        ]
        .map(String::from)
        .to_vec();
        let had_data: HashSet<String> = ["labor_dispute/0", "labor_dispute/1", "police_incident/0"]
            .map(String::from)
            .into();
        let idle: HashSet<String> = HashSet::from(["police_incident/1".to_string()]);
        let mut newly = vec![
            (at(30), "labor_dispute/0".to_string()),
            (at(10), "labor_dispute/1".to_string()),
            (at(20), "labor_dispute/2".to_string()),
        ];
        keep_one_per_feed(&mut newly, &idle, assigned.iter(), &had_data);
        let going: Vec<&str> = newly.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(
            going,
            ["labor_dispute/1", "labor_dispute/2"],
            "labor_dispute/0 stays"
        );

        // Police still has an active partition: its quiet one goes idle.
        let mut newly = vec![(at(40), "police_incident/0".to_string())];
        let idle: HashSet<String> = HashSet::new();
        keep_one_per_feed(&mut newly, &idle, assigned.iter(), &had_data);
        assert_eq!(newly.len(), 1);
    }
}
