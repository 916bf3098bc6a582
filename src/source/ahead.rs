//! Reading ahead: a finite input read on its own thread and each chunk decoded
//! on the [`DecodePool`], so reading, decoding and the window stage run on
//! different cores at once. Chunks come out in the order the reader gave them,
//! so a run's output does not depend on the number of threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::{Chunk, Reader};
use crate::decode::{DecodePool, DecodeSpec, Decoded, Pending};
use crate::error::{Error, Result};

/// Chunks read and decoded in order, up to a bounded number ahead.
type Ahead = Receiver<Result<Option<Pending>>>;

/// A [`Reader`] read ahead on its own thread, each chunk decoded on the pool, so
/// reading, decoding and the window stage run at once. Chunks come out in the
/// order the reader gave them; at most `depth` wait, which bounds memory.
pub struct Prefetch {
    feed: Arc<str>,
    ahead: Ahead,
    bytes_read: Arc<AtomicU64>,
    done: bool,
}

impl Prefetch {
    pub fn new(
        mut reader: Box<dyn Reader>,
        pool: Arc<DecodePool>,
        spec: DecodeSpec,
        depth: usize,
    ) -> Self {
        let feed = reader.feed().clone();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (tx, ahead): (SyncSender<_>, _) = sync_channel(depth.max(1));
        let counter = bytes_read.clone();
        std::thread::spawn(move || {
            loop {
                let next = reader.next_chunk();
                counter.store(reader.bytes_read(), Ordering::Relaxed);
                let (item, last) = match next {
                    Ok(Some(chunk)) => (Ok(Some(pool.submit(&spec, chunk))), false),
                    Ok(None) => (Ok(None), true),
                    Err(e) => (Err(e), true),
                };
                // The consumer went away (the run stopped): stop reading.
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        });
        Prefetch {
            feed,
            ahead,
            bytes_read,
            done: false,
        }
    }

    /// The next chunk, decoded; `None` at the end.
    pub fn next_decoded(&mut self) -> Result<Option<(Chunk, Decoded)>> {
        if self.done {
            return Ok(None);
        }
        match self.ahead.recv() {
            Ok(Ok(Some(pending))) => pending.wait().map(Some),
            Ok(Ok(None)) => {
                self.done = true;
                Ok(None)
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Err(Error::Other(format!("the reader of {} stopped", self.feed)))
            }
        }
    }

    pub fn feed(&self) -> &Arc<str> {
        &self.feed
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}
