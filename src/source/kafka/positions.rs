//! Where a consumer group's partitions resume: per partition, the next offset
//! not yet consumed (open windows are in the checkpoint, so nothing older is
//! read again); committed to the group once a checkpoint is durable.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaSource, Offsets};

impl KafkaSource {
    /// Where a restart resumes, and how far this process consumed (the same
    /// since checkpoints hold the open windows): every partition it owns, after
    /// the last message consumed.
    pub fn positions(&self) -> Offsets {
        let mut positions = Offsets::new();
        for ((topic, p), next) in &self.next {
            if self.owned.contains(&(topic.clone(), *p)) {
                positions
                    .entry(topic.clone())
                    .or_default()
                    .insert(*p, *next);
            }
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
