//! JSON-lines files as a source: reads a file in chunks of lines, keeping each
//! line's number for dead letters. Lines need not be valid UTF-8 here; the
//! decoder says what is wrong with them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Chunk, Line, Reader, SourceName};
use crate::error::{Error, Result};

/// Bytes asked of the kernel at a time, read straight into the chunk; what is
/// read past the chunk's last line (less than a block) is copied to the next.
const BLOCK: usize = 64 << 10;

pub struct FileReader {
    feed: Arc<str>,
    name: Arc<str>,
    path: PathBuf,
    file: File,
    /// Bytes read past the last line handed out: the start of the next chunk.
    rest: Vec<u8>,
    /// Room to reserve for a chunk (the last one's size and a block), so it
    /// is not moved while it fills.
    capacity: usize,
    line_no: u64,
    /// The file is read to its end (what is in `rest` is still to come).
    eof: bool,
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
            file,
            rest: Vec::new(),
            capacity: chunk_lines * 256 + BLOCK,
            line_no: 0,
            eof: false,
            bytes_read: 0,
            chunk_lines,
        })
    }

    /// Reads up to `max_lines` lines; `None` at end of file. Every newline ends
    /// a line (an empty one too); bytes after the last newline are a last line,
    /// and the newline that ends the file starts none. A `\r` before the newline
    /// is not part of the line.
    fn read_lines(&mut self, max_lines: usize) -> Result<Option<Chunk>> {
        let mut chunk = Chunk::new(self.feed.clone(), SourceName::File(self.name.clone()));
        // The kernel copies into the chunk's own buffer: no second copy per byte.
        chunk.bytes.reserve(self.capacity);
        chunk.bytes.extend_from_slice(&self.rest);
        self.rest.clear();
        let mut scanned = 0;
        let mut line_start = 0;
        while chunk.len() < max_lines {
            if let Some(k) = memchr::memchr(b'\n', &chunk.bytes[scanned..]) {
                let end = scanned + k;
                self.push_line(&mut chunk, line_start..end);
                line_start = end + 1;
                scanned = line_start;
                continue;
            }
            scanned = chunk.bytes.len();
            if self.eof {
                let end = chunk.bytes.len();
                if line_start < end {
                    self.push_line(&mut chunk, line_start..end);
                    line_start = end;
                }
                break;
            }
            self.fill(&mut chunk.bytes)?;
        }
        self.rest.extend_from_slice(&chunk.bytes[line_start..]);
        chunk.bytes.truncate(line_start);
        self.capacity = self.capacity.max(chunk.bytes.len() + 2 * BLOCK);
        Ok(if chunk.is_empty() { None } else { Some(chunk) })
    }

    fn push_line(&mut self, chunk: &mut Chunk, range: std::ops::Range<usize>) {
        self.line_no += 1;
        let mut end = range.end;
        if chunk.bytes[range.start..end].ends_with(b"\r") {
            end -= 1;
        }
        chunk.lines.push(Line {
            range: range.start..end,
            pos: self.line_no,
        });
    }

    /// Appends the next block of the file to `bytes`; notes the end of file.
    fn fill(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        // read_to_end reads into the spare capacity without zeroing it first.
        let n = (&mut self.file)
            .take(BLOCK as u64)
            .read_to_end(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.bytes_read += n as u64;
        self.eof = n == 0;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `text` read `per_chunk` lines at a time: (line number, text).
    fn lines(text: &[u8], per_chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, text).unwrap();
        let mut r = FileReader::open("f", &path, per_chunk).unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = r.next_chunk().unwrap() {
            assert!(chunk.len() <= per_chunk);
            for (i, l) in chunk.lines.iter().enumerate() {
                out.push((l.pos, chunk.raw(i).to_vec()));
            }
        }
        assert_eq!(r.bytes_read(), text.len() as u64);
        out
    }

    #[test]
    fn lines_end_at_newlines_wherever_the_reads_cut() {
        let long = vec![b'x'; 3 * BLOCK + 17];
        let mut text = b"a\r\nb\n\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nlast");
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"a".to_vec()),
            (2, b"b".to_vec()),
            (3, b"".to_vec()),
            (4, long.clone()),
            (5, b"last".to_vec()),
        ];
        for per_chunk in [1, 2, 3, 8192] {
            assert_eq!(lines(&text, per_chunk), want, "{per_chunk} a chunk");
        }
        // The newline that ends the file starts no line; an empty file has none.
        assert_eq!(lines(b"a\n", 4), vec![(1, b"a".to_vec())]);
        assert_eq!(lines(b"", 4), vec![]);
        assert_eq!(lines(b"\n", 4), vec![(1, b"".to_vec())]);
    }
}
