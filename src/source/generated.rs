//! Generated lines (the demo's synthetic feeds) as a reader: chunks of a feed's
//! lines in memory, each numbered by its place in the sequence.

use std::sync::Arc;

use super::Reader;
use super::{Chunk, SourceName};
use crate::error::Result;

pub struct GeneratedReader {
    feed: Arc<str>,
    generator: Arc<str>,
    lines: Vec<String>,
    pos: usize,
    chunk_lines: usize,
}

impl GeneratedReader {
    pub fn new(generator: &str, feed: &str, lines: Vec<String>, chunk_lines: usize) -> Self {
        GeneratedReader {
            feed: feed.into(),
            generator: generator.into(),
            lines,
            pos: 0,
            chunk_lines,
        }
    }
}

impl Reader for GeneratedReader {
    fn feed(&self) -> &Arc<str> {
        &self.feed
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.pos == self.lines.len() {
            return Ok(None);
        }
        let end = (self.pos + self.chunk_lines).min(self.lines.len());
        let mut chunk = Chunk::new(
            self.feed.clone(),
            SourceName::Generated(self.generator.clone()),
        );
        for (n, line) in self.lines[self.pos..end].iter().enumerate() {
            chunk.push_line(line.as_bytes(), (self.pos + n + 1) as u64);
        }
        self.pos = end;
        Ok(Some(chunk))
    }

    fn exhausted(&self) -> bool {
        self.pos == self.lines.len()
    }
}
