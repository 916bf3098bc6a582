//! The detect stage of a pipeline: each closed window's rows become points in
//! per-key series (quiet keys get zeros), the pipeline's method compares each
//! point with its baseline, `[[rule]]` conditions are checked on the rows, and the
//! resulting findings go through the alert lifecycle.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use super::baseline::select;
use super::config::{DetectConfig, Level, Method};
use super::rule::CompiledRule;
use super::series::SeriesStore;
use super::{Cusum, Ears, Ewma, Verdict};
use crate::alert::{Alert, Finding, Lifecycle, Measure, Timing};
use crate::query::tables::{WINDOW_END, WINDOW_START};
use crate::sink::batch_rows;
use crate::time::{DAY, Millis};
use crate::window::WindowResult;

/// One key's row in a window: its labels, the watched value, and the highest rule it met.
type KeyRow = (Map<String, Value>, f64, Option<(Level, String)>);

/// Default number of past windows in a baseline.
pub const DEFAULT_BASELINE: usize = 7;

pub struct PipelineDetector {
    pipeline: String,
    feeds: Vec<String>,
    config: Option<DetectConfig>,
    rules: Vec<CompiledRule>,
    key_columns: Vec<String>,
    utc_offset: Millis,
    store: SeriesStore,
    ewma: BTreeMap<String, Option<Ewma>>,
    cusum: BTreeMap<String, Cusum>,
    lifecycle: Lifecycle,
    /// Points judged while their baseline was still too short.
    pub warming_up: u64,
}

