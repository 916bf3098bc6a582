//! Where a consumer group's partitions resume: per partition, the first offset
//! and latest event time of every chunk not yet known to be in closed windows,
//! and the next offset; committed to the group once a checkpoint is durable.

use std::collections::VecDeque;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaSource, Offsets};
use crate::core::time::Millis;

/// Per partition, what a restart must re-read: the first offset and latest event
/// time of each chunk not yet known to be in closed windows, and the next offset.
#[derive(Debug, Default)]
pub(super) struct PartitionLog {
    pub(super) chunks: VecDeque<(i64, Option<Millis>)>,
    pub(super) next: i64,
}

impl PartitionLog {
    /// The offset to resume from, given the earliest open bin; forgets chunks whose
    /// events are all before it (their windows have closed for good).
    fn resume_at(&mut self, earliest_open: Option<Millis>) -> i64 {
        let needed = |t: Option<Millis>| matches!((t, earliest_open), (Some(t), Some(e)) if t >= e);
        while self.chunks.front().is_some_and(|c| !needed(c.1)) {
            self.chunks.pop_front();
        }
        self.chunks.front().map_or(self.next, |c| c.0)
    }
}

/// Where a restart resumes, per partition, and how far this process consumed.
#[derive(Debug, Default)]
pub struct Positions {
    pub resume: Offsets,
    pub consumed: Offsets,
}

impl KafkaSource {
    /// Where a restart resumes, given the engine's earliest open bin: a feed
    /// partition at its earliest message with an event in a still-open bin, the
    /// task updates after the last one read.
    pub fn positions(&mut self, earliest_open: Option<Millis>) -> Positions {
        let mut positions = Positions::default();
        for ((topic, p), log) in self.logs.iter_mut() {
            let at = if *topic == self.task_topic {
                log.next
            } else {
                log.resume_at(earliest_open)
            };
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
