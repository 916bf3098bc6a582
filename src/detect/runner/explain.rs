//! What an alert carries so that a reader can check it without the engine: the
//! baseline its window was compared with (how many windows, their mean and
//! variance), the seasonal slot compared, the detector's settings, and the
//! window's other columns for its key. Built only for the windows that alert,
//! so a quiet window costs nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Columns, PipelineDetector};
use crate::alert::{Baseline, Explanation};
use crate::core::key::Cell;
use crate::detect::baseline::{Seasonality, select};
use crate::detect::config::DetectConfig;
use crate::query::tables::{WINDOW_END, WINDOW_START};
use crate::window::WindowResult;

impl PipelineDetector {
    /// The explanation of `key`'s judgement in `w`; `history` is the key's
    /// series before this window (as the method read it).
    pub(super) fn explain(
        &self,
        w: &WindowResult,
        key: &str,
        history: Option<&[(crate::core::time::Millis, f64)]>,
        rule: Option<&str>,
    ) -> Explanation {
        let mut parameters = BTreeMap::new();
        let mut baseline = None;
        let mut slot = None;
        if let Some(c) = &self.config {
            let n = super::baseline_len(c, self.store.slide);
            parameters = settings(c, n);
            if let Some(history) = history {
                let base = select(history, w.start, c.seasonality, self.utc_offset, n, c.guard);
                baseline = Some(summary(&base));
            }
            if c.seasonality != Seasonality::None {
                slot = Some(format!(
                    "{} {}",
                    name(c.seasonality),
                    c.seasonality.slot(w.start, self.utc_offset)
                ));
            }
        }
        if let Some(rule) = rule {
            parameters.insert("rule".into(), Value::from(rule));
        }
        Explanation {
            baseline,
            slot,
            parameters,
            columns: self.row_columns(w, key),
        }
    }

    /// The other columns of `key`'s row in the window (the first row, where a
    /// key coarser than the GROUP BY has several).
    fn row_columns(&self, w: &WindowResult, key: &str) -> BTreeMap<String, Value> {
        for batch in &w.batches {
            let columns = Columns::of(batch, &self.key_columns, self.config.as_ref());
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                if columns.key_of(batch, i).id() != key {
                    continue;
                }
                return columns
                    .measures
                    .iter()
                    .filter(|c| Some(**c) != columns.sample)
                    .map(|c| (schema.field(*c).name().clone(), *c))
                    .filter(|(name, _)| name != WINDOW_START && name != WINDOW_END)
                    // Numbers only: a text column could be a pseudonym.
                    .filter_map(|(name, c)| {
                        let cell = Cell::from_arrow(batch.column(c), i);
                        cell.as_f64().map(|_| (name, cell.into()))
                    })
                    .collect();
            }
        }
        BTreeMap::new()
    }
}

/// n, mean and variance (n − 1) of the baseline windows.
fn summary(base: &[f64]) -> Baseline {
    let n = base.len();
    let mean = (n > 0).then(|| base.iter().sum::<f64>() / n as f64);
    let variance = mean
        .filter(|_| n > 1)
        .map(|m| base.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64);
    Baseline { n, mean, variance }
}

/// The settings that decided the judgement: the method, its thresholds and
/// levels, and the options it was given.
fn settings(c: &DetectConfig, baseline: usize) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    out.insert("method".into(), Value::from(c.method.get_ref().as_str()));
    out.insert("value".into(), Value::from(c.value.get_ref().as_str()));
    out.insert("alpha".into(), Value::from(c.alpha));
    out.insert("baseline".into(), Value::from(baseline));
    out.insert("guard".into(), Value::from(c.guard));
    out.insert("seasonality".into(), Value::from(name(c.seasonality)));
    out.insert("min_value".into(), Value::from(c.min_value));
    out.insert("min_ratio".into(), Value::from(c.min_ratio));
    if let Ok(levels) = serde_json::to_value(c.levels) {
        out.insert("levels".into(), levels);
    }
    let options = [
        ("lambda", c.lambda),
        ("l", c.l),
        ("upper", c.upper),
        ("lower", c.lower),
        ("shift", c.shift),
        ("h", c.h),
        ("dispersion", c.dispersion),
        ("max_anoms", c.max_anoms),
        ("limit", c.limit),
    ];
    for (name, v) in options {
        if let Some(v) = v {
            out.insert(name.into(), Value::from(v));
        }
    }
    out
}

/// A seasonality as written in pipeline files (`hour_of_day`, …).
fn name(s: Seasonality) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
