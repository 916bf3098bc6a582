//! The outbox: before a restarted daemon joins its group it reads its output
//! topics back from the ends its checkpoint recorded, so that what the previous
//! process sent after that checkpoint (ids are deterministic) is not sent again.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::source::kafka::Offsets;

/// Reads the output topics from `from` (or their start) to their current end and
/// returns the ids of what is there (what must not be sent again) and where each
/// partition ended.
pub(super) fn read_back(
    k: &KafkaConfig,
    topics: &[&str],
    from: &Offsets,
) -> Result<(HashSet<String>, Offsets)> {
    let reader: BaseConsumer = k
        .client()
        .set("group.id", format!("{}-outbox", k.group_id))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(Error::doing("outbox reader"))?;
    // Every partition of the output topics, from the checkpointed offset (or the
    // start). The previous process is gone, so the topics do not grow while this
    // reads: it reads until they have been quiet for a second.
    let md = reader
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(Error::doing("outbox metadata"))?;
    for missing in topics.iter().filter(|t| {
        !md.topics()
            .iter()
            .any(|m| m.name() == **t && !m.partitions().is_empty())
    }) {
        tracing::error!(topic = %missing, "an output topic does not exist: create it, or its records wait (and /readyz says not ready)");
    }
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if !topics.contains(&t.name()) {
            continue;
        }
        for p in t.partitions() {
            let start = from
                .get(t.name())
                .and_then(|m| m.get(&p.id()))
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            let _ = tpl.add_partition_offset(t.name(), p.id(), start);
        }
    }
    let mut seen = HashSet::new();
    // A lower bound of each end: where reading starts, raised by what is read.
    let mut ends = Offsets::new();
    for e in tpl.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        ends.entry(e.topic().to_string())
            .or_default()
            .insert(e.partition(), at);
    }
    if tpl.count() == 0 {
        return Ok((seen, ends));
    }
    reader.assign(&tpl).map_err(Error::doing("outbox assign"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(1) {
        if Instant::now() > deadline {
            return Err(Error::Other(
                "the output topics did not go quiet within 60 s; not starting, to avoid sending twice".into(),
            ));
        }
        let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        if let Some(end) = ends
            .get_mut(m.topic())
            .and_then(|parts| parts.get_mut(&m.partition()))
        {
            *end = (*end).max(m.offset() + 1);
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
            && let Some(id) = crate::sink::kafka::output_id(&v)
        {
            seen.insert(id);
        }
    }
    Ok((seen, ends))
}
