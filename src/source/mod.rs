//! Sources: where raw records come from. Every source has one shape, the
//! [`Source`] trait: it hands the driver [`Arrival`]s — [`Chunk`]s of raw JSON
//! lines of one input with the position of each, task updates, and inputs that
//! start or stop holding the watermark back. Files feed `replay`, the generator
//! feeds `demo` (both interleaved by event time through [`merge`]), and a Kafka
//! consumer group feeds `run` ([`kafka`]).

pub mod file;
pub mod generated;
pub mod kafka;
pub mod merge;

use std::ops::Range;
use std::sync::Arc;

use crate::core::deadletter::Origin;
use crate::core::time::Millis;

/// What a source hands the driver in one step.
#[derive(Debug)]
pub enum Arrival {
    /// Raw records of one input.
    Chunk(Chunk),
    /// A task update as it was read (JSON), parsed by the driver.
    TaskUpdate { text: String, origin: Origin },
    /// `input` (a Kafka partition of `feed`) holds the watermark back from now on.
    Started { feed: Arc<str>, input: String },
    /// `input` ended, went idle or was revoked: it stops holding the watermark back.
    Ended { input: String },
}

/// Where records come from. The driver asks for the next arrivals until the
/// source is exhausted (files, generated data) or the run is stopped (Kafka).
pub trait Source {
    /// The feeds whose feed-level input this source drives; the others step aside
    /// at once (a feed no file provides, or every feed when partitions are the inputs).
    fn feed_inputs(&self) -> Vec<String>;
    /// What arrived since the last call (possibly nothing); `None` once exhausted.
    fn next(&mut self) -> crate::error::Result<Option<Vec<Arrival>>>;
    /// The driver processed `chunk`, whose events reach `max_time` (`None`: no
    /// event decoded). Lets a source interleave inputs or remember positions.
    fn processed(&mut self, _chunk: &Chunk, _max_time: Option<Millis>) {}
}

/// Where the lines of a chunk were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceName {
    File(Arc<str>),
    Generated(Arc<str>),
    /// A Kafka partition; line positions are offsets.
    Kafka {
        topic: Arc<str>,
        partition: i32,
    },
}

/// A block of raw records of one feed.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub feed: Arc<str>,
    pub source: SourceName,
    /// The raw bytes; records are the `lines` ranges of it.
    pub bytes: Vec<u8>,
    pub lines: Vec<Line>,
}

/// One raw record inside a chunk.
#[derive(Debug, Clone)]
pub struct Line {
    pub range: Range<usize>,
    /// 1-based line number in a file, or sequence number for generated data.
    pub pos: u64,
}

impl Chunk {
    pub fn new(feed: Arc<str>, source: SourceName) -> Self {
        Chunk {
            feed,
            source,
            bytes: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub fn push_line(&mut self, text: &[u8], pos: u64) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(text);
        self.lines.push(Line {
            range: start..self.bytes.len(),
            pos,
        });
    }

    pub fn raw(&self, line: usize) -> &[u8] {
        &self.bytes[self.lines[line].range.clone()]
    }

    pub fn origin(&self, line: usize) -> Origin {
        let pos = self.lines[line].pos;
        match &self.source {
            SourceName::File(f) => Origin::File {
                file: f.to_string(),
                line: pos,
            },
            SourceName::Generated(g) => Origin::Generated {
                generator: g.to_string(),
                seq: pos,
            },
            SourceName::Kafka { topic, partition } => Origin::Kafka {
                topic: topic.to_string(),
                partition: *partition,
                offset: pos as i64,
            },
        }
    }

    /// The input whose watermark this chunk advances: its feed, or one Kafka
    /// partition of it.
    pub fn input(&self) -> String {
        match &self.source {
            SourceName::Kafka { partition, .. } => format!("{}/{partition}", self.feed),
            _ => self.feed.to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}
