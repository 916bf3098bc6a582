//! JSON-lines files as a source: reads a file in chunks of lines, keeping each
//! line's number for dead letters. Lines need not be valid UTF-8 here; the
//! decoder says what is wrong with them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Reader;
use super::{Chunk, Line, SourceName};
use crate::error::{Error, Result};

pub struct FileReader {
    feed: Arc<str>,
    name: Arc<str>,
    path: PathBuf,
    reader: BufReader<File>,
    line_no: u64,
    done: bool,
    bytes_read: u64,
    chunk_lines: usize,
}

impl FileReader {
    /// Opens `path` to be read `chunk_lines` lines at a time.
    pub fn open(feed: &str, path: &Path, chunk_lines: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(FileReader {
            feed: feed.into(),
            name: path.display().to_string().into(),
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            line_no: 0,
            done: false,
            bytes_read: 0,
            chunk_lines,
        })
    }

    /// Reads up to `max_lines` lines; `None` at end of file. A final empty line
    /// (the newline that ends the file) is not a record.
    fn read_lines(&mut self, max_lines: usize) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut chunk = Chunk::new(self.feed.clone(), SourceName::File(self.name.clone()));
        chunk.bytes.reserve(max_lines * 256);
        while chunk.len() < max_lines {
            // Read straight into the chunk: one copy of each byte.
            let start = chunk.bytes.len();
            let n = self
                .reader
                .read_until(b'\n', &mut chunk.bytes)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.bytes_read += n as u64;
            self.line_no += 1;
            let mut end = chunk.bytes.len();
            if chunk.bytes[start..end].ends_with(b"\n") {
                end -= 1;
            }
            if chunk.bytes[start..end].ends_with(b"\r") {
                end -= 1;
            }
            chunk.lines.push(Line {
                range: start..end,
                pos: self.line_no,
            });
        }
        Ok(if chunk.is_empty() { None } else { Some(chunk) })
    }
}

impl Reader for FileReader {
    fn feed(&self) -> &Arc<str> {
        &self.feed
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        self.read_lines(self.chunk_lines)
    }

    fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}
