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
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub detect: String,
}

impl Candidate {
    /// A setting given on the command line, named by itself.
    pub fn from_text(detect: &str) -> Self {
        Candidate {
            name: detect.replace('\n', "; "),
            detect: detect.to_string(),
        }
    }
}

/// The compared settings: the shipped methods as the issue found them, and the
/// robust ones with and without the alarm economy.
pub fn candidates() -> Vec<Candidate> {
    // The alarm economy: no alarm under 1.2 times the expected value, an alert
    // kept through an hour of normal windows, and a day's cool-down after it.
    const ECONOMY: &str = "min_ratio = 1.2\ncooldown = {day}\nkeep_firing_for = {hour}";
    const ROBUST_DAY: &str = "method = \"robust_z\"\nbaseline = {day}\nalpha = 1e-6";
    const ROBUST_HOUR: &str =
        "method = \"robust_z\"\nseasonality = \"hour_of_day\"\nbaseline = {7hour}\nalpha = 1e-3";
    const ZSCORE: &str = "method = \"zscore\"\nbaseline = {day}\nalpha = 1e-4";
    const SHESD: &str =
        "method = \"shesd\"\nseasonality = \"hour_of_day\"\nalpha = 1e-3\nmax_anoms = 0.01";
    const GLRNB: &str = "method = \"glrnb\"\nbaseline = {day}\nh = 10";
    // (name, [detect], with the economy)
    let table: [(&str, &str, bool); 19] = [
        (
            "poisson (as opinion_negative_topic was)",
            "method = \"poisson\"\nbaseline = 36\nalpha = 1e-5",
            false,
        ),
        (
            "negbin, 12 windows, α 1e-3",
            "method = \"negbin\"\nbaseline = 12\nalpha = 1e-3",
            false,
        ),
        (
            "negbin, one day, α 1e-8",
            "method = \"negbin\"\nbaseline = {day}\nalpha = 1e-8",
            false,
        ),
        ("zscore, one day, α 1e-4", ZSCORE, false),
        (
            "bayes, one day, α 1e-8",
            "method = \"bayes\"\nbaseline = {day}\nalpha = 1e-8",
            false,
        ),
        (
            "ewma, one day, λ 0.3, L 3",
            "method = \"ewma\"\nbaseline = {day}",
            false,
        ),
        (
            "cusum, one day, shift 2, h 4",
            "method = \"cusum\"\nbaseline = {day}",
            false,
        ),
        ("ears_c1", "method = \"ears_c1\"", false),
        ("ears_c2", "method = \"ears_c2\"", false),
        ("ears_c3", "method = \"ears_c3\"", false),
        ("robust_z, one day, α 1e-6", ROBUST_DAY, false),
        ("robust_z, one day, α 1e-6, economy", ROBUST_DAY, true),
        (
            "robust_z, hour of day over 7 days, α 1e-3",
            ROBUST_HOUR,
            false,
        ),
        (
            "robust_z, hour of day over 7 days, α 1e-3, economy",
            ROBUST_HOUR,
            true,
        ),
        ("zscore, one day, α 1e-4, economy", ZSCORE, true),
        ("shesd, hour of day, α 1e-3", SHESD, false),
        ("shesd, hour of day, α 1e-3, economy", SHESD, true),
        ("glrnb, one day, h 10", GLRNB, false),
        ("glrnb, one day, h 10, economy", GLRNB, true),
    ];
    table
        .into_iter()
        .map(|(name, detect, economy)| Candidate {
            name: name.into(),
            detect: if economy {
                format!("{detect}\n{ECONOMY}")
            } else {
                detect.into()
            },
        })
        .collect()
}

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

