//! Series state: per key, a bounded history of window values for the detectors.
//! A key seen before gets a zero for every window it was quiet in — baselines must
//! see quiet windows, or every count looks high. A key quiet for longer than the
//! idle expiry is forgotten, so state stays bounded by the keys that are active.
//! The store serialises, so the daemon can checkpoint it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::core::time::Millis;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// (window start, value), oldest first; at most the store's capacity.
    pub points: VecDeque<(Millis, f64)>,
    /// Start of the last window with a non-zero value.
    pub last_active: Millis,
}

/// Histories of all keys of one pipeline, for windows starting every `slide`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStore {
    pub slide: Millis,
    pub capacity: usize,
    pub idle_expiry: Millis,
    pub series: BTreeMap<String, Series>,
    /// Start of the last window recorded.
    pub last_start: Option<Millis>,
}

/// One key's point in a window, with the history before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub key: String,
    pub value: f64,
    pub history: Vec<(Millis, f64)>,
}

impl SeriesStore {
    pub fn new(slide: Millis, capacity: usize, idle_expiry: Millis) -> Self {
        SeriesStore {
            slide,
            capacity: capacity.max(1),
            idle_expiry,
            series: BTreeMap::new(),
            last_start: None,
        }
    }

    /// Records the window starting at `start` with the values of the keys that had
    /// rows; every other known key gets zero, as do the windows in between that had
    /// no rows at all. Returns a point per key (those with rows and the quiet ones),
    /// sorted by key. Windows must be recorded in order of their start.
    pub fn record(&mut self, start: Millis, rows: &[(String, f64)]) -> Vec<Point> {
        let values: BTreeMap<&str, f64> = rows.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for (key, _) in rows {
            self.series.entry(key.clone()).or_insert_with(|| Series {
                points: VecDeque::new(),
                last_active: start,
            });
        }
        let mut out = Vec::with_capacity(self.series.len());
        let (slide, capacity) = (self.slide, self.capacity);
        for (key, s) in &mut self.series {
            // Quiet windows since this key's last point.
            if let Some(&(last, _)) = s.points.back() {
                // Only the last `capacity` quiet windows can stay, however long the
                // gap (a record dated years ahead must not cost a point per slide).
                let gap = (start - last) / slide;
                let skip = gap.saturating_sub(capacity as Millis).max(1);
                if skip > 1 {
                    s.points.clear();
                }
                let mut t = last.saturating_add(skip.saturating_mul(slide));
                while t < start {
                    s.points.push_back((t, 0.0));
                    t += slide;
                }
            }
            while s.points.len() > capacity {
                s.points.pop_front();
            }
            let value = values.get(key.as_str()).copied().unwrap_or(0.0);
            let history = s.points.iter().copied().collect();
            s.points.push_back((start, value));
            if s.points.len() > capacity {
                s.points.pop_front();
            }
            if value != 0.0 {
                s.last_active = start;
            }
            out.push(Point {
                key: key.clone(),
                value,
                history,
            });
        }
        let expiry = self.idle_expiry;
        self.series.retain(|_, s| start - s.last_active < expiry);
        self.last_start = Some(start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_windows_are_zeros_and_idle_keys_expire() {
        let mut s = SeriesStore::new(10, 4, 35);
        let p = s.record(0, &[("a".into(), 3.0), ("b".into(), 1.0)]);
        assert_eq!(p.len(), 2);
        // Window 10 has rows only for a; window 20 had no rows at all.
        s.record(10, &[("a".into(), 2.0)]);
        let p = s.record(30, &[("a".into(), 5.0)]);
        let b = p.iter().find(|p| p.key == "b").unwrap();
        assert_eq!(b.value, 0.0);
        assert_eq!(b.history, vec![(0, 1.0), (10, 0.0), (20, 0.0)]);
        let a = p.iter().find(|p| p.key == "a").unwrap();
        assert_eq!(a.history, vec![(0, 3.0), (10, 2.0), (20, 0.0)]);
        // b was last active at 0: forgotten once 40 − 0 ≥ 35.
        let p = s.record(40, &[("a".into(), 1.0)]);
        assert!(p.iter().any(|p| p.key == "b"));
        assert!(!s.series.contains_key("b"));
        // Capacity bounds the history.
        assert_eq!(s.series["a"].points.len(), 4);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SeriesStore>(&json).unwrap(), s);
    }

    #[test]
    fn a_gap_of_any_length_costs_at_most_the_capacity() {
        let hour = crate::core::time::HOUR;
        let mut s = SeriesStore::new(hour, 5, Millis::MAX);
        s.record(0, &[("a".into(), 1.0)]);
        // Year 9999: some 70 million hourly windows later.
        let far = crate::core::time::parse_rfc3339("9999-12-31T00:00:00Z").unwrap();
        let p = s.record(far, &[("a".into(), 2.0)]);
        let want: Vec<(Millis, f64)> = (1..=5).rev().map(|i| (far - i * hour, 0.0)).collect();
        assert_eq!(p[0].history, want);
        // A short gap fills every quiet window, as before.
        let mut s = SeriesStore::new(10, 5, Millis::MAX);
        s.record(0, &[("a".into(), 1.0)]);
        let p = s.record(40, &[("a".into(), 2.0)]);
        assert_eq!(
            p[0].history,
            vec![(0, 1.0), (10, 0.0), (20, 0.0), (30, 0.0)]
        );
        // Exactly capacity quiet windows between: the old point drops out.
        let p = s.record(100, &[("a".into(), 2.0)]);
        assert_eq!(
            p[0].history,
            vec![(50, 0.0), (60, 0.0), (70, 0.0), (80, 0.0), (90, 0.0)]
        );
    }
}
