//! The detect stage of a pipeline: each closed window's rows become points in
//! per-key series (quiet keys get zeros), the pipeline's method compares each
//! point with its baseline, `[[rule]]` conditions are checked on the rows, and the
//! resulting findings go through the alert lifecycle.

use std::collections::{BTreeMap, BTreeSet};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::baseline::select;
use super::config::{DetectConfig, Method};
use super::farrington::Settings;
use super::robust::Glr;
use super::rule::CompiledRule;
use super::sensitive::Sensitive;
use super::series::{Point, SeriesStore};
use super::{Cusum, Ears, Ewma, Verdict};
use crate::alert::{Alert, Finding, Lifecycle, Measure, Timing};
use crate::core::key::{Cell, Key};
use crate::core::level::Level;
use crate::core::stage::Stateful;
use crate::core::time::{DAY, Millis};
use crate::query::sample::SAMPLE_SIZE;
use crate::query::tables::{WINDOW_END, WINDOW_START};
use crate::window::WindowResult;

/// The column a pipeline fills with `sample_ids(event_id)`; alerts carry its ids.
pub const SAMPLE_COLUMN: &str = "sample_event_ids";

/// One key's rows in a window.
struct KeyRow {
    labels: Key,
    /// The watched value.
    value: f64,
    /// `binomial`: the number of trials.
    trials: f64,
    /// The highest rule met, and its name.
    rule: Option<(Level, String)>,
    event_ids: BTreeSet<String>,
}

/// Default number of past windows in a baseline.
pub const DEFAULT_BASELINE: usize = 7;

/// How many past windows a method's baseline holds: as configured, else 7 — but
/// `shesd`, which estimates seasons from it, takes two cycles (at least 28 windows).
pub fn baseline_len(c: &DetectConfig, slide: Millis) -> usize {
    match (c.baseline, *c.method.get_ref()) {
        (Some(b), _) => b,
        (None, Method::Shesd) => c
            .seasonality
            .period()
            .map_or(28, |p| (2 * p / slide.max(1)).max(28) as usize),
        _ => DEFAULT_BASELINE,
    }
}

/// Whether a value differs from the expected one by at least `min_ratio` times
/// (above it: value ≥ ratio × expected; below it: value × ratio ≤ expected).
fn ratio_met(min_ratio: f64, value: f64, expected: f64) -> bool {
    if min_ratio <= 0.0 || !expected.is_finite() {
        return true;
    }
    if value >= expected {
        value >= min_ratio * expected
    } else {
        value * min_ratio <= expected
    }
}

pub struct PipelineDetector {
    pipeline: String,
    feeds: Vec<String>,
    config: Option<DetectConfig>,
    rules: Vec<CompiledRule>,
    key_columns: Vec<String>,
    utc_offset: Millis,
    store: SeriesStore,
    /// `binomial`: the trials of each key's windows, recorded alongside the values.
    trials: Option<SeriesStore>,
    /// `farrington`: its settings and windows per period.
    farrington: Option<(Settings, usize)>,
    ewma: BTreeMap<String, Option<Ewma>>,
    cusum: BTreeMap<String, Cusum>,
    glr: BTreeMap<String, Glr>,
    lifecycle: Lifecycle,
    /// Points judged while their baseline was still too short.
    pub warming_up: u64,
    /// What the last window found, key by key.
    last: Vec<Finding>,
    /// Sensitive dates: closer watch on windows that overlap them.
    sensitive: Option<Sensitive>,
}

/// What a detector remembers between windows, for checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DetectorState {
    store: SeriesStore,
    trials: Option<SeriesStore>,
    ewma: BTreeMap<String, Option<Ewma>>,
    cusum: BTreeMap<String, Cusum>,
    /// Absent from checkpoints written before `glrnb` existed.
    #[serde(default)]
    glr: BTreeMap<String, Glr>,
    lifecycle: Lifecycle,
    warming_up: u64,
}

impl DetectorState {
    /// The series and method state without open incidents: to warm a pipeline
    /// started afresh from a run over history (`replay --save-state`), which
    /// must not bring that run's incidents along.
    pub fn warm(mut self) -> Self {
        self.lifecycle = Lifecycle::default();
        self.warming_up = 0;
        self
    }
}

