//! A backtest scored against known incidents (labels), in the manner of R
//! surveillance's `algo.quality`: per pipeline and overall, the incidents
//! detected and missed, the delay to the first alert, the level reached, and
//! the alerts outside every incident (false alarms, per week of data).
//!
//! A label is a key (some columns and their values), a time span and, if
//! wanted, the level expected and the pipelines meant to catch it. Labels come
//! as JSON lines or as the generator's `manifest.json` (its `incidents`).
//! An alert episode (one `incident_id` of a pipeline) detects a label when its
//! pipeline could catch the label (it reads the label's feed and is keyed by at
//! least the label's columns, or the label names it), and one of its firing
//! alerts agrees with the label on every shared key column and its window
//! overlaps the label's span.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::alert::{Alert, Status};
use crate::core::level::Level;
use crate::core::time::{DAY, Millis, parse_rfc3339};
use crate::error::{Error, Result};

/// One known incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub id: String,
    /// The feed it shows in; `None`: any.
    pub feed: Option<String>,
    pub key: BTreeMap<String, Value>,
    pub start: Millis,
    pub end: Millis,
    /// The level it should reach, if the label says.
    pub level: Option<Level>,
    /// The pipelines meant to catch it; empty: every pipeline that reads its
    /// feed and is keyed by (at least) its key columns.
    pub pipelines: Vec<String>,
}

/// Fields of a label line that are not key columns.
const LABEL_FIELDS: [&str; 10] = [
    "id",
    "feed",
    "key",
    "start",
    "end",
    "level",
    "pipelines",
    "kind",
    "description",
    "events",
];

/// Reads labels: the generator's manifest (an object with `incidents`) or JSON
/// lines, one label each; a bad label is an error naming its line.
pub fn read_labels(path: &Path) -> Result<Vec<Label>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad =
        |line: usize, what: String| Error::Other(format!("{}:{line}: {what}", path.display()));
    if let Ok(Value::Object(manifest)) = serde_json::from_str::<Value>(&text)
        && let Some(Value::Array(incidents)) = manifest.get("incidents")
    {
        return incidents
            .iter()
            .enumerate()
            .map(|(i, v)| label(v, i + 1).map_err(|e| bad(1, format!("incident {}: {e}", i + 1))))
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).map_err(|e| bad(i + 1, e.to_string()))?;
            label(&v, i + 1).map_err(|e| bad(i + 1, e))
        })
        .collect()
}

/// One label from its JSON object; `n` names it when it has no `id`.
fn label(v: &Value, n: usize) -> std::result::Result<Label, String> {
    let Value::Object(o) = v else {
        return Err("a label is a JSON object".into());
    };
    let time = |name: &str| -> std::result::Result<Millis, String> {
        o.get(name)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .ok_or_else(|| format!("`{name}` must be an RFC 3339 time"))
    };
    let (start, end) = (time("start")?, time("end")?);
    if end < start {
        return Err("`end` is before `start`".into());
    }
    let key: BTreeMap<String, Value> = match o.get("key") {
        Some(Value::Object(k)) => k.clone().into_iter().collect(),
        Some(_) => return Err("`key` must be an object of key columns".into()),
        None => o
            .iter()
            .filter(|(name, _)| !LABEL_FIELDS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    };
    if key.is_empty() {
        return Err("a label needs at least one key column".into());
    }
    let level = match o.get("level") {
        None | Some(Value::Null) => None,
        Some(l) => Some(
            l.as_str()
                .and_then(|l| {
                    Level::ALL
                        .into_iter()
                        .find(|x| x.as_str() == l || x.zh() == l)
                })
                .ok_or("`level` must be blue, yellow, orange or red")?,
        ),
    };
    let pipelines = match o.get("pipelines") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("`pipelines` must be a list of pipeline names")?,
        Some(_) => return Err("`pipelines` must be a list of pipeline names".into()),
    };
    Ok(Label {
        id: o
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("label {n}"), str::to_string),
        feed: o.get("feed").and_then(Value::as_str).map(str::to_string),
        key,
        start,
        end,
        level,
        pipelines,
    })
}

/// What the scorer needs to know of a pipeline: the feeds it reads and its
/// key columns, to tell which labels it could catch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Watcher {
    pub name: String,
    pub feeds: Vec<String>,
    pub keys: Vec<String>,
}

/// One label as one pipeline (or all of them) saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub label: String,
    pub detected: bool,
    /// From the label's start to the end of the first window that alerted.
    pub delay_minutes: Option<f64>,
    pub level: Option<Level>,
    /// The label expects a level and the highest alert reached it.
    pub at_level: Option<bool>,
}

/// The scores of one pipeline, or of all (`pipeline` = `*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub pipeline: String,
    /// Labels this pipeline could catch (all labels, overall).
    pub labels: usize,
    pub detected: usize,
    pub missed: usize,
    /// Detected labels that expect a level and reached it.
    pub at_level: usize,
    pub median_delay_minutes: Option<f64>,
    /// Alert episodes (incident ids) in all.
    pub episodes: usize,
    /// Episodes outside every label.
    pub false_alarms: usize,
    pub false_alarms_per_week: f64,
    pub outcomes: Vec<Outcome>,
}

