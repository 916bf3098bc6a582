//! The driver: the one loop every run shares. It owns the engine, a [`Source`],
//! a [`Sink`] and, in the daemon, a [`Checkpointer`]; `replay`, `demo` and `run`
//! only choose them. Each step takes what the source has — chunks, task updates,
//! inputs starting or ending — through the engine into the sink, then lets the
//! checkpointer look. A finite source's end closes every window; a stop (SIGTERM)
//! leaves them open for the last checkpoint to keep. With a [`DecodePool`], the
//! chunks of one step (a Kafka poll: one per partition) are decoded side by side
//! and processed in their order as each is ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use crate::core::deadletter::{DeadLetter, Origin};
use crate::decode::{DecodePool, Pending, redacted_command};
use crate::engine::Engine;
use crate::error::Result;
use crate::pipeline::Compiled;
use crate::sink::Sink;
use crate::source::{Arrival, Source};
use crate::task::Command;
use crate::task::command::{INPUT, Update};

/// What the daemon does between steps: checkpoints, readiness.
pub trait Checkpointer<Src, S> {
    /// After every step: takes a checkpoint when one is due.
    fn after_step(&mut self, engine: &mut Engine, source: &mut Src, sink: &mut S) -> Result<()>;
    /// The run was told to stop: the last checkpoint, with windows still open.
    fn at_stop(&mut self, engine: &mut Engine, source: &mut Src, sink: &mut S) -> Result<()>;
}

pub struct Driver<Src, S> {
    pub engine: Engine,
    pub source: Src,
    pub sink: S,
    checkpointer: Option<Box<dyn Checkpointer<Src, S>>>,
    /// Task updates from the HTTP API, dated when they are applied.
    updates: Option<Receiver<Update>>,
    stop: Option<Arc<AtomicBool>>,
    pool: Option<Arc<DecodePool>>,
    reload: Option<Reload>,
    /// Task updates for tasks this engine does not hold are left to the engine
    /// that does (a task's engine, when state is kept per partition).
    /// `Some(true)`: this one also dead-letters updates that are not commands.
    only_held: Option<bool>,
}

/// A live redeploy (the daemon's SIGHUP, `POST /api/reload`): once requested,
/// the next step first compiles the new set with `compile` and swaps it in; a
/// set that does not compile is refused and the running one goes on.
pub struct Reload {
    pub requests: Arc<ReloadRequests>,
    pub compile: Box<dyn FnMut() -> Result<Compiled>>,
    /// A state saved by `replay --save-state` over history, read at each
    /// redeploy if it is there: pipelines started afresh take their series from it.
    pub warm: Option<std::path::PathBuf>,
}

/// Where redeploys are asked for and their outcomes told, between the signal
/// handler or the HTTP API and the driver.
#[derive(Debug, Default)]
pub struct ReloadRequests {
    requested: AtomicBool,
    /// How many redeploys were tried, and what the last one did (or why not).
    outcome: std::sync::Mutex<(u64, Option<std::result::Result<String, String>>)>,
}

impl ReloadRequests {
    pub fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    /// How many redeploys were tried so far.
    pub fn tried(&self) -> u64 {
        self.outcome.lock().map_or(0, |o| o.0)
    }

    /// The outcome of the latest redeploy, once more than `tried` were tried.
    pub fn outcome_after(&self, tried: u64) -> Option<std::result::Result<String, String>> {
        let o = self.outcome.lock().ok()?;
        o.1.clone().filter(|_| o.0 > tried)
    }

    fn told(&self, outcome: std::result::Result<String, String>) {
        if let Ok(mut o) = self.outcome.lock() {
            *o = (o.0 + 1, Some(outcome));
        }
    }
}

/// The saved state at `path`, if there is one that reads; a bad one is said
/// and left out (the pipelines then start cold).
fn read_warm(path: &std::path::Path) -> Option<crate::engine::EngineState> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "the warm state does not read: pipelines start cold");
            None
        }
    }
}

/// An arrival of a step, or a chunk of it on the decode pool.
enum Next {
    Now(Arrival),
    Decoding(Pending),
}

impl<Src: Source, S: Sink> Driver<Src, S> {
    /// Feeds whose feed-level input the source does not drive step aside at
    /// once (nothing has been read, so nothing is emitted).
    pub fn new(mut engine: Engine, source: Src, mut sink: S) -> Result<Self> {
        let driven = source.feed_inputs();
        for feed in engine.feeds_read() {
            if !driven.contains(&feed) {
                engine.finish_feed(&feed, &mut sink)?;
            }
        }
        Ok(Driver {
            engine,
            source,
            sink,
            checkpointer: None,
            updates: None,
            stop: None,
            pool: None,
            reload: None,
            only_held: None,
        })
    }

    pub fn with_checkpointer(mut self, c: Box<dyn Checkpointer<Src, S>>) -> Self {
        self.checkpointer = Some(c);
        self
    }

    pub fn with_updates(mut self, updates: Receiver<Update>) -> Self {
        self.updates = Some(updates);
        self
    }

    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn with_reload(mut self, reload: Reload) -> Self {
        self.sink.definitions(&self.engine.definitions(), None);
        self.reload = Some(reload);
        self
    }

    /// Applies only the task updates of tasks the engine holds; dead-letters
    /// the updates that are not commands if `bad_ones`.
    pub fn only_held_tasks(mut self, bad_ones: bool) -> Self {
        self.only_held = Some(bad_ones);
        self
    }