/// The key columns: as configured, or every non-window column that is not a number.
pub fn key_columns(config: Option<&DetectConfig>, output: &SchemaRef) -> Vec<String> {
    match config.and_then(|c| c.key.as_ref()) {
        Some(keys) => keys.iter().map(|k| k.get_ref().clone()).collect(),
        None => output
            .fields()
            .iter()
            .filter(|f| {
                f.name() != WINDOW_START
                    && f.name() != WINDOW_END
                    && !f.data_type().is_numeric()
                    && !f.data_type().is_nested()
            })
            .map(|f| f.name().clone())
            .collect(),
    }
}

impl PipelineDetector {
    /// `None` when the pipeline has neither `[detect]` nor rules.
    pub fn new(
        pipeline: &str,
        feeds: Vec<String>,
        config: Option<DetectConfig>,
        rules: Vec<CompiledRule>,
        output: &SchemaRef,
        slide: Millis,
        utc_offset: Millis,
    ) -> Option<Self> {
        if config.is_none() && rules.is_empty() {
            return None;
        }
        let key_columns = key_columns(config.as_ref(), output);
        // `check` has refused settings that do not fit the windows.
        let farrington = config
            .as_ref()
            .filter(|c| *c.method.get_ref() == Method::Farrington)
            .and_then(|c| c.farrington(slide).ok());
        // Enough history for the baseline in every season of the cycle (Farrington:
        // b periods and w windows).
        let capacity = config.as_ref().map_or(1, |c| match &farrington {
            Some((s, freq)) => s.required_history(*freq) + 1,
            None if *c.method.get_ref() == Method::Shesd => baseline_len(c, slide) + 16,
            None => {
                let per_season = c.baseline.unwrap_or(DEFAULT_BASELINE) + c.guard + 16;
                let seasons = c
                    .seasonality
                    .period()
                    .map_or(1, |p| (p / slide.max(1)).max(1) as usize);
                per_season * seasons
            }
        });
        let trials = config
            .as_ref()
            .filter(|c| c.trials.is_some())
            .map(|_| SeriesStore::new(slide, capacity, 90 * DAY));
        Some(PipelineDetector {
            pipeline: pipeline.to_string(),
            feeds,
            config,
            rules,
            key_columns,
            utc_offset,
            store: SeriesStore::new(slide, capacity, 90 * DAY),
            trials,
            farrington,
            ewma: BTreeMap::new(),
            cusum: BTreeMap::new(),
            glr: BTreeMap::new(),
            lifecycle: Lifecycle::default(),
            warming_up: 0,
            last: Vec::new(),
            sensitive: None,
        })
    }

    /// Watches closer on the dates of a sensitivity calendar.
    pub fn with_sensitive(mut self, sensitive: Option<Sensitive>) -> Self {
        self.sensitive = sensitive;
        self
    }

    fn timing(&self) -> Timing {
        self.config.as_ref().map_or(Timing::default(), |c| Timing {
            for_windows: c.for_windows,
            keep_firing_for: c.keep_firing_for,
            cooldown: c.cooldown,
            language: c.language,
        })
    }

    /// Judges one closed window and returns the alerts it raises.
    pub fn on_window(
        &mut self,
        w: &WindowResult,
    ) -> Result<Vec<Alert>, datafusion::error::DataFusionError> {
        let rows = self.key_rows(w)?;
        let sensitive = self.sensitive.clone().filter(|s| s.covers(w.start, w.end));
        let config = self.config.clone().map(|c| match &sensitive {
            Some(s) => s.closer(c),
            None => c,
        });
        let mut judged = match config {
            Some(c) => self.judge_points(&c, w, &rows),
            None => rows
                .iter()
                .map(|(key, row)| {
                    let method = row
                        .rule
                        .as_ref()
                        .map_or("rule".into(), |r| format!("rule: {}", r.1));
                    let level = row.rule.as_ref().map(|r| r.0);
                    let mut measure = Measure::observed(row.value, method);
                    if level.is_some() {
                        let rule = row.rule.as_ref().map(|r| r.1.as_str());
                        measure.explanation = Some(Box::new(self.explain(w, key, None, rule)));
                    }
                    (key.clone(), measure, level)
                })
                .collect(),
        };
        if let Some(s) = &sensitive {
            s.raise_levels(&mut judged);
        }
        let mut findings: Vec<Finding> = judged
            .into_iter()
            .map(|(key, measure, level)| self.finding(w, &key, rows.get(&key), measure, level))
            .collect();
        // A key with an open episode but no point this window (rules only, or a
        // series expired for idleness) was quiet: judge it normal so it can resolve.
        let seen: std::collections::BTreeSet<&str> =
            findings.iter().map(|f| f.key.as_str()).collect();
        let quiet: Vec<String> = self
            .lifecycle
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect();
        for key in quiet {
            let measure = Measure::observed(0.0, "quiet".into());
            findings.push(self.finding(w, &key, None, measure, None));
        }
        findings.sort_by(|a, b| a.key.cmp(&b.key));
        let timing = self.timing();
        let alerts = self
            .lifecycle
            .step(&self.pipeline, &self.feeds, timing, &findings);
        self.last = findings;
        Ok(alerts)
    }

