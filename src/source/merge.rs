//! Several finite inputs (files, generated feeds) as one source, interleaved by
//! event time: the input furthest behind goes next, ties to the first given, so
//! the feeds of a replay arrive roughly in event-time order and every run of the
//! same inputs is the same run. Task updates read up front are handed out first.
//! With a [`DecodePool`], every input is read and decoded ahead ([`Prefetch`]);
//! the order in which chunks are handed out stays the same.

use std::sync::Arc;

use super::ahead::Prefetch;
use super::{Arrival, Chunk, Reader, Source};
use crate::core::time::Millis;
use crate::decode::{DecodePool, DecodeSpec};
use crate::error::Result;

/// Chunks of one input a [`Prefetch`] may hold decoded ahead of the window stage.
const READ_AHEAD: usize = 4;

/// An input as read: chunk by chunk on the caller's thread, or ahead.
enum Input {
    Inline(Box<dyn Reader>),
    Ahead(Prefetch),
}

impl Input {
    fn feed(&self) -> &Arc<str> {
        match self {
            Input::Inline(r) => r.feed(),
            Input::Ahead(p) => p.feed(),
        }
    }

    fn next(&mut self) -> Result<Option<Arrival>> {
        Ok(match self {
            Input::Inline(r) => r.next_chunk()?.map(Arrival::Chunk),
            Input::Ahead(p) => p
                .next_decoded()?
                .map(|(chunk, decoded)| Arrival::Decoded(chunk, Box::new(decoded))),
        })
    }

    fn exhausted(&self) -> bool {
        match self {
            Input::Inline(r) => r.exhausted(),
            // Known only once a read has found nothing, as for a file.
            Input::Ahead(_) => false,
        }
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Input::Inline(r) => r.bytes_read(),
            Input::Ahead(p) => p.bytes_read(),
        }
    }
}

struct Slot {
    reader: Input,
    /// The latest event time of its chunks so far.
    progress: Millis,
    done: bool,
}

/// Finite readers interleaved by event time.
pub struct Merge {
    slots: Vec<Slot>,
    /// The slot whose chunk was handed out last.
    last: Option<usize>,
    first: Vec<Arrival>,
    bar: Option<indicatif::ProgressBar>,
}

impl Merge {
    pub fn new(readers: Vec<Box<dyn Reader>>) -> Self {
        Merge {
            slots: readers
                .into_iter()
                .map(|reader| Slot {
                    reader: Input::Inline(reader),
                    progress: Millis::MIN,
                    done: false,
                })
                .collect(),
            last: None,
            first: Vec::new(),
            bar: None,
        }
    }

    /// Reads and decodes every input ahead on `pool`; `spec` gives a feed's
    /// decoder (feeds without one stay inline and are decoded by the engine).
    pub fn read_ahead(
        mut self,
        pool: &Arc<DecodePool>,
        spec: impl Fn(&str) -> Option<DecodeSpec>,
    ) -> Self {
        self.slots = std::mem::take(&mut self.slots)
            .into_iter()
            .map(|mut slot| {
                if let Input::Inline(reader) = slot.reader {
                    slot.reader = match spec(reader.feed()) {
                        Some(spec) => {
                            Input::Ahead(Prefetch::new(reader, pool.clone(), spec, READ_AHEAD))
                        }
                        None => Input::Inline(reader),
                    };
                }
                slot
            })
            .collect();
        self
    }

    /// Arrivals handed out before any chunk (task updates read up front).
    pub fn with_first(mut self, arrivals: Vec<Arrival>) -> Self {
        self.first = arrivals;
        self
    }

    /// Shows how much of `total_bytes` was read.
    pub fn with_progress_bar(mut self, bar: indicatif::ProgressBar) -> Self {
        self.bar = Some(bar);
        self
    }

    /// The input `i` ended: its feed stops holding watermarks back once no other
    /// input of the feed is open.
    fn end(&mut self, i: usize) -> Option<Arrival> {
        self.slots[i].done = true;
        let feed = self.slots[i].reader.feed().clone();
        let others_open = self
            .slots
            .iter()
            .any(|s| !s.done && s.reader.feed() == &feed);
        (!others_open).then(|| Arrival::Ended {
            input: feed.to_string(),
        })
    }
}

impl Source for Merge {
    fn feed_inputs(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.reader.feed().to_string())
            .collect()
    }

    fn next(&mut self) -> Result<Option<Vec<Arrival>>> {
        if !self.first.is_empty() {
            return Ok(Some(std::mem::take(&mut self.first)));
        }
        let next = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.done)
            .min_by_key(|(i, s)| (s.progress, *i))
            .map(|(i, _)| i);
        let Some(i) = next else {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            return Ok(None);
        };
        self.last = Some(i);
        let arrivals = match self.slots[i].reader.next()? {
            Some(chunk) => {
                let mut arrivals = vec![chunk];
                if self.slots[i].reader.exhausted() {
                    arrivals.extend(self.end(i));
                }
                arrivals
            }
            None => self.end(i).into_iter().collect(),
        };
        if let Some(bar) = &self.bar {
            bar.set_position(self.slots.iter().map(|s| s.reader.bytes_read()).sum());
        }
        Ok(Some(arrivals))
    }

    fn processed(&mut self, _chunk: &Chunk, max_time: Option<Millis>) {
        if let (Some(i), Some(t)) = (self.last, max_time) {
            let slot = &mut self.slots[i];
            slot.progress = slot.progress.max(t);
        }
    }
}