/// Scores per pipeline (those given, in their order) and overall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub weeks: f64,
    pub overall: Score,
    pub pipelines: Vec<Score>,
}

/// An alert episode: a pipeline's incident, with its firing alerts.
struct Episode<'a> {
    pipeline: &'a str,
    firing: Vec<&'a Alert>,
}

/// What one episode did to one label: when it first alerted inside it, and its highest level.
fn sighting(episode: &Episode<'_>, label: &Label) -> Option<(Millis, Level)> {
    let hits: Vec<&&Alert> = episode
        .firing
        .iter()
        .filter(|a| overlaps(a, label) && same_place(a, label))
        .collect();
    let first = hits.iter().map(|a| a.window_end).min()?;
    let level = hits.iter().map(|a| a.level).max()?;
    Some((first, level))
}

/// The alert's window overlaps the label's span (an instant alert counts
/// within it, ends included).
fn overlaps(a: &Alert, label: &Label) -> bool {
    a.window_start <= label.end && a.window_end.max(a.window_start + 1) > label.start
}

/// The alert and the label share a key column and agree on every shared one.
fn same_place(a: &Alert, label: &Label) -> bool {
    let mut shared = 0;
    for (column, cell) in a.key.iter() {
        if let Some(want) = label.key.get(column) {
            if Value::from(cell.clone()) != *want {
                return false;
            }
            shared += 1;
        }
    }
    shared > 0
}

/// Whether `watcher` is one of the pipelines meant to catch `label`.
fn could_catch(watcher: &Watcher, label: &Label) -> bool {
    if !label.pipelines.is_empty() {
        return label.pipelines.contains(&watcher.name);
    }
    label
        .feed
        .as_ref()
        .is_none_or(|f| watcher.feeds.contains(f))
        && label.key.keys().all(|k| watcher.keys.contains(k))
}

/// Scores `alerts` against `labels` over `span` of event time. An episode
/// counts for a label only if its pipeline could catch it (a pipeline not
/// among `watchers` could catch any), and it is a false alarm when it
/// detects no label its pipeline could catch.
pub fn score(alerts: &[Alert], watchers: &[Watcher], labels: &[Label], span: Millis) -> Scores {
    let mut episodes: BTreeMap<(&str, &str), Episode<'_>> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.status == Status::Firing) {
        episodes
            .entry((a.pipeline.as_str(), a.incident_id.as_str()))
            .or_insert_with(|| Episode {
                pipeline: &a.pipeline,
                firing: Vec::new(),
            })
            .firing
            .push(a);
    }
    let episodes: Vec<Episode<'_>> = episodes.into_values().collect();
    let weeks = (span as f64 / (7 * DAY) as f64).max(1.0 / 7.0);
    let catches = |e: &Episode<'_>, l: &Label| {
        watchers
            .iter()
            .find(|w| w.name == e.pipeline)
            .is_none_or(|w| could_catch(w, l))
    };
    let false_alarm = |e: &Episode<'_>| {
        labels
            .iter()
            .all(|l| !catches(e, l) || sighting(e, l).is_none())
    };
    let tally = |name: &str, mine: &[&Episode<'_>], relevant: Vec<&Label>| {
        let outcomes: Vec<Outcome> = relevant
            .iter()
            .map(|l| {
                let catching: Vec<&Episode<'_>> =
                    mine.iter().copied().filter(|e| catches(e, l)).collect();
                outcome(l, &catching)
            })
            .collect();
        let false_alarms = mine.iter().filter(|e| false_alarm(e)).count();
        let mut delays: Vec<f64> = outcomes.iter().filter_map(|o| o.delay_minutes).collect();
        delays.sort_by(f64::total_cmp);
        Score {
            pipeline: name.to_string(),
            labels: outcomes.len(),
            detected: outcomes.iter().filter(|o| o.detected).count(),
            missed: outcomes.iter().filter(|o| !o.detected).count(),
            at_level: outcomes.iter().filter(|o| o.at_level == Some(true)).count(),
            median_delay_minutes: median(&delays),
            episodes: mine.len(),
            false_alarms,
            false_alarms_per_week: false_alarms as f64 / weeks,
            outcomes,
        }
    };
    let pipelines = watchers
        .iter()
        .map(|w| {
            let mine: Vec<&Episode<'_>> =
                episodes.iter().filter(|e| e.pipeline == w.name).collect();
            let relevant = labels.iter().filter(|l| could_catch(w, l)).collect();
            tally(&w.name, &mine, relevant)
        })
        .collect();
    let all: Vec<&Episode<'_>> = episodes.iter().collect();
    Scores {
        weeks,
        overall: tally("*", &all, labels.iter().collect()),
        pipelines,
    }
}

/// How the episodes saw one label: the earliest alert and the highest level.
fn outcome(label: &Label, episodes: &[&Episode<'_>]) -> Outcome {
    let seen: Vec<(Millis, Level)> = episodes.iter().filter_map(|e| sighting(e, label)).collect();
    let first = seen.iter().map(|s| s.0).min();
    let level = seen.iter().map(|s| s.1).max();
    Outcome {
        label: label.id.clone(),
        detected: first.is_some(),
        delay_minutes: first.map(|t| (t - label.start).max(0) as f64 / 60_000.0),
        level,
        at_level: label.level.map(|want| level.is_some_and(|l| l >= want)),
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests;