    /// Resolves every firing incident of the pipeline at `at`: its definition
    /// changed or it was removed (`why`); see [`Lifecycle::withdraw`].
    pub fn withdraw(&mut self, at: Millis, why: &str) -> Vec<Alert> {
        let language = self.timing().language;
        self.lifecycle.withdraw(
            &self.pipeline,
            &self.feeds,
            &self.key_columns,
            language,
            at,
            why,
        )
    }

    /// What the last window found, key by key.
    pub fn last_findings(&self) -> &[Finding] {
        &self.last
    }

    /// Records the window's values (and trials) in the series and judges each
    /// key's point by the method, or by a rule where one grades higher.
    fn judge_points(
        &mut self,
        c: &DetectConfig,
        w: &WindowResult,
        rows: &BTreeMap<String, KeyRow>,
    ) -> Vec<(String, Measure, Option<Level>)> {
        let values: Vec<(String, f64)> = rows.iter().map(|(k, r)| (k.clone(), r.value)).collect();
        let trials: Vec<(String, f64)> = rows.iter().map(|(k, r)| (k.clone(), r.trials)).collect();
        let trial_points = match self.trials.as_mut() {
            Some(store) => store.record(w.start, &trials),
            None => Vec::new(),
        };
        let points = self.store.record(w.start, &values);
        // Keys the store forgot for idleness take their method state with them,
        // or a daemon's memory would grow with every key it ever saw.
        let live = &self.store.series;
        self.ewma.retain(|k, _| live.contains_key(k));
        self.cusum.retain(|k, _| live.contains_key(k));
        self.glr.retain(|k, _| live.contains_key(k));
        let mut judged = Vec::with_capacity(points.len());
        for (i, point) in points.into_iter().enumerate() {
            // Both stores hold the same keys, so their points line up.
            let trials = trial_points.get(i).filter(|t| t.key == point.key);
            let verdict = self.judge(c, &point, trials, w.start);
            let rule = rows.get(&point.key).and_then(|r| r.rule.clone());
            let method_level = verdict
                .filter(|v| {
                    v.alarm
                        && point.value >= c.min_value
                        && ratio_met(c.min_ratio, point.value, v.expected)
                })
                .map(|v| c.levels.grade(*c.method.get_ref(), v.p_value, v.score));
            let level = method_level.max(rule.as_ref().map(|r| r.0));
            let method = match (&rule, method_level) {
                (Some((l, name)), m) if Some(*l) >= m => format!("rule: {name}"),
                _ => c.method.get_ref().as_str().to_string(),
            };
            let explanation = level.map(|_| {
                let rule = rule.as_ref().map(|r| r.1.as_str());
                Box::new(self.explain(w, &point.key, Some(&point.history), rule))
            });
            let measure = Measure {
                value: point.value,
                expected: verdict.map(|v| v.expected).filter(|e| e.is_finite()),
                threshold: verdict.map(|v| v.threshold).filter(|e| e.is_finite()),
                score: verdict.map(|v| v.score).filter(|e| e.is_finite()),
                p_value: verdict.and_then(|v| v.p_value),
                method,
                explanation,
            };
            judged.push((point.key, measure, level));
        }
        judged
    }

