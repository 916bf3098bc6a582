//! The checkpoint durable in Kafka: every checkpoint is also written to a
//! compacted topic (`[state] topic`) before its offsets are committed, so an
//! instance on another machine, with an empty state dir, starts from it.
//!
//! A checkpoint can be far larger than a Kafka record (open windows with a
//! million keys take ~100 MB), so it goes in parts of [`PART_BYTES`] under the
//! keys `GROUP/SLOT/i`, then a manifest under the key `GROUP` naming its
//! sequence, slot, part count and BLAKE3 digest. Checkpoints alternate between
//! two slots, so a write cut short never spoils the checkpoint the manifest
//! still names; compaction keeps the latest record of each key, which is all a
//! reader needs.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
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
}

impl Manifest {
    fn of(sequence: u64, parts: usize, bytes: &[u8]) -> Manifest {
        Manifest {
            sequence,
            slot: (sequence % 2) as u8,
            parts,
            bytes: bytes.len(),
            blake3: blake3::hash(bytes).to_hex().to_string(),
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
    producer: BaseProducer,
    topic: String,
    group: String,
}

impl StateTopic {
    /// A producer for `topic`; the topic is created compacted if it is not there.
    pub fn new(k: &KafkaConfig, topic: &str) -> Result<Self> {
        create_compacted(k, topic);
        let producer: BaseProducer = k
            .client()
            .set("enable.idempotence", "true")
            .set("message.max.bytes", (2 * PART_BYTES).to_string())
            .create()
            .map_err(|e| Error::Other(format!("state topic producer: {e}")))?;
        Ok(StateTopic {
            producer,
            topic: topic.to_string(),
            group: k.group_id.clone(),
        })
    }

    /// Writes checkpoint `sequence` (its file's bytes): parts first, the
    /// manifest once they are acknowledged.
    pub fn write(&self, sequence: u64, bytes: &[u8]) -> Result<()> {
        let parts: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        let manifest = Manifest::of(sequence, parts.len(), bytes);
        for (i, part) in parts.iter().enumerate() {
            let key = part_key(&self.group, manifest.slot, i);
            self.send(&key, &part_value(sequence, part))?;
        }
        self.flush()?;
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
    let mut latest: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let prefix = format!("{group}/");
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, READ_WAIT)
            .map_err(|e| Error::Other(format!("state topic offsets: {e}")))?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .map_err(|e| Error::Other(e.to_string()))?;
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut next = low;
        while next < high {
            let Some(m) = consumer.poll(READ_WAIT) else {
                return Err(Error::Other(format!(
                    "the state topic {topic} stopped at offset {next} of {high}"
                )));
            };
            let m = m.map_err(|e| Error::Other(format!("reading the state topic: {e}")))?;
            next = m.offset() + 1;
            let Some(key) = m.key() else { continue };
            if key == group.as_bytes() || key.starts_with(prefix.as_bytes()) {
                latest.insert(key.to_vec(), m.payload().unwrap_or_default().to_vec());
            }
        }
    }
    Ok(assemble(group, &latest).unwrap_or_else(|e| Stored::Unusable(e.to_string())))
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
