//! `yujing eval --nab DIR`: the detectors on real, labelled series, scored with
//! NAB's rules. Each method runs as a pipeline's `[detect]` section through the
//! engine's own detect stage (series store, baseline, alert lifecycle with `for`,
//! `cooldown` and `min_ratio`), one window per time step of the series; every
//! firing alert (a new incident, a return, an escalation) is a detection, as it
//! is a notification to the duty desk. The naive reference — a rolling z-score
//! over the last day with at most one alert a day — runs beside them.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::nab::{FileScore, LabelledSeries, PROFILES, normalised, score};
use crate::alert::Status;
use crate::core::time::{DAY, HOUR, Millis};
use crate::detect::config::DetectConfig;
use crate::detect::runner::PipelineDetector;
use crate::window::WindowResult;

/// The data sets scored (NAB's `realTweets` is kept for independent evaluation).
pub const SETS: [&str; 3] = ["realAdExchange", "realKnownCause", "realTraffic"];

/// A method under test: a name and its `[detect]` section, where `{day}` and
/// `{hour}` stand for the number of windows in a day and an hour of the series.
pub struct Candidate {
    pub name: &'static str,
    pub detect: &'static str,
}

/// The compared settings: the shipped methods as the issue found them, and the
/// robust ones with and without the alarm economy.
pub const CANDIDATES: [Candidate; 11] = [
    Candidate {
        name: "poisson (as opinion_negative_topic today)",
        detect: "method = \"poisson\"\nbaseline = 36\nalpha = 1e-5",
    },
    Candidate {
        name: "negbin, 12 windows, α 1e-3",
        detect: "method = \"negbin\"\nbaseline = 12\nalpha = 1e-3",
    },
    Candidate {
        name: "negbin, one day, α 1e-8",
        detect: "method = \"negbin\"\nbaseline = {day}\nalpha = 1e-8",
    },
    Candidate {
        name: "zscore, one day, α 1e-4",
        detect: "method = \"zscore\"\nbaseline = {day}\nalpha = 1e-4",
    },
    Candidate {
        name: "ears_c2",
        detect: "method = \"ears_c2\"",
    },
    Candidate {
        name: "robust_z, one day, α 1e-4",
        detect: "method = \"robust_z\"\nbaseline = {day}\nalpha = 1e-4",
    },
    Candidate {
        name: "robust_z, one day, α 1e-4, cooldown 1 day",
        detect: "method = \"robust_z\"\nbaseline = {day}\nalpha = 1e-4\ncooldown = {day}",
    },
    Candidate {
        name: "shesd, hour of day, α 0.01",
        detect: "method = \"shesd\"\nseasonality = \"hour_of_day\"\nalpha = 0.01\nmax_anoms = 0.02",
    },
    Candidate {
        name: "shesd, hour of day, α 0.01, cooldown 1 day",
        detect: "method = \"shesd\"\nseasonality = \"hour_of_day\"\nalpha = 0.01\nmax_anoms = 0.02\ncooldown = {day}",
    },
    Candidate {
        name: "glrnb, one day, h 5",
        detect: "method = \"glrnb\"\nbaseline = {day}\nh = 5",
    },
    Candidate {
        name: "glrnb, one day, h 5, cooldown 1 day",
        detect: "method = \"glrnb\"\nbaseline = {day}\nh = 5\ncooldown = {day}",
    },
];

/// A series on a regular grid: its step, one value per step (the mean of the rows
/// in it, else the last value carried forward) and, per step, the first row at or
/// after it (where a detection in that step lands).
struct Grid {
    step: Millis,
    start: Millis,
    values: Vec<f64>,
    row: Vec<usize>,
}

fn grid(s: &LabelledSeries) -> Grid {
    // The most common gap between rows is the step.
    let mut gaps: std::collections::BTreeMap<Millis, usize> = Default::default();
    for w in s.times.windows(2) {
        if w[1] > w[0] {
            *gaps.entry(w[1] - w[0]).or_default() += 1;
        }
    }
    let step = gaps
        .iter()
        .max_by_key(|(g, n)| (**n, std::cmp::Reverse(**g)))
        .map_or(HOUR, |(g, _)| *g);
    let start = s.times.first().copied().unwrap_or(0);
    // Rows keep file order: a row dated before its predecessor joins its bin.
    let mut bin_of = Vec::with_capacity(s.times.len());
    let mut last = 0usize;
    for t in &s.times {
        let b = (((t - start).max(0)) / step) as usize;
        last = last.max(b);
        bin_of.push(last);
    }
    let bins = last + 1;
    let (mut sum, mut count) = (vec![0.0; bins], vec![0usize; bins]);
    for (b, v) in bin_of.iter().zip(&s.values) {
        sum[*b] += v;
        count[*b] += 1;
    }
    let mut values = Vec::with_capacity(bins);
    let mut carried = s.values.first().copied().unwrap_or(0.0);
    for b in 0..bins {
        if count[b] > 0 {
            carried = sum[b] / count[b] as f64;
        }
        values.push(carried);
    }
    let mut row = vec![s.times.len().saturating_sub(1); bins];
    for (i, b) in bin_of.iter().enumerate().rev() {
        row[*b] = i;
    }
    for b in (0..bins.saturating_sub(1)).rev() {
        if count[b] == 0 {
            row[b] = row[b + 1];
        }
    }
    Grid {
        step,
        start,
        values,
        row,
    }
}

/// The `[detect]` section of a candidate for a series on `g`'s grid.
fn section(c: &Candidate, g: &Grid) -> Result<DetectConfig, String> {
    let per = |span: Millis| (span / g.step).max(1).to_string();
    let text = format!(
        "value = \"value\"\nkey = [\"series\"]\n{}\n",
        c.detect
            .replace("{day}", &per(DAY))
            .replace("{hour}", &per(HOUR))
    );
    toml::from_str(&text).map_err(|e| format!("{}: {e}", c.name))
}

