//! The checkpoint durable in Kafka: every checkpoint is also written to a
//! compacted topic (`[state] topic`) before its offsets are committed, so an
//! instance on another machine, with an empty state dir, starts from it.
//!
//! A checkpoint can be far larger than a Kafka record (open windows with a
//! million keys take ~100 MB), so it goes in parts of [`PART_BYTES`] under the
//! keys `GROUP/SLOT/i`, then a manifest under the key `GROUP` naming its
//! sequence, slot, part count, where each part landed and the BLAKE3 digest.
//! Checkpoints alternate between two slots, so a write cut short never spoils
//! the checkpoint the manifest still names. A reader looks for the latest
//! manifest from the end of the topic backwards and then reads just its parts,
//! so a restore costs one checkpoint's bytes however many the topic still holds
//! (compaction keeps the latest record per key; a broker that does not compact
//! keeps them all).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::error::{Error, Result};

/// Largest part of a checkpoint in one record (Kafka's default limit is 1 MB).
const PART_BYTES: usize = 512 * 1024;
/// How long a write may wait for the broker's acknowledgements.
const WRITE_WAIT: Duration = Duration::from_secs(30);
const READ_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    sequence: u64,
    slot: u8,
    parts: usize,
    bytes: usize,
    blake3: String,
    /// Where each part landed: (partition, offset).
    locations: Vec<(i32, i64)>,
}

impl Manifest {
    fn of(sequence: u64, parts: usize, bytes: &[u8]) -> Manifest {
        Manifest {
            sequence,
            slot: (sequence % 2) as u8,
            parts,
            bytes: bytes.len(),
            blake3: blake3::hash(bytes).to_hex().to_string(),
            locations: Vec::new(),
        }
    }
}

/// Where the broker put each record, by key (the latest of a key wins).
#[derive(Clone, Default)]
struct Delivered(Arc<Mutex<HashMap<String, (i32, i64)>>>);

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let (Ok(m), Ok(mut at)) = (result, self.0.lock())
            && let Some(key) = m.key()
        {
            at.insert(
                String::from_utf8_lossy(key).into_owned(),
                (m.partition(), m.offset()),
            );
        }
    }
}

/// The key of part `i` of a checkpoint in `slot`.
fn part_key(group: &str, slot: u8, i: usize) -> String {
    format!("{group}/{slot}/{i}")
}

/// A part's record: the checkpoint's sequence, then its bytes.
fn part_value(sequence: u64, part: &[u8]) -> Vec<u8> {
    [&sequence.to_be_bytes()[..], part].concat()
}

/// Writes checkpoints of one consumer group to the state topic.
pub struct StateTopic {
    producer: BaseProducer<Delivered>,
    delivered: Delivered,
    topic: String,
    group: String,
}

impl StateTopic {
    /// A producer for `topic`; the topic is created compacted if it is not there.
    pub fn new(k: &KafkaConfig, topic: &str) -> Result<Self> {
        create_compacted(k, topic);
        let delivered = Delivered::default();
        let producer: BaseProducer<Delivered> = k
            .client()
            .set("enable.idempotence", "true")
            .set("message.max.bytes", (2 * PART_BYTES).to_string())
            .create_with_context(delivered.clone())
            .map_err(|e| Error::Other(format!("state topic producer: {e}")))?;
        Ok(StateTopic {
            producer,
            delivered,
            topic: topic.to_string(),
            group: k.group_id.clone(),
        })
    }

    /// Writes checkpoint `sequence` (its file's bytes): parts first, the
    /// manifest once they are acknowledged.
    pub fn write(&self, sequence: u64, bytes: &[u8]) -> Result<()> {
        let parts: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        let mut manifest = Manifest::of(sequence, parts.len(), bytes);
        let keys: Vec<String> = (0..parts.len())
            .map(|i| part_key(&self.group, manifest.slot, i))
            .collect();
        if let Ok(mut at) = self.delivered.0.lock() {
            at.clear();
        }
        for (key, part) in keys.iter().zip(&parts) {
            self.send(key, &part_value(sequence, part))?;
        }
        self.flush()?;
        let at = self
            .delivered
            .0
            .lock()
            .map_err(|_| Error::Other("state topic: delivery reports lost".into()))?;
        manifest.locations = keys
            .iter()
            .map(|k| at.get(k).copied())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Other("state topic: a part was not acknowledged".into()))?;
        drop(at);
        let text = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
        self.send(&self.group, &text)?;
        self.flush()
    }

    fn send(&self, key: &str, value: &[u8]) -> Result<()> {
        loop {
            match self
                .producer
                .send(BaseRecord::to(&self.topic).key(key).payload(value))
            {
                Ok(()) => return Ok(()),
                // The local queue is full: let deliveries drain it.
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(Error::Other(format!("state topic: {e}"))),
            }
        }
    }

    fn flush(&self) -> Result<()> {
        self.producer
            .flush(WRITE_WAIT)
            .map_err(|e| Error::Other(format!("state topic not acknowledged: {e}")))
    }
}

