//! A chunk: a block of raw records of one feed as a source read them, with
//! where each came from (file line, generator sequence, Kafka offset). Sources
//! make chunks and the decoder reads them, so the type lives below both.

use std::ops::Range;
use std::sync::Arc;

use super::deadletter::Origin;

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
