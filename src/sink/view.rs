//! What the duty console and the HTTP API show, kept as the run goes: open
//! incidents (their latest alert), tasks with the history of their changes,
//! each key's recent series (value, expected, threshold, level) for the
//! incident plots, when each feed last delivered, and each pipeline's
//! watermark. Bounded: a few dozen points per series, a cap on series (keys
//! with an open incident always kept), a cap on each task's history.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

impl Point {
    /// The point a finding makes in its key's series.
    pub fn of(f: &Finding) -> Point {
        Point {
            start: f.start,
            end: f.end,
            value: f.measure.value,
            expected: f.measure.expected,
            threshold: f.measure.threshold,
            level: f.level,
        }
    }
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
    /// Pipeline → key id → its recent points, oldest first.
    series: BTreeMap<String, BTreeMap<String, VecDeque<Point>>>,
    /// Series kept, over all pipelines.
    series_kept: usize,
    pub feeds: BTreeMap<String, FeedSeen>,
    pub watermarks: BTreeMap<String, Millis>,
}

impl ApiView {
    /// A task's new state, added to its history; returns its state before.
    pub fn task_event(&mut self, e: &TaskEvent) -> Option<Task> {
        let before = self.tasks.insert(e.task.task_id.clone(), e.task.clone());
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
        before
    }

    /// The detector's judgement of a window, key by key. A key already kept
    /// costs no allocation; past [`MAX_SERIES`] only keys with an open
    /// incident (gathered once per window) start a series.
    pub fn points(&mut self, pipeline: &str, findings: &[Finding]) {
        if !self.series.contains_key(pipeline) {
            self.series.insert(pipeline.to_string(), BTreeMap::new());
        }
        let Some(kept) = self.series.get_mut(pipeline) else {
            return;
        };
        let mut firing: Option<BTreeSet<String>> = None;
        for f in findings {
            if !kept.contains_key(&f.key) {
                if self.series_kept >= MAX_SERIES {
                    let incidents = &self.incidents;
                    let firing = firing.get_or_insert_with(|| {
                        incidents
                            .values()
                            .filter(|a| a.pipeline == pipeline)
                            .map(|a| a.key.id())
                            .collect()
                    });
                    if !firing.contains(&f.key) {
                        continue;
                    }
                }
                kept.insert(f.key.clone(), VecDeque::new());
                self.series_kept += 1;
            }
            let Some(s) = kept.get_mut(&f.key) else {
                continue;
            };
            s.push_back(Point::of(f));
            if s.len() > SERIES_POINTS {
                s.pop_front();
            }
        }
    }

    /// The recent series of an alert's key.
    pub fn series_of(&self, a: &Alert) -> Option<&VecDeque<Point>> {
        self.series.get(&a.pipeline)?.get(&a.key.id())
    }

    pub fn ingested(&mut self, feed: &str, events: u64) {
        let seen = self.feeds.entry(feed.to_string()).or_default();
        seen.events += events;
        if events > 0 {
            seen.last_arrival = Some(wall_now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Measure;
    use crate::core::key::Key;

    fn finding(key: &str, end: Millis) -> Finding {
        Finding {
            key: key.into(),
            labels: Key::new(vec![]),
            start: end - 1,
            end,
            measure: Measure::observed(1.0, "count".into()),
            level: None,
            event_ids: vec![],
        }
    }

    #[test]
    fn series_are_bounded_but_keys_with_an_open_incident_always_get_one() {
        let mut v = ApiView::default();
        let full: Vec<Finding> = (0..MAX_SERIES)
            .map(|i| finding(&i.to_string(), 1))
            .collect();
        v.points("p", &full);
        for t in 2..(SERIES_POINTS as Millis + 10) {
            v.points("p", &[finding("0", t)]);
        }
        let first = v.series["p"]["0"].clone();
        assert_eq!(first.len(), SERIES_POINTS, "points per series are capped");
        assert_eq!(
            first.back().map(|p| p.end),
            Some(SERIES_POINTS as Millis + 9)
        );
        // Past the cap a new key gets no series…
        v.points("p", &[finding("new", 1)]);
        assert!(!v.series["p"].contains_key("new"));
        // …unless it has an open incident.
        let alert: Alert = serde_json::from_value(serde_json::json!({
            "alert_id": "a", "incident_id": "i", "status": "firing", "level": "orange",
            "pipeline": "p", "feeds": [], "key": {}, "window_start": "2026-03-14T00:00:00Z",
            "window_end": "2026-03-14T01:00:00Z", "value": 1.0, "expected": null,
            "threshold": null, "score": null, "p_value": null, "method": "m", "summary": ""
        }))
        .expect("alert");
        let id = alert.key.id();
        v.incidents.insert("i".into(), alert);
        v.points("p", &[finding(&id, 1)]);
        assert!(v.series["p"].contains_key(&id));
        assert_eq!(v.series_kept, MAX_SERIES + 1);
    }
}