/// Replaces `{day}`, `{hour}`, `{week}` and multiples such as `{2day}` by the
/// number of windows of the series in that span.
fn fill_spans(text: &str, step: Millis) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed {{ in {text:?}"))?;
        let inner = &rest[open + 1..open + close];
        let digits = inner.chars().take_while(char::is_ascii_digit).count();
        let times: i64 = if digits == 0 {
            1
        } else {
            inner[..digits]
                .parse()
                .map_err(|e| format!("{inner}: {e}"))?
        };
        let unit = match &inner[digits..] {
            "hour" => HOUR,
            "day" => DAY,
            "week" => 7 * DAY,
            other => return Err(format!("unknown span {{{other}}} in {text:?}")),
        };
        out.push_str(&(times * unit / step).max(1).to_string());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `[detect]` section of a candidate for a series on `g`'s grid.
fn section(c: &Candidate, g: &Grid) -> Result<DetectConfig, String> {
    let text = format!(
        "value = \"value\"\nkey = [\"series\"]\n{}\n",
        fill_spans(&c.detect, g.step)?
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
    let mut detector =
        PipelineDetector::new("eval", vec![], Some(config), vec![], &schema, g.step, 0)
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
        let (mean, sd) = crate::detect::mean_sd(&g.values[b - day..b]);
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

/// Markdown table of the rows' normalised scores.
fn table(out: &mut String, title: &str, rows: &[(String, Scores)]) {
    let _ = writeln!(
        out,
        "\n### {title}\n\n| method | standard | low FP | low FN | windows found | false positives |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, s) in rows {
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

/// Runs every candidate and the naive reference on `series` and returns a Markdown
/// table per data set and one over all of them (NAB's corpus score: file scores
/// summed, then normalised): normalised score per profile, windows found, false
/// positives (standard profile).
pub fn run(series: &[LabelledSeries], candidates: &[Candidate]) -> Result<String, String> {
    let mut out = String::new();
    let names: Vec<String> = std::iter::once("naive rolling z, one alert a day".to_string())
        .chain(candidates.iter().map(|c| c.name.clone()))
        .collect();
    let mut overall: Vec<Scores> = vec![Scores::default(); names.len()];
    let (mut files_seen, mut windows_seen) = (0, 0);
    for set in SETS {
        let files: Vec<&LabelledSeries> = series
            .iter()
            .filter(|s| s.name.starts_with(&format!("{set}/")))
            .collect();
        if files.is_empty() {
            continue;
        }
        let mut rows: Vec<Scores> = vec![Scores::default(); names.len()];
        for s in &files {
            let g = grid(s);
            add(&mut rows[0], s, &naive_detections(&g));
            for (i, c) in candidates.iter().enumerate() {
                add(&mut rows[i + 1], s, &engine_detections(c, &g)?);
            }
        }
        for (o, r) in overall.iter_mut().zip(&rows) {
            for p in 0..PROFILES.len() {
                o[p].add(&r[p]);
            }
        }
        files_seen += files.len();
        windows_seen += rows[0][0].windows;
        let title = format!(
            "{set} ({} files, {} windows)",
            files.len(),
            rows[0][0].windows
        );
        table(
            &mut out,
            &title,
            &names.iter().cloned().zip(rows).collect::<Vec<_>>(),
        );
    }
    let title = format!("All three ({files_seen} files, {windows_seen} windows)");
    table(
        &mut out,
        &title,
        &names.into_iter().zip(overall).collect::<Vec<_>>(),
    );
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
        assert_eq!(
            fill_spans("b = {day}, k = {2hour}, w = {week}", HOUR).unwrap(),
            "b = 24, k = 2, w = 168"
        );
        assert!(fill_spans("{fortnight}", HOUR).is_err());
    }

    #[test]
    fn every_built_in_setting_is_a_valid_detect_section() {
        let g = Grid {
            step: 5 * 60_000,
            start: 0,
            values: vec![1.0; 10],
            row: (0..10).collect(),
        };
        let all = candidates();
        assert_eq!(all.len(), 19);
        for c in &all {
            let d = section(c, &g).unwrap_or_else(|e| panic!("{e}"));
            assert!(d.missing_parameters().is_empty() && d.bad_settings().is_empty());
            assert_eq!(c.name.ends_with("economy"), d.cooldown == 288, "{}", c.name);
        }
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
        let all = candidates();
        let named = |n: &str| all.iter().find(|c| c.name == n).expect(n);
        let with = named("robust_z, one day, α 1e-6, economy");
        let found = engine_detections(with, &g).unwrap();
        assert_eq!(found.first(), Some(&(3 * 288)), "{found:?}");
        let scored = score(&s, &found, &PROFILES[0]);
        assert_eq!(scored.detected, 1);
        let without = engine_detections(named("robust_z, one day, α 1e-6"), &g).unwrap();
        assert!(without.len() >= found.len());
    }
}
