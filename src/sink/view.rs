//! What the duty console and the HTTP API show, kept as the run goes: open
//! incidents (their latest alert), tasks with the history of their changes,
//! each key's recent series (value, expected, threshold, level) for the
//! incident plots, when each feed last delivered, and each pipeline's
//! watermark. Bounded: a few dozen points per series, a cap on series (keys
//! with an open incident always kept), a cap on each task's history.

use std::collections::{BTreeMap, VecDeque};

use crate::alert::{Alert, Finding};
use crate::core::level::Level;
use crate::core::time::{Millis, wall_now};
use crate::task::{Change, Task, TaskEvent};

/// Points kept per series.
pub const SERIES_POINTS: usize = 48;
/// Series kept at most (beyond it only keys with an open incident get one).
pub const MAX_SERIES: usize = 5000;
/// Changes kept per task.
const HISTORY: usize = 64;

/// One window of one key, as the detector judged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub start: Millis,
    pub end: Millis,
    pub value: f64,
    pub expected: Option<f64>,
    pub threshold: Option<f64>,
    pub level: Option<Level>,
}

/// One change of a task, for its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub change: Change,
    pub time: Millis,
    pub actor: String,
    pub note: Option<String>,
    pub department: String,
}

/// A feed's traffic: events so far and when (wall clock) the last arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeedSeen {
    pub events: u64,
    pub last_arrival: Option<Millis>,
}

#[derive(Debug, Default)]
pub struct ApiView {
    pub incidents: BTreeMap<String, Alert>,
    pub tasks: BTreeMap<String, Task>,
    /// Task id → its changes, oldest first.
    pub history: BTreeMap<String, VecDeque<Entry>>,
    /// (pipeline, key id) → its recent points, oldest first.
    pub series: BTreeMap<(String, String), VecDeque<Point>>,
    pub feeds: BTreeMap<String, FeedSeen>,
    pub watermarks: BTreeMap<String, Millis>,
}

impl ApiView {
    pub fn task_event(&mut self, e: &TaskEvent) {
        self.tasks.insert(e.task.task_id.clone(), e.task.clone());
        let h = self.history.entry(e.task.task_id.clone()).or_default();
        h.push_back(Entry {
            change: e.change,
            time: e.time,
            actor: e.actor.clone(),
            note: e.note.clone(),
            department: e.task.department.clone(),
        });
        if h.len() > HISTORY {
            h.pop_front();
        }
    }

    /// The detector's judgement of a window, key by key.
    pub fn points(&mut self, pipeline: &str, findings: &[Finding]) {
        for f in findings {
            let id = (pipeline.to_string(), f.key.clone());
            if !self.series.contains_key(&id)
                && self.series.len() >= MAX_SERIES
                && !self.has_incident(pipeline, &f.key)
            {
                continue;
            }
            let s = self.series.entry(id).or_default();
            s.push_back(Point {
                start: f.start,
                end: f.end,
                value: f.measure.value,
                expected: f.measure.expected,
                threshold: f.measure.threshold,
                level: f.level,
            });
            if s.len() > SERIES_POINTS {
                s.pop_front();
            }
        }
    }

    fn has_incident(&self, pipeline: &str, key: &str) -> bool {
        self.incidents
            .values()
            .any(|a| a.pipeline == pipeline && a.key.id() == key)
    }

    /// The recent series of an alert's key.
    pub fn series_of(&self, a: &Alert) -> Option<&VecDeque<Point>> {
        self.series.get(&(a.pipeline.clone(), a.key.id()))
    }

    pub fn ingested(&mut self, feed: &str, events: u64) {
        let seen = self.feeds.entry(feed.to_string()).or_default();
        seen.events += events;
        if events > 0 {
            seen.last_arrival = Some(wall_now());
        }
    }
}
