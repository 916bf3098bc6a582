//! Decoding on worker threads. Decoding a chunk depends on nothing but the chunk,
//! its feed's schema and the decode options, so chunks can be decoded anywhere and
//! in any order; the callers take the results in the order they submitted them,
//! which keeps every run's output the same as a run on one thread.
//!
//! Two uses: a file source reads and decodes ahead of the window stage
//! ([`crate::source::ahead`], replay), and the driver decodes the chunks of one
//! Kafka poll side by side (the daemon). A pool of one thread is never made: on
//! one core decoding stays inline, as before.

use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{DecodeOptions, Decoded, Decoder};
use crate::core::chunk::Chunk;
use crate::error::{Error, Result};
use crate::schema::FeedSchema;

type Job = Box<dyn FnOnce() + Send>;

/// What a worker needs to decode a feed's chunk.
#[derive(Clone)]
pub struct DecodeSpec {
    pub schema: Arc<FeedSchema>,
    pub options: DecodeOptions,
    /// The columns to build (see [`super::columns_to_build`]).
    pub build: Arc<[bool]>,
}

/// A chunk submitted to the pool; [`Pending::wait`] gives it back decoded.
pub struct Pending(Receiver<(Chunk, Decoded)>);

impl Pending {
    pub fn wait(self) -> Result<(Chunk, Decoded)> {
        self.0
            .recv()
            .map_err(|_| Error::Other("a decode worker stopped".into()))
    }
}

/// Worker threads that decode chunks.
pub struct DecodePool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl DecodePool {
    /// A pool of `threads` workers, or `None` when `threads` is below two
    /// (decoding inline costs less than handing chunks to one other thread).
    pub fn new(threads: usize) -> Option<Arc<Self>> {
        if threads < 2 {
            return None;
        }
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .map(|i| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("yujing-decode-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take a job, not to run it.
                            let job = match queue.lock() {
                                Ok(q) => q.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .ok()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Arc::new(DecodePool {
            jobs: Some(jobs),
            workers,
        }))
    }

    /// The pool for this machine: one worker per core this process may use.
    pub fn for_cores(threads: Option<usize>) -> Option<Arc<Self>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(threads.unwrap_or(cores))
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Decodes `chunk` on a worker.
    pub fn submit(&self, spec: &DecodeSpec, chunk: Chunk) -> Pending {
        let (done, pending) = sync_channel(1);
        let spec = spec.clone();
        let job: Job = Box::new(move || {
            let decoded = Decoder::new(spec.schema, spec.options)
                .building(spec.build)
                .decode(&chunk);
            // The receiver may be gone (the run stopped): nothing to deliver to.
            let _ = done.send((chunk, decoded));
        });
        if let Some(jobs) = &self.jobs {
            // Workers end only when the pool drops, so the send succeeds.
            let _ = jobs.send(job);
        }
        Pending(pending)
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