/// Creates `topic` compacted, one partition; an existing topic is left as it is.
fn create_compacted(k: &KafkaConfig, topic: &str) {
    let Ok(admin) = k.client().create::<AdminClient<DefaultClientContext>>() else {
        return;
    };
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let created = futures::executor::block_on(admin.create_topics(
        &[new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ));
    match created.map(|r| r.into_iter().next()) {
        Ok(Some(Ok(_))) => tracing::info!(topic, "created the state topic (compacted)"),
        Ok(Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)))) => {}
        Ok(other) => tracing::warn!(topic, result = ?other, "creating the state topic"),
        Err(e) => tracing::warn!(topic, error = %e, "creating the state topic"),
    }
}

/// What the state topic holds for a group.
#[derive(Debug, PartialEq)]
pub enum Stored {
    Nothing,
    /// The latest whole checkpoint: its sequence and its file's bytes.
    Found(u64, Vec<u8>),
    /// A checkpoint is named but its parts do not add up: why.
    Unusable(String),
}

/// The latest whole checkpoint of the group on `topic`. `Err`: the broker did
/// not answer (worth another try).
pub fn read_latest(k: &KafkaConfig, topic: &str) -> Result<Stored> {
    let group = &k.group_id;
    let consumer: BaseConsumer = k
        .client()
        // Never joined nor committed: librdkafka wants a group for `assign` all the same.
        .set("group.id", format!("{group}-state"))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", (2 * PART_BYTES).to_string())
        .create()
        .map_err(|e| Error::Other(format!("state topic consumer: {e}")))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), READ_WAIT)
        .map_err(|e| Error::Other(format!("state topic metadata: {e}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let reader = Reader {
        consumer: &consumer,
        topic,
    };
    // The latest manifest of any partition (the topic has one, as created).
    let mut newest: Option<(u64, Vec<u8>)> = None;
    for p in partitions {
        if let Some((sequence, text)) = reader.last_manifest(p, group)?
            && newest.as_ref().is_none_or(|(s, _)| sequence > *s)
        {
            newest = Some((sequence, text));
        }
    }
    let Some((_, text)) = newest else {
        return Ok(Stored::Nothing);
    };
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) {
        let keys: Vec<String> = (0..manifest.parts)
            .map(|i| part_key(group, manifest.slot, i))
            .collect();
        reader.parts(&manifest.locations, |key, value| {
            if keys.iter().any(|k| k.as_bytes() == key) {
                latest.insert(key.to_vec(), value.to_vec());
            }
        })?;
    }
    latest.insert(group.as_bytes().to_vec(), text);
    Ok(assemble(group, &latest).unwrap_or_else(|e| Stored::Unusable(e.to_string())))
}

/// Reads records of the state topic by offset.
struct Reader<'a> {
    consumer: &'a BaseConsumer,
    topic: &'a str,
}

