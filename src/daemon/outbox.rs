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
    let mut seen = HashSet::new();
    let ends = scan(k, "outbox", topics, from, |payload| {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload)
            && let Some(id) = crate::sink::kafka::output_id(&v)
        {
            seen.insert(id);
        }
    })
    .map_err(|e| Error::Other(format!("{e}; not starting, to avoid sending twice")))?;
    Ok((seen, ends))
}

/// Every record of `topic`, from its start to where it ends now, one per line:
/// the tasks topic read out for `yujing report tasks`.
pub fn read_out(k: &KafkaConfig, topic: &str) -> Result<String> {
    let mut text = String::new();
    scan(k, "report", &[topic], &Offsets::new(), |payload| {
        text.push_str(&String::from_utf8_lossy(payload));
        text.push('\n');
    })?;
    Ok(text)
}

/// Reads `topics` from `from` (or their start) until they have been quiet for a
/// second, handing each payload to `each`; returns where each partition ended.
fn scan(
    k: &KafkaConfig,
    purpose: &str,
    topics: &[&str],
    from: &Offsets,
    mut each: impl FnMut(&[u8]),
) -> Result<Offsets> {
    let reader: BaseConsumer = k
        .client()
        .set("group.id", format!("{}-{purpose}", k.group_id))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(Error::doing("topic reader"))?;
    // Every partition of the topics, from the given offset (or the start). The
    // outbox reads while the previous process is gone, so the topics do not grow:
    // it reads until they have been quiet for a second.
    let md = reader
        .fetch_metadata(None, Duration::from_secs(5))
        .map_err(Error::doing("topic metadata"))?;
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
        return Ok(ends);
    }
    reader.assign(&tpl).map_err(Error::doing("topic assign"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(1) {
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "{} did not go quiet within 60 s",
                topics.join(", ")
            )));
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
        each(m.payload().unwrap_or_default());
    }
    Ok(ends)
}