    /// What was found for `key` in the window; its labels from its row, or (a
    /// quiet key) from the key itself.
    fn finding(
        &self,
        w: &WindowResult,
        key: &str,
        row: Option<&KeyRow>,
        measure: Measure,
        level: Option<Level>,
    ) -> Finding {
        Finding {
            key: key.to_string(),
            labels: row.map_or_else(
                || Key::from_id(key, &self.key_columns),
                |r| r.labels.clone(),
            ),
            start: w.start,
            end: w.end,
            measure,
            level,
            event_ids: row.map_or_else(Vec::new, |r| r.event_ids.iter().cloned().collect()),
        }
    }

    /// The window's rows per key: labels, summed value and trials, highest rule met,
    /// sample event ids.
    fn key_rows(
        &self,
        w: &WindowResult,
    ) -> Result<BTreeMap<String, KeyRow>, datafusion::error::DataFusionError> {
        let mut rows: BTreeMap<String, KeyRow> = BTreeMap::new();
        for batch in &w.batches {
            let mut rule_hits: Vec<Vec<bool>> = Vec::new();
            for r in &self.rules {
                rule_hits.push(r.matches(batch)?);
            }
            let columns = Columns::of(batch, &self.key_columns, self.config.as_ref());
            for i in 0..batch.num_rows() {
                let labels = columns.key_of(batch, i);
                let number = |c: Option<usize>| {
                    c.and_then(|c| Cell::from_arrow(batch.column(c), i).as_f64())
                };
                let value = match columns.value {
                    Some(c) => number(Some(c)).unwrap_or(0.0),
                    // Without [detect]: the first numeric column that is not a key.
                    None => columns
                        .measures
                        .iter()
                        .find_map(|c| number(Some(*c)))
                        .unwrap_or(0.0),
                };
                let trials = number(columns.trials).unwrap_or(0.0);
                let mut rule = None::<(Level, String)>;
                for (r, hits) in self.rules.iter().zip(&rule_hits) {
                    if hits[i] && rule.as_ref().is_none_or(|(l, _)| r.level > *l) {
                        rule = Some((r.level, r.name.clone()));
                    }
                }
                let ids = match columns.sample.map(|c| Cell::from_arrow(batch.column(c), i)) {
                    Some(Cell::List(items)) => items
                        .into_iter()
                        .filter_map(|c| match c {
                            Cell::Text(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                // Several rows of one key (a key coarser than the GROUP BY) add up.
                let entry = rows.entry(labels.id()).or_insert_with(|| KeyRow {
                    labels,
                    value: 0.0,
                    trials: 0.0,
                    rule: None,
                    event_ids: Default::default(),
                });
                entry.value += value;
                entry.trials += trials;
                if rule.as_ref().map(|r| r.0) > entry.rule.as_ref().map(|r| r.0) {
                    entry.rule = rule;
                }
                entry.event_ids.extend(ids);
                while entry.event_ids.len() > SAMPLE_SIZE {
                    entry.event_ids.pop_last();
                }
            }
        }
        Ok(rows)
    }

    /// The method's verdict on `y`, or `None` while warming up.
    fn judge(
        &mut self,
        c: &DetectConfig,
        point: &Point,
        trials: Option<&Point>,
        start: Millis,
    ) -> Option<Verdict> {
        let (key, history, y) = (point.key.as_str(), &point.history, point.value);
        let n = baseline_len(c, self.store.slide);
        let base = select(history, start, c.seasonality, self.utc_offset, n, c.guard);
        let all: Vec<f64> = history.iter().map(|(_, v)| *v).collect();
        let full = base.len() >= n;
        let v = match *c.method.get_ref() {
            Method::Threshold => Some(super::threshold(y, c.upper, c.lower)),
            Method::Zscore if full => super::zscore(&base, y, c.alpha, c.min_sigma),
            Method::Ewma if full => {
                let state = self.ewma.entry(key.to_string()).or_default();
                Ewma::update(state, &base, y, c.lambda.unwrap_or(0.3), c.l.unwrap_or(3.0))
            }
            Method::Cusum if full => {
                let lambda0 = base.iter().sum::<f64>() / base.len() as f64;
                let state = self.cusum.entry(key.to_string()).or_default();
                Some(state.update(
                    lambda0,
                    lambda0 * c.shift.unwrap_or(2.0),
                    c.h.unwrap_or(4.0),
                    y,
                ))
            }
            Method::Poisson if full => super::poisson(&base, y, c.alpha),
            Method::Negbin if full => super::negbin(&base, y, c.alpha),
            Method::Bayes if full => super::bayes(&base, y, c.alpha),
            Method::EarsC1 => super::ears(Ears::C1, &all, y, c.limit.unwrap_or(3.0), c.min_sigma),
            Method::EarsC2 => super::ears(Ears::C2, &all, y, c.limit.unwrap_or(3.0), c.min_sigma),
            Method::EarsC3 => super::ears(Ears::C3, &all, y, c.limit.unwrap_or(2.0), c.min_sigma),
            Method::Farrington => self
                .farrington
                .and_then(|(s, freq)| s.judge(&all, y, freq, c.alpha)),
            Method::RobustZ if full => super::robust::robust_z(&base, y, c.alpha, c.min_sigma),
            Method::Shesd => super::robust::shesd(
                history,
                start,
                y,
                c.seasonality,
                self.utc_offset,
                n,
                c.max_anoms.unwrap_or(0.05),
                c.alpha,
            ),
            Method::Glrnb if full => {
                let mu = base.iter().sum::<f64>() / base.len() as f64;
                let a = c
                    .dispersion
                    .unwrap_or_else(|| super::robust::dispersion(&base));
                let state = self.glr.entry(key.to_string()).or_default();
                Some(state.update(mu, a, y, c.h.unwrap_or(5.0), c.m.unwrap_or(n)))
            }
            Method::Binomial if full => trials.and_then(|t| {
                let trials = select(
                    &t.history,
                    start,
                    c.seasonality,
                    self.utc_offset,
                    n,
                    c.guard,
                );
                let pairs: Vec<(f64, f64)> = base.iter().copied().zip(trials).collect();
                super::binomial(&pairs, y, t.value, c.alpha)
            }),
            _ => None,
        };
        if v.is_none() {
            self.warming_up += 1;
        }
        v
    }
}

impl Stateful for PipelineDetector {
    type State = DetectorState;

    fn state(&self) -> DetectorState {
        DetectorState {
            store: self.store.clone(),
            trials: self.trials.clone(),
            ewma: self.ewma.clone(),
            cusum: self.cusum.clone(),
            glr: self.glr.clone(),
            lifecycle: self.lifecycle.clone(),
            warming_up: self.warming_up,
        }
    }

    fn restore(&mut self, s: DetectorState) {
        self.store = s.store;
        self.trials = s.trials;
        self.ewma = s.ewma;
        self.cusum = s.cusum;
        self.glr = s.glr;
        self.lifecycle = s.lifecycle;
        self.warming_up = s.warming_up;
    }
}

/// Where a window batch holds what a detector reads.
struct Columns {
    /// Each key column and its index (`None`: the batch lacks it).
    key: Vec<(String, Option<usize>)>,
    value: Option<usize>,
    trials: Option<usize>,
    /// Columns that are not keys, in order: the measure when no `value` is set.
    measures: Vec<usize>,
    sample: Option<usize>,
}

impl Columns {
    /// Row `i`'s key: its key columns' values (null where the batch lacks one).
    fn key_of(&self, batch: &RecordBatch, i: usize) -> Key {
        self.key
            .iter()
            .map(|(name, c)| {
                let cell = c.map_or(Cell::Null, |c| Cell::from_arrow(batch.column(c), i));
                (name.clone(), cell)
            })
            .collect()
    }

    fn of(batch: &RecordBatch, key_columns: &[String], config: Option<&DetectConfig>) -> Self {
        let schema = batch.schema();
        let index = |name: &str| schema.index_of(name).ok();
        Columns {
            key: key_columns.iter().map(|k| (k.clone(), index(k))).collect(),
            value: config.and_then(|c| index(c.value.get_ref())),
            trials: config
                .and_then(|c| c.trials.as_ref())
                .and_then(|t| index(t.get_ref())),
            measures: (0..schema.fields().len())
                .filter(|c| !key_columns.contains(schema.field(*c).name()))
                .collect(),
            sample: index(SAMPLE_COLUMN),
        }
    }
}

mod explain;

#[cfg(test)]
mod tests;