impl Reader<'_> {
    /// Calls `f` with the offset, key and value of each record of partition
    /// `p` in `from..to` (fewer where compaction removed some).
    fn range(
        &self,
        p: i32,
        from: i64,
        to: i64,
        mut f: impl FnMut(i64, &[u8], &[u8]),
    ) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.topic, p, Offset::Offset(from))
            .map_err(|e| Error::Other(e.to_string()))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut next = from;
        while next < to {
            // Nothing more: the rest was compacted away (a part then goes
            // missing, which makes the checkpoint unusable, not the broker).
            let Some(m) = self.consumer.poll(READ_WAIT) else {
                break;
            };
            let m = m.map_err(|e| Error::Other(format!("reading the state topic: {e}")))?;
            next = m.offset() + 1;
            if m.offset() < to
                && let Some(key) = m.key()
            {
                f(m.offset(), key, m.payload().unwrap_or_default());
            }
        }
        Ok(())
    }

    /// The latest manifest of `group` in partition `p` (its sequence and text),
    /// looked for from the end backwards in growing steps.
    fn last_manifest(&self, p: i32, group: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(self.topic, p, READ_WAIT)
            .map_err(|e| Error::Other(format!("state topic offsets: {e}")))?;
        let (mut end, mut step) = (high, 64);
        while end > low {
            let start = (end - step).max(low);
            let mut found = None;
            self.range(p, start, end, |_, key, value| {
                if key == group.as_bytes() {
                    found = Some(value.to_vec());
                }
            })?;
            if let Some(text) = found {
                let sequence = serde_json::from_slice::<Manifest>(&text).map_or(0, |m| m.sequence);
                return Ok(Some((sequence, text)));
            }
            end = start;
            step *= 4;
        }
        Ok(None)
    }

    /// Reads the records at `locations`, each run of neighbouring offsets in one pass.
    fn parts(&self, locations: &[(i32, i64)], mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let mut sorted = locations.to_vec();
        sorted.sort_unstable();
        let mut i = 0;
        while i < sorted.len() {
            let (p, first) = sorted[i];
            let mut last = first;
            while i + 1 < sorted.len() && sorted[i + 1].0 == p && sorted[i + 1].1 <= last + 8 {
                i += 1;
                last = sorted[i].1;
            }
            let wanted: Vec<i64> = sorted.iter().filter(|l| l.0 == p).map(|l| l.1).collect();
            self.range(p, first, last + 1, |offset, key, value| {
                if wanted.binary_search(&offset).is_ok() {
                    f(key, value);
                }
            })?;
            i += 1;
        }
        Ok(())
    }
}

/// The checkpoint the manifest of `group` names, from the latest records by key.
fn assemble(group: &str, latest: &HashMap<Vec<u8>, Vec<u8>>) -> Result<Stored> {
    let Some(manifest) = latest.get(group.as_bytes()) else {
        return Ok(Stored::Nothing);
    };
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| Error::Other(format!("the state topic's manifest: {e}")))?;
    let mut bytes = Vec::with_capacity(manifest.bytes);
    for i in 0..manifest.parts {
        let key = part_key(group, manifest.slot, i);
        let part = latest
            .get(key.as_bytes())
            .filter(|v| v.len() >= 8 && v[..8] == manifest.sequence.to_be_bytes())
            .ok_or_else(|| {
                Error::Other(format!(
                    "the state topic lacks part {i} of checkpoint {}",
                    manifest.sequence
                ))
            })?;
        bytes.extend_from_slice(&part[8..]);
    }
    if blake3::hash(&bytes).to_hex().as_str() != manifest.blake3 {
        return Err(Error::Other(format!(
            "checkpoint {} on the state topic does not match its digest",
            manifest.sequence
        )));
    }
    Ok(Stored::Found(manifest.sequence, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(group: &str, sequence: u64, bytes: &[u8]) -> HashMap<Vec<u8>, Vec<u8>> {
        let mut out = HashMap::new();
        let parts: Vec<&[u8]> = bytes.chunks(3).collect();
        let manifest = Manifest::of(sequence, parts.len(), bytes);
        for (i, part) in parts.iter().enumerate() {
            out.insert(
                part_key(group, manifest.slot, i).into_bytes(),
                part_value(sequence, part),
            );
        }
        out.insert(
            group.as_bytes().to_vec(),
            serde_json::to_vec(&manifest).unwrap(),
        );
        out
    }

    #[test]
    fn the_manifest_names_the_parts_of_its_own_checkpoint() {
        let latest = records("g", 4, b"checkpoint four");
        assert_eq!(
            assemble("g", &latest).unwrap(),
            Stored::Found(4, b"checkpoint four".to_vec())
        );
        assert_eq!(assemble("other", &latest).unwrap(), Stored::Nothing);
    }

    #[test]
    fn a_write_cut_short_leaves_the_checkpoint_before_readable() {
        // Checkpoint 5 wrote its parts (slot 1) but not its manifest: 4 stands.
        let mut latest = records("g", 4, b"checkpoint four");
        let five = records("g", 5, b"checkpoint five!");
        for (k, v) in five {
            if k != b"g" {
                latest.insert(k, v);
            }
        }
        assert_eq!(
            assemble("g", &latest).unwrap(),
            Stored::Found(4, b"checkpoint four".to_vec())
        );
        // A part of the named checkpoint overwritten by another: refused.
        let mut spoiled = records("g", 4, b"checkpoint four");
        spoiled.insert(
            b"g/0/1".to_vec(),
            [6u64.to_be_bytes().to_vec(), b"xyz".to_vec()].concat(),
        );
        assert!(assemble("g", &spoiled).is_err());
    }
}
