//! One `[[route]]`: the conditions an alert must meet — its feed, pipeline, key
//! labels (`district`, `street`, `grid_id`, …) and attributes of its key in a
//! reference table (`attribute = { "key_enterprises.owner_department" = "区人社局" }`)
//! — and the departments it names, which may be templates filled from the key
//! (`{street}`) or from a reference table (`{grids.worker}`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Track;
use crate::alert::Alert;
use crate::core::key::{Cell, Key};
use crate::reference::Tables;

/// Key labels a route may match on.
pub(super) const LABELS: [&str; 5] = ["category", "kind", "district", "street", "grid_id"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Route {
    pub feed: Option<Spanned<String>>,
    pub pipeline: Option<Spanned<String>>,
    category: Option<String>,
    kind: Option<String>,
    district: Option<String>,
    street: Option<String>,
    grid_id: Option<String>,
    /// `"TABLE.COLUMN" = value`: the row of TABLE whose key is the alert's value
    /// of that key column has `value` in COLUMN.
    #[serde(default)]
    pub attribute: BTreeMap<Spanned<String>, String>,
    legal: Option<String>,
    opinion: Option<String>,
    control: Option<String>,
}

impl Route {
    pub fn get(&self, track: Track) -> Option<&String> {
        match track {
            Track::Legal => self.legal.as_ref(),
            Track::Opinion => self.opinion.as_ref(),
            Track::Control => self.control.as_ref(),
        }
    }

    fn label(&self, name: &str) -> Option<&String> {
        match name {
            "category" => self.category.as_ref(),
            "kind" => self.kind.as_ref(),
            "district" => self.district.as_ref(),
            "street" => self.street.as_ref(),
            "grid_id" => self.grid_id.as_ref(),
            _ => None,
        }
    }
}

/// A route's conditions, as (label, value); an attribute's label is `TABLE.COLUMN`.
pub(super) type Selectors = Vec<(String, String)>;

pub(super) fn selectors(r: &Route) -> Selectors {
    let fixed = [
        ("feed", r.feed.as_ref().map(|s| s.get_ref().clone())),
        ("pipeline", r.pipeline.as_ref().map(|s| s.get_ref().clone())),
    ];
    fixed
        .into_iter()
        .chain(LABELS.map(|l| (l, r.label(l).cloned())))
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .chain(
            r.attribute
                .iter()
                .map(|(k, v)| (k.get_ref().clone(), v.clone())),
        )
        .collect()
}

/// How specific a route is: one per condition, and a pipeline counts double, as
/// it is narrower than the feeds it reads.
pub(super) fn specificity(r: &Route) -> usize {
    selectors(r).len() + r.pipeline.is_some() as usize
}

pub(super) fn matches(r: &Route, alert: &Alert, tables: &Tables) -> bool {
    let label = |name: &str| {
        r.label(name)
            .is_none_or(|w| alert.key.get(name).and_then(Cell::as_str) == Some(w.as_str()))
    };
    r.feed
        .as_ref()
        .is_none_or(|f| alert.feeds.iter().any(|x| x == f.get_ref()))
        && r.pipeline
            .as_ref()
            .is_none_or(|p| alert.pipeline == *p.get_ref())
        && LABELS.iter().all(|l| label(l))
        && r.attribute.iter().all(|(path, want)| {
            attribute(path.get_ref(), alert, tables).as_deref() == Some(want.as_str())
        })
}

/// The value of `TABLE.COLUMN` for the alert's key, in the version in force at
/// the alert's window start.
fn attribute(path: &str, alert: &Alert, tables: &Tables) -> Option<String> {
    let (table, column) = path.split_once('.')?;
    let t = tables.get(table)?;
    let key = alert.key.get(t.def.key.as_deref()?)?;
    let key = match key {
        Cell::Text(s) => s.clone(),
        other => other.to_string(),
    };
    t.attribute(alert.window_start, &key, column)
}

/// Fills `{street}`, `{district}`, `{grid_id}` from the alert's key and
/// `{TABLE.COLUMN}` from a reference table; `None` when a reference value is
/// missing (the caller falls back to the default department).
pub(super) fn fill(template: &str, alert: &Alert, tables: &Tables) -> Option<String> {
    let mut out = fill_key(template, &alert.key);
    while let Some(open) = out.find('{') {
        let close = open + out[open..].find('}')?;
        let value = attribute(&out[open + 1..close], alert, tables)?;
        out.replace_range(open..=close, &value);
    }
    Some(out)
}

/// Fills the key labels of a template (escalation steps have only the key).
pub(super) fn fill_key(template: &str, key: &Key) -> String {
    let value = |name: &str, fallback: &str| {
        key.get(name)
            .and_then(Cell::as_str)
            .unwrap_or(fallback)
            .to_string()
    };
    template
        .replace("{street}", &value("street", "属地街道（镇）"))
        .replace("{district}", &value("district", "属地区"))
        .replace("{grid_id}", &value("grid_id", "属地网格"))
}