/// The key columns: as configured, or every non-window column that is not a number.
pub fn key_columns(config: Option<&DetectConfig>, output: &SchemaRef) -> Vec<String> {
    match config.and_then(|c| c.key.as_ref()) {
        Some(keys) => keys.iter().map(|k| k.get_ref().clone()).collect(),
        None => output
            .fields()
            .iter()
            .filter(|f| {
                f.name() != WINDOW_START && f.name() != WINDOW_END && !f.data_type().is_numeric()
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
        // Enough history for a year of weekly seasons at most, and the baseline.
        // Enough history for the baseline in every season of the cycle.
        let capacity = config.as_ref().map_or(1, |c| {
            let per_season = c.baseline.unwrap_or(DEFAULT_BASELINE) + c.guard + 16;
            let seasons = c
                .seasonality
                .period()
                .map_or(1, |p| (p / slide.max(1)).max(1) as usize);
            per_season * seasons
        });
        Some(PipelineDetector {
            pipeline: pipeline.to_string(),
            feeds,
            config,
            rules,
            key_columns,
            utc_offset,
            store: SeriesStore::new(slide, capacity, 90 * DAY),
            ewma: BTreeMap::new(),
            cusum: BTreeMap::new(),
            lifecycle: Lifecycle::default(),
            warming_up: 0,
        })
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
        // Per key: labels, value, and the highest rule level met.
        let mut rows: BTreeMap<String, KeyRow> = BTreeMap::new();
        for batch in &w.batches {
            let mut rule_hits: Vec<Vec<bool>> = Vec::new();
            for r in &self.rules {
                rule_hits.push(r.matches(batch)?);
            }
            for (i, row) in batch_rows(batch).into_iter().enumerate() {
                let labels: Map<String, Value> = self
                    .key_columns
                    .iter()
                    .map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
                let key = Value::Array(labels.values().cloned().collect()).to_string();
                let value = match &self.config {
                    Some(c) => row
                        .get(c.value.get_ref())
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    None => row
                        .iter()
                        .filter(|(k, _)| !self.key_columns.contains(k))
                        .find_map(|(_, v)| v.as_f64())
                        .unwrap_or(0.0),
                };
                let mut rule = None::<(Level, String)>;
                for (r, hits) in self.rules.iter().zip(&rule_hits) {
                    if hits[i] && rule.as_ref().is_none_or(|(l, _)| r.level > *l) {
                        rule = Some((r.level, r.name.clone()));
                    }
                }
                // Several rows of one key (a key coarser than the GROUP BY) add up.
                match rows.get_mut(&key) {
                    Some(row) => {
                        row.1 += value;
                        if rule.as_ref().map(|r| r.0) > row.2.as_ref().map(|r| r.0) {
                            row.2 = rule;
                        }
                    }
                    None => {
                        rows.insert(key, (labels, value, rule));
                    }
                }
            }
        }
        let mut findings = Vec::new();
        match self.config.clone() {
            Some(c) => {
                let values: Vec<(String, f64)> =
                    rows.iter().map(|(k, (_, v, _))| (k.clone(), *v)).collect();
                for point in self.store.record(w.start, &values) {
                    let verdict = self.judge(&c, &point.key, &point.history, w.start, point.value);
                    let entry = rows.get(&point.key);
                    let labels = entry
                        .map(|e| e.0.clone())
                        .unwrap_or_else(|| labels_of(&point.key, &self.key_columns));
                    let rule = entry.and_then(|e| e.2.clone());
                    let method_level = verdict
                        .filter(|v| v.alarm && point.value >= c.min_value)
                        .map(|v| c.levels.grade(*c.method.get_ref(), v.p_value, v.score));
                    let level = method_level.max(rule.as_ref().map(|r| r.0));
                    let method = match (&rule, method_level) {
                        (Some((l, name)), m) if Some(*l) >= m => format!("rule: {name}"),
                        _ => c.method.get_ref().as_str().to_string(),
                    };
                    findings.push(Finding {
                        key: point.key.clone(),
                        labels,
                        start: w.start,
                        end: w.end,
                        measure: Measure {
                            value: point.value,
                            expected: verdict.map(|v| v.expected).filter(|e| e.is_finite()),
                            threshold: verdict.map(|v| v.threshold).filter(|e| e.is_finite()),
                            score: verdict.map(|v| v.score).filter(|e| e.is_finite()),
                            p_value: verdict.and_then(|v| v.p_value),
                            method,
                        },
                        level,
                    });
                }
            }
            None => {
                for (key, (labels, value, rule)) in rows {
                    findings.push(Finding {
                        key,
                        labels,
                        start: w.start,
                        end: w.end,
                        measure: Measure {
                            value,
                            expected: None,
                            threshold: None,
                            score: None,
                            p_value: None,
                            method: rule
                                .as_ref()
                                .map_or("rule".into(), |r| format!("rule: {}", r.1)),
                        },
                        level: rule.map(|r| r.0),
                    });
                }
            }
        }
        let timing = self.timing();
        Ok(self
            .lifecycle
            .step(&self.pipeline, &self.feeds, timing, &findings))
    }

    /// The method's verdict on `y`, or `None` while warming up.
    fn judge(
        &mut self,
        c: &DetectConfig,
        key: &str,
        history: &[(Millis, f64)],
        start: Millis,
        y: f64,
    ) -> Option<Verdict> {
        let n = c.baseline.unwrap_or(DEFAULT_BASELINE);
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
            _ => None,
        };
        if v.is_none() {
            self.warming_up += 1;
        }
        v
    }
}

fn labels_of(key: &str, columns: &[String]) -> Map<String, Value> {
    let values: Vec<Value> = serde_json::from_str(key).unwrap_or_default();
    columns.iter().cloned().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rows_of_a_coarser_key_add_up_and_quiet_keys_resolve() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("street", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let config: DetectConfig = toml::from_str(
            "value = \"n\"\nkey = [\"street\"]\nmethod = \"threshold\"\nupper = 4\n",
        )
        .unwrap();
        let mut d = PipelineDetector::new(
            "p",
            vec!["petition".into()],
            Some(config),
            vec![],
            &schema,
            10,
            0,
        )
        .unwrap();
        let window = |start: Millis, rows: &[(&str, &str, i64)]| WindowResult {
            pipeline: "p".into(),
            start,
            end: start + 10,
            batches: vec![
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                    ],
                )
                .unwrap(),
            ],
            per_row: false,
        };
        // 2 + 3 = 5 > 4 for street S: one firing alert keyed by street alone.
        let a = d
            .on_window(&window(0, &[("S", "a", 2), ("S", "b", 3), ("T", "a", 1)]))
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].measure.value, 5.0);
        assert_eq!(a[0].key.get("street"), Some(&Value::String("S".into())));
        assert_eq!(a[0].status, Status::Firing);
        // A window without S: S is quiet (0), so its alert resolves.
        let a = d.on_window(&window(10, &[("T", "a", 1)])).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].status, a[0].measure.value), (Status::Resolved, 0.0));
    }
}