/// The rows at which the engine's detect stage raises a firing alert.
fn engine_detections(c: &Candidate, g: &Grid) -> Result<Vec<usize>, String> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("series", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let config = section(c, g)?;
    let mut detector = PipelineDetector::new("eval", vec![], Some(config), vec![], &schema, g.step, 0)
        .ok_or("no detector")?;
    let pipeline: Arc<str> = Arc::from("eval");
    let mut found = Vec::new();
    for (b, v) in g.values.iter().enumerate() {
        let start = g.start + b as Millis * g.step;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["s"])),
                Arc::new(Float64Array::from(vec![*v])),
            ],
        )
        .map_err(|e| e.to_string())?;
        let w = WindowResult {
            pipeline: pipeline.clone(),
            start,
            end: start + g.step,
            batches: vec![batch],
            per_row: false,
        };
        let alerts = detector.on_window(&w).map_err(|e| e.to_string())?;
        if alerts.iter().any(|a| a.status == Status::Firing) {
            found.push(g.row[b]);
        }
    }
    Ok(found)
}

/// The naive reference: |z| > 3 against the mean and sd of the last day, at most
/// one alert in any day.
fn naive_detections(g: &Grid) -> Vec<usize> {
    let day = ((DAY / g.step).max(2)) as usize;
    let mut found = Vec::new();
    let mut quiet_until = 0usize;
    for b in day..g.values.len() {
        let base = &g.values[b - day..b];
        let n = base.len() as f64;
        let mean = base.iter().sum::<f64>() / n;
        let sd = (base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let z = if sd > 0.0 {
            (g.values[b] - mean) / sd
        } else {
            0.0
        };
        if z.abs() > 3.0 && b >= quiet_until {
            found.push(g.row[b]);
            quiet_until = b + day;
        }
    }
    found
}

/// Scores of one method on one data set, per profile.
type Scores = [FileScore; 3];

fn add(total: &mut Scores, s: &LabelledSeries, detections: &[usize]) {
    for (t, p) in total.iter_mut().zip(PROFILES.iter()) {
        t.add(&score(s, detections, p));
    }
}

/// Runs every candidate and the naive reference on `series` and returns a Markdown
/// table per data set: normalised score per profile, windows found, false positives.
pub fn run(series: &[LabelledSeries], candidates: &[Candidate]) -> Result<String, String> {
    let mut out = String::new();
    for set in SETS {
        let files: Vec<&LabelledSeries> = series
            .iter()
            .filter(|s| s.name.starts_with(&format!("{set}/")))
            .collect();
        if files.is_empty() {
            continue;
        }
        let grids: Vec<Grid> = files.iter().map(|s| grid(s)).collect();
        let mut rows: Vec<(String, Scores)> = Vec::new();
        let mut naive = Scores::default();
        for (s, g) in files.iter().zip(&grids) {
            add(&mut naive, s, &naive_detections(g));
        }
        rows.push(("naive rolling z, one alert a day".into(), naive));
        for c in candidates {
            let mut total = Scores::default();
            for (s, g) in files.iter().zip(&grids) {
                add(&mut total, s, &engine_detections(c, g)?);
            }
            rows.push((c.name.to_string(), total));
        }
        let _ = writeln!(
            out,
            "\n### {set} ({} files, {} windows)\n\n| method | standard | low FP | low FN | windows found | false positives |\n|---|---:|---:|---:|---:|---:|",
            files.len(),
            rows[0].1[0].windows
        );
        for (name, s) in &rows {
            let _ = writeln!(
                out,
                "| {name} | {:.1} | {:.1} | {:.1} | {} | {} |",
                normalised(&s[0], &PROFILES[0]),
                normalised(&s[1], &PROFILES[1]),
                normalised(&s[2], &PROFILES[2]),
                s[0].detected,
                s[0].false_positives,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_averages_rows_carries_gaps_and_maps_steps_to_rows() {
        let m = 60_000;
        let s = LabelledSeries {
            name: "x/y.csv".into(),
            times: vec![0, 5 * m, 6 * m, 20 * m, 25 * m],
            values: vec![1.0, 2.0, 4.0, 8.0, 9.0],
            windows: vec![],
        };
        let g = grid(&s);
        assert_eq!(g.step, 5 * m);
        assert_eq!(g.values, vec![1.0, 3.0, 3.0, 3.0, 8.0, 9.0]);
        assert_eq!(g.row, vec![0, 1, 3, 3, 3, 4]);
    }

    #[test]
    fn a_level_shift_is_found_once_with_a_cooldown() {
        // Five-minute steps, three days flat with noise, then a jump to five times.
        let m = 60_000;
        let n = 3 * 288 + 200;
        let values: Vec<f64> = (0..n)
            .map(|i| {
                let base = 10.0 + ((i * 37) % 7) as f64;
                if i >= 3 * 288 { base * 5.0 } else { base }
            })
            .collect();
        let s = LabelledSeries {
            name: "x/y.csv".into(),
            times: (0..n as Millis).map(|i| i * 5 * m).collect(),
            values,
            windows: vec![(3 * 288, 3 * 288 + 50)],
        };
        let g = grid(&s);
        let with = &CANDIDATES[6];
        assert!(with.name.contains("cooldown"));
        let found = engine_detections(with, &g).unwrap();
        assert_eq!(found.first(), Some(&(3 * 288)), "{found:?}");
        let scored = score(&s, &found, &PROFILES[0]);
        assert_eq!(scored.detected, 1);
        let without = engine_detections(&CANDIDATES[5], &g).unwrap();
        assert!(without.len() >= found.len());
    }
}
