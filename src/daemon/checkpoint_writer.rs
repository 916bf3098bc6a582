//! Checkpoints written off the consume path. The engine's thread takes the
//! state (sealing the open windows) and hands it over; this thread serialises
//! it and writes it to the state dir and the state topic, then reports back, so
//! the offsets are committed only once their checkpoint is durable. One write
//! is in flight at a time: a checkpoint falling due meanwhile waits for it.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use super::checkpoint::{Checkpoint, StateDir};
use super::state_topic::StateTopic;
use crate::error::{Error, Result};
use crate::source::kafka::Offsets;

enum Job {
    Write(Box<Checkpoint>),
    /// Mark the state dir stopped cleanly, and end.
    Stop,
}

/// A checkpoint written (or not), for the engine's thread to commit.
pub struct Written {
    pub sequence: u64,
    pub offsets: Offsets,
    /// Its size in bytes, or why it was not written.
    pub result: Result<usize>,
    /// When its state was taken.
    pub taken: Instant,
}

pub struct CheckpointWriter {
    jobs: Sender<(Job, Instant)>,
    done: Receiver<Written>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl CheckpointWriter {
    /// Starts the writer; it owns the state dir (and its lock) from now on.
    pub fn spawn(state: StateDir, topic: Option<StateTopic>) -> Result<Self> {
        let (jobs, inbox) = channel::<(Job, Instant)>();
        let (report, done) = channel();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || write_loop(state, topic, &inbox, &report))
            .map_err(|e| Error::Other(format!("starting the checkpoint writer: {e}")))?;
        Ok(CheckpointWriter {
            jobs,
            done,
            thread: Some(thread),
            in_flight: false,
        })
    }

    pub fn busy(&self) -> bool {
        self.in_flight
    }

    /// Hands a checkpoint over; call only when not [`busy`](Self::busy).
    pub fn submit(&mut self, cp: Checkpoint, taken: Instant) -> Result<()> {
        self.jobs
            .send((Job::Write(Box::new(cp)), taken))
            .map_err(|_| Error::Other("the checkpoint writer has stopped".into()))?;
        self.in_flight = true;
        Ok(())
    }

    /// The checkpoint in flight, if it has been written since (or its writer
    /// is gone: then as not written).
    pub fn finished(&mut self) -> Option<Written> {
        use std::sync::mpsc::TryRecvError;
        match self.done.try_recv() {
            Ok(w) => {
                self.in_flight = false;
                Some(w)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) if self.in_flight => {
                self.in_flight = false;
                Some(Written {
                    sequence: 0,
                    offsets: Offsets::new(),
                    result: Err(Error::Other("the checkpoint writer has stopped".into())),
                    taken: Instant::now(),
                })
            }
            Err(TryRecvError::Disconnected) => None,
        }
    }

    /// Waits for the checkpoint in flight, if any.
    pub fn wait(&mut self) -> Option<Written> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        self.done.recv().ok()
    }

    /// Marks the state dir stopped cleanly and ends the thread.
    pub fn stop(&mut self) {
        let _ = self.jobs.send((Job::Stop, Instant::now()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(
    mut state: StateDir,
    topic: Option<StateTopic>,
    inbox: &Receiver<(Job, Instant)>,
    report: &Sender<Written>,
) {
    while let Ok((job, taken)) = inbox.recv() {
        let cp = match job {
            Job::Write(cp) => cp,
            Job::Stop => {
                state.stopped();
                return;
            }
        };
        let result = cp.to_bytes().and_then(|bytes| {
            state.write(&bytes)?;
            if let Some(topic) = &topic {
                topic.write(cp.sequence, &bytes)?;
            }
            Ok(bytes.len())
        });
        let written = Written {
            sequence: cp.sequence,
            offsets: cp.offsets,
            result,
            taken,
        };
        if report.send(written).is_err() {
            return;
        }
    }
}
