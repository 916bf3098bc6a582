//! The Numenta Anomaly Benchmark's data and scoring rules (numenta/NAB,
//! `nab/sweeper.py`, MIT): labelled series as `timestamp,value` CSV files, anomaly
//! windows from `combined_windows.json`, and the score of a set of detections —
//! the earliest detection in a window earns up to the profile's true-positive
//! weight (less the later it comes), a missed window costs the false-negative
//! weight, every detection outside a window costs up to the false-positive weight
//! (less right after a window), and the first 15 % of a file (at most 750 rows)
//! is a probation that is not scored. Scores are normalised as NAB does: 0 for the
//! null detector (no detections), 100 for a perfect one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::time::{Millis, parse_rfc3339};

/// A NAB cost profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// NAB's three profiles (`config/profiles.json`).
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// One labelled series.
#[derive(Debug, Clone)]
pub struct LabelledSeries {
    /// As in the labels file, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    pub times: Vec<Millis>,
    pub values: Vec<f64>,
    /// Anomaly windows as (first row, last row), inclusive.
    pub windows: Vec<(usize, usize)>,
}

/// Errors reading the benchmark's files, located.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// NAB writes times as `2014-07-01 00:00:00` (optionally with fractions); read as UTC.
fn parse_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    let s = s.split('.').next()?;
    parse_rfc3339(&format!("{}Z", s.replacen(' ', "T", 1)))
}

