//! What a backtest report needs of a replay, gathered while it runs: a sink
//! that passes everything on to the replay's own outputs and keeps, bounded,
//! each key's judged windows, the alerts, the dead letters by feed and reason,
//! and the event time the run covered.

use std::collections::BTreeMap;

use crate::alert::{Alert, Finding};
use crate::core::deadletter::DeadLetter;
use crate::core::key::Key;
use crate::core::time::Millis;
use crate::error::Result;
use crate::eval::labels::Watcher;
use crate::sink::view::Point;
use crate::sink::{Progress, Sink};
use crate::task::TaskEvent;
use crate::window::WindowResult;

/// Series kept per pipeline; past it, only keys that alert start one.
pub const MAX_KEYS: usize = 2000;
/// Windows kept per key (the latest); a year of hours.
pub const MAX_POINTS: usize = 24 * 366;

/// One key's judged windows.
#[derive(Debug, Clone)]
pub struct KeySeries {
    pub key: Key,
    pub points: Vec<Point>,
    /// Earlier windows not kept (past [`MAX_POINTS`]).
    pub dropped: usize,
}

impl KeySeries {
    /// Keeps the latest [`MAX_POINTS`] windows, counting the rest as dropped.
    fn cut(&mut self) {
        let cut = self.points.len().saturating_sub(MAX_POINTS);
        self.points.drain(..cut);
        self.dropped += cut;
    }
}

/// A run as the report sees it.
#[derive(Debug, Default)]
pub struct Backtest {
    /// The pipelines that ran, with their feeds and key columns, in order.
    pub pipelines: Vec<Watcher>,
    /// Per pipeline, per key id.
    pub series: BTreeMap<String, BTreeMap<String, KeySeries>>,
    /// Judged windows of keys not followed because [`MAX_KEYS`] was reached, per pipeline.
    pub keys_not_kept: BTreeMap<String, usize>,
    pub alerts: Vec<Alert>,
    /// Per (feed, reason).
    pub dead_letters: BTreeMap<(String, String), u64>,
    pub windows: BTreeMap<String, u64>,
    /// Keys to plot whether or not they alerted: each a list of (column, value).
    pub asked: Vec<Vec<(String, String)>>,
    /// The event time the input covers (the engine's, set after the run).
    pub first: Option<Millis>,
    pub last: Option<Millis>,
}

impl Backtest {
    /// The event time covered, in milliseconds (0 for an empty run).
    pub fn span(&self) -> Millis {
        match (self.first, self.last) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }

    fn keep(&mut self, pipeline: &str, findings: &[Finding]) {
        let kept = self.series.entry(pipeline.to_string()).or_default();
        for f in findings {
            if !kept.contains_key(&f.key) {
                if kept.len() >= MAX_KEYS && f.level.is_none() {
                    *self.keys_not_kept.entry(pipeline.to_string()).or_default() += 1;
                    continue;
                }
                let series = KeySeries {
                    key: f.labels.clone(),
                    points: Vec::new(),
                    dropped: 0,
                };
                kept.insert(f.key.clone(), series);
            }
            let Some(series) = kept.get_mut(&f.key) else {
                continue;
            };
            series.points.push(Point::of(f));
            // Cut in halves, so keeping the latest costs O(1) a point.
            if series.points.len() > 2 * MAX_POINTS {
                series.cut();
            }
        }
    }
}

/// Passes everything to `inner` and, when asked, keeps what the report needs.
pub struct Recorder<S> {
    pub inner: S,
    run: Option<Backtest>,
}

impl<S: Sink> Recorder<S> {
    /// Keeps the run of `pipelines` if `keep`, else only passes things on.
    pub fn new(inner: S, pipelines: Option<Vec<Watcher>>) -> Self {
        Recorder {
            inner,
            run: pipelines.map(|pipelines| Backtest {
                pipelines,
                ..Backtest::default()
            }),
        }
    }

    /// The sink, and the run (its series cut to [`MAX_POINTS`]) if kept.
    pub fn finish(self) -> (S, Option<Backtest>) {
        let mut run = self.run;
        for series in run
            .iter_mut()
            .flat_map(|r| r.series.values_mut())
            .flat_map(|k| k.values_mut())
        {
            series.cut();
        }
        (self.inner, run)
    }
}

impl<S: Sink> Sink for Recorder<S> {
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()> {
        if let Some(run) = &mut self.run {
            *run.windows.entry(window.pipeline.to_string()).or_default() += 1;
        }
        self.inner.window(window, ordered)
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        if let Some(run) = &mut self.run {
            *run.dead_letters
                .entry((dead.feed.clone(), dead.reason.as_str().to_string()))
                .or_default() += 1;
        }
        self.inner.dead_letter(dead)
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        if let Some(run) = &mut self.run {
            run.alerts.push(alert.clone());
        }
        self.inner.alert(alert)
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        self.inner.task(event)
    }

    fn points(&mut self, pipeline: &str, findings: &[Finding]) -> Result<()> {
        if let Some(run) = &mut self.run {
            run.keep(pipeline, findings);
        }
        self.inner.points(pipeline, findings)
    }

    fn ingested(&mut self, feed: &str, events: u64) -> Result<()> {
        self.inner.ingested(feed, events)
    }

    fn progress(&mut self, progress: &Progress) -> Result<()> {
        self.inner.progress(progress)
    }
}
