//! Sources: where raw records come from. Every source has one shape, the
//! [`Source`] trait: it hands the driver [`Arrival`]s — [`Chunk`]s of raw JSON
//! lines of one input with the position of each, task updates, and inputs that
//! start or stop holding the watermark back. Files feed `replay`, the generator
//! feeds `demo` (both interleaved by event time through [`merge`]), and a Kafka
//! consumer group feeds `run` ([`kafka`]).

pub mod ahead;
pub mod file;
pub mod generated;
pub mod kafka;
pub mod merge;

use std::sync::Arc;

pub use crate::core::chunk::{Chunk, Line, SourceName};
use crate::core::deadletter::Origin;
use crate::core::time::Millis;
use crate::decode::Decoded;

/// What a source hands the driver in one step.
#[derive(Debug)]
pub enum Arrival {
    /// Raw records of one input.
    Chunk(Chunk),
    /// Raw records of one input, already decoded (read ahead on worker threads).
    Decoded(Chunk, Box<Decoded>),
    /// A task update as it was read (JSON), parsed by the driver.
    TaskUpdate { text: String, origin: Origin },
    /// `input` (a Kafka partition of `feed`) holds the watermark back from now on.
    Started { feed: Arc<str>, input: String },
    /// `input` ended, went idle or was revoked: it stops holding the watermark back.
    Ended { input: String },
}

/// One finite input (a file, generated lines), read chunk by chunk by a
/// [`merge::Merge`], on its own thread or the caller's.
pub trait Reader: Send {
    fn feed(&self) -> &Arc<str>;
    /// The next chunk of lines; `None` at the end.
    fn next_chunk(&mut self) -> crate::error::Result<Option<Chunk>>;
    /// Known to hold nothing more without another read (generated data knows;
    /// a file knows only once a read has found nothing).
    fn exhausted(&self) -> bool {
        false
    }
    /// Bytes read so far, for a progress bar.
    fn bytes_read(&self) -> u64 {
        0
    }
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