fn read(path: &Path) -> Result<String, NabError> {
    std::fs::read_to_string(path).map_err(|source| NabError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the series of the data sets `sets` (folder names under `dir`) and their
/// windows from `dir/combined_windows.json`, in name order.
pub fn load(dir: &Path, sets: &[&str]) -> Result<Vec<LabelledSeries>, NabError> {
    let labels_path = dir.join("combined_windows.json");
    let labels: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&read(&labels_path)?).map_err(|e| NabError::Parse {
            path: labels_path.clone(),
            line: e.line(),
            message: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (name, windows) in labels {
        if !sets.iter().any(|s| name.starts_with(&format!("{s}/"))) {
            continue;
        }
        let path = dir.join(&name);
        let text = read(&path)?;
        let bad = |line: usize, message: String| NabError::Parse {
            path: path.clone(),
            line,
            message,
        };
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().skip(1) {
            let (t, v) = line
                .split_once(',')
                .ok_or_else(|| bad(i + 1, "expected `timestamp,value`".into()))?;
            times.push(parse_time(t).ok_or_else(|| bad(i + 1, format!("bad time {t:?}")))?);
            values.push(
                v.trim()
                    .parse::<f64>()
                    .map_err(|e| bad(i + 1, format!("bad value {v:?}: {e}")))?,
            );
        }
        let row_of = |t: &str| {
            let at = parse_time(t)?;
            times.iter().position(|x| *x == at)
        };
        let mut rows = Vec::new();
        for (a, b) in &windows {
            match (row_of(a), row_of(b)) {
                (Some(a), Some(b)) => rows.push((a, b)),
                _ => {
                    return Err(bad(
                        0,
                        format!("window {a} – {b} is not on rows of the file"),
                    ));
                }
            }
        }
        out.push(LabelledSeries {
            name,
            times,
            values,
            windows: rows,
        });
    }
    Ok(out)
}

/// NAB's scaled sigmoid of a relative position: about 1 at a window's left edge, 0
/// at its right edge, towards −1 after it.
fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// A file's score and its counts under one profile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FileScore {
    pub raw: f64,
    pub windows: usize,
    pub detected: usize,
    pub false_positives: usize,
}

/// Scores detections (row indexes, any order) on one series, as NAB's sweeper does
/// at a fixed threshold.
pub fn score(series: &LabelledSeries, detections: &[usize], p: &Profile) -> FileScore {
    let n = series.times.len();
    let probation = ((0.15 * n as f64).floor()).min(0.15 * 5000.0) as usize;
    let max_tp = scaled_sigmoid(-1.0);
    let mut flagged = vec![false; n];
    for &d in detections {
        if d < n {
            flagged[d] = true;
        }
    }
    // Per window (by index) the best detection so far; windows entirely in the
    // probation are not scored at all.
    let mut best: BTreeMap<usize, f64> = BTreeMap::new();
    let mut fp_sum = 0.0;
    let mut false_positives = 0;
    let mut windows = series.windows.iter().enumerate().peekable();
    let mut current: Option<(usize, usize, usize)> = None; // (window, right row, width)
    let mut previous: Option<(usize, usize)> = None; // (right row, width)
    for (i, &hit) in flagged.iter().enumerate() {
        if let Some((w, &(a, b))) = windows.peek().copied()
            && a == i
        {
            current = Some((w, b, b - a + 1));
            windows.next();
        }
        let weighted = match current {
            Some((_, right, width)) => {
                let position = -((right as f64) - (i as f64) + 1.0) / width as f64;
                scaled_sigmoid(position) * p.tp / max_tp
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some((right, width)) => {
                        scaled_sigmoid((i as f64 - right as f64).abs() / (width as f64 - 1.0))
                    }
                };
                unweighted * p.fp
            }
        };
        if i >= probation {
            match current {
                Some((w, _, _)) => {
                    let entry = best.entry(w).or_insert(-p.fn_);
                    if hit {
                        *entry = entry.max(weighted);
                    }
                }
                None if hit => {
                    fp_sum += weighted;
                    false_positives += 1;
                }
                None => {}
            }
        }
        if let Some((_, right, width)) = current
            && right == i
        {
            previous = Some((right, width));
            current = None;
        }
    }
    FileScore {
        raw: best.values().sum::<f64>() + fp_sum,
        windows: best.len(),
        detected: best.values().filter(|v| **v > -p.fn_).count(),
        false_positives,
    }
}

/// NAB's normalised score of summed file scores: 100 · (S − null) / (perfect − null),
/// where the null detector misses every window and the perfect one finds each at once.
pub fn normalised(total: &FileScore, p: &Profile) -> f64 {
    let null = -p.fn_ * total.windows as f64;
    let perfect = p.tp * total.windows as f64;
    100.0 * (total.raw - null) / (perfect - null)
}

impl FileScore {
    pub fn add(&mut self, o: &FileScore) {
        self.raw += o.raw;
        self.windows += o.windows;
        self.detected += o.detected;
        self.false_positives += o.false_positives;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, windows: Vec<(usize, usize)>) -> LabelledSeries {
        LabelledSeries {
            name: "t".into(),
            times: (0..n as Millis).collect(),
            values: vec![0.0; n],
            windows,
        }
    }

    #[test]
    fn scores_as_nab_sweeper() {
        // 100 rows: probation 15; one window of rows 40..=59 (width 20).
        let s = series(100, vec![(40, 59)]);
        let p = PROFILES[0];
        // Nothing detected: the window is missed (−1), the null score.
        let none = score(&s, &[], &p);
        assert_eq!((none.raw, none.windows, none.detected), (-1.0, 1, 0));
        assert_eq!(normalised(&none, &p), 0.0);
        // At the window's first row: position −(59 − 40 + 1)/20 = −1, the full weight.
        let first = score(&s, &[40], &p);
        assert!((first.raw - 1.0).abs() < 1e-12);
        assert!((normalised(&first, &p) - 100.0).abs() < 1e-9);
        // Half-way (row 50): position −0.5, 2·sigmoid(2.5) − 1 = 0.84828 of 0.98661.
        let half = score(&s, &[50, 55], &p);
        let want = (2.0 / (1.0 + (-2.5f64).exp()) - 1.0) / (2.0 / (1.0 + (-5.0f64).exp()) - 1.0);
        assert!((half.raw - want).abs() < 1e-12, "{half:?}");
        // Before any window, a false positive costs the whole fp weight; in the
        // probation it costs nothing; 19 rows after the window's end (row 78), the
        // position is 19/19 = 1: sigmoid gives −0.98661 · 0.11.
        let fp = score(&s, &[5, 20, 40, 78], &p);
        let after = (2.0 / (1.0 + 5.0f64.exp()) - 1.0) * 0.11;
        assert!((fp.raw - (1.0 - 0.11 + after)).abs() < 1e-12, "{fp:?}");
        assert_eq!(fp.false_positives, 2);
    }

    #[test]
    fn nab_times_read_as_utc() {
        assert_eq!(parse_time("1970-01-01 00:00:01.000000"), Some(1000));
        assert_eq!(parse_time("1970-01-01 00:01:00"), Some(60_000));
    }
}