    /// Decodes the chunks of a step on `pool` (none: on this thread).
    pub fn with_decode_pool(mut self, pool: Option<Arc<DecodePool>>) -> Self {
        self.pool = pool;
        self
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Runs until the source is exhausted (every window closes) or the run is
    /// told to stop (open windows are left to the last checkpoint).
    pub fn run(&mut self) -> Result<()> {
        while !self.stopped() {
            if !self.step()? {
                return self.engine.finish(&mut self.sink);
            }
        }
        match self.checkpointer.as_mut() {
            Some(c) => c.at_stop(&mut self.engine, &mut self.source, &mut self.sink),
            None => Ok(()),
        }
    }

    /// One step; false once the source is exhausted.
    pub fn step(&mut self) -> Result<bool> {
        if let Some(reload) = self.reload.as_mut()
            && reload.requests.requested.swap(false, Ordering::Relaxed)
        {
            self.redeploy()?;
        }
        if let Some(updates) = &self.updates {
            while let Ok(u) = updates.try_recv() {
                let time = self.engine.task_time().unwrap_or(0);
                let c = u.at(time);
                if self.only_held.is_none() || self.engine.holds_task(&c.task_id) {
                    self.engine.task_command(c);
                }
            }
        }
        let Some(arrivals) = self.source.next()? else {
            return Ok(false);
        };
        for next in self.start_decoding(arrivals) {
            match next {
                Next::Now(arrival) => self.take(arrival)?,
                Next::Decoding(pending) => {
                    let (chunk, decoded) = pending.wait()?;
                    self.take(Arrival::Decoded(chunk, Box::new(decoded)))?;
                }
            }
        }
        // Updates (HTTP or topic) apply even while no events arrive.
        self.engine.tick(&mut self.sink)?;
        if let Some(c) = self.checkpointer.as_mut() {
            c.after_step(&mut self.engine, &mut self.source, &mut self.sink)?;
        }
        Ok(true)
    }

    /// Compiles the new set and swaps it in, or says why not; only a failing
    /// sink stops the run.
    fn redeploy(&mut self) -> Result<()> {
        let Some(reload) = self.reload.as_mut() else {
            return Ok(());
        };
        let warm = reload.warm.as_deref().and_then(read_warm);
        let outcome =
            (reload.compile)().and_then(|c| self.engine.redeploy(c, warm.as_ref(), &mut self.sink));
        match outcome {
            Ok(done) => {
                tracing::info!(
                    kept = ?done.kept,
                    restarted = ?done.restarted,
                    added = ?done.added,
                    removed = ?done.removed,
                    warmed = ?done.warmed,
                    "redeployed"
                );
                self.sink.definitions(&done.definitions, Some("applied"));
                reload.requests.told(Ok(format!(
                    "kept {:?}, restarted {:?}, added {:?}, removed {:?}, warmed {:?}",
                    done.kept, done.restarted, done.added, done.removed, done.warmed
                )));
            }
            Err(e) => {
                tracing::error!(error = %e, "redeploy refused: the running pipelines go on");
                self.sink.definitions(&[], Some("refused"));
                reload.requests.told(Err(e.to_string()));
            }
        }
        Ok(())
    }

    /// With a pool and more than one chunk in the step, every chunk goes to
    /// the pool at once; the rest of the step stays in its order.
    fn start_decoding(&self, arrivals: Vec<Arrival>) -> Vec<Next> {
        let chunks = arrivals
            .iter()
            .filter(|a| matches!(a, Arrival::Chunk(_)))
            .count();
        let Some(pool) = self.pool.as_ref().filter(|_| chunks > 1) else {
            return arrivals.into_iter().map(Next::Now).collect();
        };
        arrivals
            .into_iter()
            .map(|arrival| match arrival {
                Arrival::Chunk(chunk) => match self.engine.decode_spec(&chunk.feed) {
                    Some(spec) => Next::Decoding(pool.submit(&spec, chunk)),
                    None => Next::Now(Arrival::Chunk(chunk)),
                },
                other => Next::Now(other),
            })
            .collect()
    }

    fn take(&mut self, arrival: Arrival) -> Result<()> {
        match arrival {
            Arrival::Chunk(chunk) => {
                let max_time = self.engine.process(&chunk, &mut self.sink)?;
                self.source.processed(&chunk, max_time);
            }
            Arrival::Decoded(chunk, decoded) => {
                let max_time = self
                    .engine
                    .process_decoded(&chunk, &decoded, &mut self.sink)?;
                self.source.processed(&chunk, max_time);
            }
            Arrival::TaskUpdate { text, origin } => self.task_update(&text, origin)?,
            Arrival::Started { feed, input } => self.engine.add_input(&feed, &input),
            Arrival::Ended { input } => self.engine.finish_feed(&input, &mut self.sink)?,
        }
        Ok(())
    }

    /// A task update waits in the engine for its time; one that is not a valid
    /// command goes to the dead letters with its reason.
    fn task_update(&mut self, text: &str, origin: Origin) -> Result<()> {
        match Command::parse_within(text, self.engine.command_limits()) {
            Ok(c) if self.only_held.is_some() && !self.engine.holds_task(&c.task_id) => {}
            Ok(mut c) => {
                c.origin = Some(origin);
                self.engine.task_command(c);
            }
            // Every task reads the updates: one of them says which are bad.
            Err(_) if self.only_held == Some(false) => {}
            Err((reason, field, detail)) => {
                self.engine.stats.dead_letters += 1;
                self.sink.dead_letter(
                    &DeadLetter::new(INPUT, reason, detail, redacted_command(text), origin)
                        .field(field),
                )?;
            }
        }
        Ok(())
    }
}
