//! Where a consumer group's partitions resume: per partition, the next offset
//! not yet consumed (open windows are in the checkpoint, so nothing older is
//! read again); committed to the group once a checkpoint is durable.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaSource, Offsets};

/// Per partition, the next offset to consume.
#[derive(Debug, Default)]
pub(super) struct PartitionLog {
    pub(super) next: i64,
}

/// Where a restart resumes, per partition, and how far this process consumed.
#[derive(Debug, Default)]
pub struct Positions {
    pub resume: Offsets,
    pub consumed: Offsets,
}

impl KafkaSource {
    /// Where a restart resumes: every partition this process owns, after the
    /// last message consumed (the checkpoint holds the open windows' states).
    pub fn positions(&self) -> Positions {
        let mut positions = Positions::default();
        let owned = self.logs.iter().filter(|(at, _)| self.owned.contains(*at));
        for ((topic, p), log) in owned {
            let at = log.next;
            positions
                .resume
                .entry(topic.clone())
                .or_default()
                .insert(*p, at);
            positions
                .consumed
                .entry(topic.clone())
                .or_default()
                .insert(*p, log.next);
        }
        positions
    }

    /// Commits `resume` to the group; the checkpoint's offsets hold if it fails.
    pub fn commit(&self, resume: &Offsets) {
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in resume {
            for (p, at) in parts {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*at));
            }
        }
        if let Some(consumer) = &self.consumer
            && tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "committing offsets; the checkpoint's offsets still hold");
        }
    }
}
