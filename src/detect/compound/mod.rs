//! Compound risk: a pipeline that reads other pipelines' alerts instead of events.
//! When, for one key (e.g. a district), alerts of at least `min_pipelines`
//! different pipelines are firing at once — an alert covers its key from its first
//! anomalous window until it resolves, so their anomalous spans overlap — it raises
//! a combined alert one level above the highest of them (red stays red), through
//! the same lifecycle as any alert: it escalates with its inputs and resolves when
//! fewer of them remain. `within` bounds how far apart their first windows may be.
//!
//! A compound pipeline is a file in the pipelines folder with a `[compound]`
//! section and no SQL:
//!
//! ```toml
//! name = "district_compound"
//! description = "…"
//! [compound]
//! inputs = ["petition_street_day", "police_grid_hour"]
//! key = ["district"]
//! min_pipelines = 2
//! within = "2d"      # first windows at most this far apart (default: any)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::alert::{Alert, Finding, Language, Lifecycle, Measure, Status, Timing};
use crate::core::key::Key;
use crate::core::level::Level;
use crate::core::stage::{Named, Stateful};
use crate::core::time::{Millis, parse_duration};
use crate::error::Diagnostic;
use crate::query::sample::SAMPLE_SIZE;

/// A compound pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompoundFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The lowest level of its alerts that opens response tasks, if not the routing table's.
    pub task_level: Option<Level>,
    pub compound: CompoundConfig,
}

fn yes() -> bool {
    true
}

fn two() -> usize {
    2
}

/// `[compound]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompoundConfig {
    /// Pipelines whose alerts are read.
    pub inputs: Vec<Spanned<String>>,
    /// Alert key labels the inputs share, e.g. `["district"]`.
    pub key: Vec<String>,
    /// Distinct input pipelines that must be firing together.
    #[serde(default = "two")]
    pub min_pipelines: usize,
    /// How far apart the inputs' first anomalous windows may start (default: any).
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    /// Input alerts below this level are not counted.
    #[serde(default)]
    pub min_level: Option<Level>,
    #[serde(default)]
    pub language: Language,
}

/// A compound pipeline as read, with where it came from.
#[derive(Debug, Clone)]
pub struct CompoundDef {
    pub file: PathBuf,
    pub file_text: String,
    pub def: CompoundFile,
    pub within: Option<Millis>,
}

/// Whether a pipeline file's text is a compound pipeline (has a `[compound]` table).
pub fn is_compound(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("compound"))
}

/// Reads a compound pipeline file, reporting mistakes with their position.
pub fn parse(file: &Path, text: &str) -> Result<CompoundDef, Vec<Diagnostic>> {
    let at = |offset: usize, message: String| Diagnostic::at(file, text, offset, message);
    let def: CompoundFile = toml::from_str(text).map_err(|e| {
        vec![at(
            e.span().map_or(0, |s| s.start),
            format!("in a compound pipeline: {}", e.message().trim()),
        )]
    })?;
    let mut diags = Vec::new();
    let within = match &def.compound.within {
        Some(w) => match parse_duration(w.get_ref()) {
            Ok(v) => Some(v),
            Err(m) => {
                diags.push(at(w.span().start, format!("bad `within`: {m}")));
                None
            }
        },
        None => None,
    };
    if def.compound.min_pipelines < 2 {
        diags.push(at(0, "`min_pipelines` must be at least 2".into()));
    }
    if def.compound.key.is_empty() {
        diags.push(at(
            0,
            "`key` names at least one label the inputs share".into(),
        ));
    }
    if diags.is_empty() {
        Ok(CompoundDef {
            file: file.to_path_buf(),
            file_text: text.to_string(),
            def,
            within,
        })
    } else {
        Err(diags)
    }
}

impl CompoundDef {
    /// Checks the inputs against the query pipelines: each must exist and alert
    /// with every label of the compound key. `known` maps a pipeline to its alert
    /// key columns.
    pub fn check(&self, known: &BTreeMap<String, Vec<String>>) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        for input in &self.def.compound.inputs {
            let mut diag = |message: String| {
                diags.push(Diagnostic::at(
                    &self.file,
                    &self.file_text,
                    input.span().start,
                    message,
                ))
            };
            match known.get(input.get_ref()) {
                None => diag(format!(
                    "no pipeline `{}` to read alerts from (known: {})",
                    input.get_ref(),
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
                Some(keys) => {
                    for k in &self.def.compound.key {
                        if !keys.contains(k) {
                            diag(format!(
                                "pipeline `{}` alerts per [{}], without `{k}`",
                                input.get_ref(),
                                keys.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        diags
    }
}

/// An input alert's episode: anomalous from its first window until resolved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Span {
    pipeline: String,
    level: Level,
    start: Millis,
    /// Start of the window it resolved in; `None` while firing.
    resolved_at: Option<Millis>,
    feeds: Vec<String>,
    event_ids: Vec<String>,
}

impl Span {
    fn open_at(&self, t: Millis) -> bool {
        self.start <= t && self.resolved_at.is_none_or(|r| r > t)
    }
}

/// A compound pipeline's state, for checkpoints.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CompoundState {
    spans: BTreeMap<String, BTreeMap<String, Span>>,
    raised: BTreeMap<String, BTreeSet<Millis>>,
    lifecycle: Lifecycle,
}

/// How long resolved input episodes are kept to compare with alerts that arrive
/// later but began earlier (pipelines close windows at different paces).
const RETAIN: Millis = 7 * crate::core::time::DAY;

/// The running compound pipeline. Decisions rest on the episodes' event-time spans,
/// not on the order in which pipelines deliver alerts, so they do not depend on how
/// input was chunked.
pub struct CompoundDetector {
    def: CompoundDef,
    inputs: BTreeSet<String>,
    /// Per compound key, input episodes by (pipeline, full key, first window).
    spans: BTreeMap<String, BTreeMap<String, Span>>,
    /// Per compound key, the instants whose co-firing has been raised already.
    raised: BTreeMap<String, BTreeSet<Millis>>,
    lifecycle: Lifecycle,
}

impl CompoundDetector {
    pub fn new(def: CompoundDef) -> Self {
        CompoundDetector {
            inputs: def
                .def
                .compound
                .inputs
                .iter()
                .map(|i| i.get_ref().clone())
                .collect(),
            def,
            spans: BTreeMap::new(),
            raised: BTreeMap::new(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// Takes one alert of any pipeline and returns the compound alerts it causes.
    pub fn on_alert(&mut self, a: &Alert) -> Vec<Alert> {
        if !self.inputs.contains(&a.pipeline) {
            return Vec::new();
        }
        let c = &self.def.def.compound;
        let labels: Key = c
            .key
            .iter()
            .filter_map(|k| a.key.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if labels.len() < c.key.len() || c.min_level.is_some_and(|m| a.level < m) {
            return Vec::new();
        }
        let key = labels.id();
        let episode = format!(
            "{}|{}|{}",
            a.pipeline,
            serde_json::to_string(&a.key).unwrap_or_default(),
            a.incident_id
        );
        let newest = self.track(&key, episode, a);
        let findings = self.judge(&key, &labels, a, newest);
        if spans_empty(&self.spans, &key) {
            self.spans.remove(&key);
        }
        let feeds: BTreeSet<String> = self
            .spans
            .get(&key)
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|s| s.feeds.iter().cloned())
            .collect();
        let feeds: Vec<String> = feeds.into_iter().collect();
        let timing = Timing {
            language: self.def.def.compound.language,
            ..Timing::default()
        };
        self.lifecycle
            .step(&self.def.def.name, &feeds, timing, &findings)
    }

    /// Records the alert's episode among the key's spans, forgetting those that
    /// ended long before; returns the newest span's start.
    fn track(&mut self, key: &str, episode: String, a: &Alert) -> Millis {
        let t = a.window_start;
        let spans = self.spans.entry(key.to_string()).or_default();
        match a.status {
            Status::Firing => {
                let s = spans.entry(episode).or_insert_with(|| Span {
                    pipeline: a.pipeline.clone(),
                    level: a.level,
                    start: t,
                    resolved_at: None,
                    feeds: a.feeds.clone(),
                    event_ids: a.event_ids.clone(),
                });
                s.level = s.level.max(a.level);
                s.resolved_at = None;
            }
            Status::Resolved => {
                if let Some(s) = spans.get_mut(&episode) {
                    s.resolved_at = Some(t);
                }
            }
        }
        // Forget episodes that ended long before anything still to come.
        let newest = spans.values().map(|s| s.start).max().unwrap_or(t);
        spans.retain(|_, s| s.resolved_at.is_none_or(|r| r + RETAIN >= newest));
        newest
    }

    /// Raises the key's best group of co-firing pipelines one level up, or
    /// resolves what no longer co-fires.
    fn judge(&mut self, key: &str, labels: &Key, a: &Alert, newest: Millis) -> Vec<Finding> {
        let c = &self.def.def.compound;
        let t = a.window_start;
        let Some(spans) = self.spans.get(key) else {
            return Vec::new();
        };
        let group = best_group(spans, self.def.within, c.min_pipelines);
        let firing = self.lifecycle.keys().any(|k| k == key);
        let raised = self.raised.entry(key.to_string()).or_default();
        raised.retain(|&at| at + RETAIN >= newest);
        let mut findings = Vec::new();
        match group {
            Some(g) => {
                let open: BTreeSet<&str> = g
                    .members
                    .iter()
                    .filter(|s| s.resolved_at.is_none())
                    .map(|s| s.pipeline.as_str())
                    .collect();
                let live = open.len() >= c.min_pipelines;
                if live || !raised.contains(&g.at) {
                    raised.insert(g.at);
                    findings.push(self.finding(key, labels, &g, Some(one_up(g.level))));
                    if !live {
                        // The co-firing is over already (its inputs resolved before the
                        // last of them arrived): raise it and resolve it at its end.
                        let end = g.end(c.min_pipelines);
                        findings.push(self.finding(key, labels, &g.at_end(end), None));
                    }
                } else if firing {
                    let end = g.end(c.min_pipelines);
                    findings.push(self.finding(key, labels, &g.at_end(end), None));
                }
            }
            None if firing => {
                let g = Group {
                    at: t,
                    level: a.level,
                    members: Vec::new(),
                };
                findings.push(self.finding(key, labels, &g, None));
            }
            None => {}
        }
        findings
    }

    fn finding(&self, key: &str, labels: &Key, g: &Group, level: Option<Level>) -> Finding {
        let pipelines: BTreeSet<&str> = g.members.iter().map(|s| s.pipeline.as_str()).collect();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for s in &g.members {
            ids.extend(s.event_ids.iter().cloned());
        }
        Finding {
            key: key.to_string(),
            labels: labels.clone(),
            start: g.at,
            end: g.at,
            measure: Measure {
                value: pipelines.len() as f64,
                expected: None,
                threshold: Some(self.def.def.compound.min_pipelines as f64),
                score: None,
                p_value: None,
                method: if pipelines.is_empty() {
                    "compound".into()
                } else {
                    format!(
                        "compound: {}",
                        pipelines.into_iter().collect::<Vec<_>>().join(" + ")
                    )
                },
                explanation: None,
            },
            level,
            event_ids: if level.is_some() {
                ids.into_iter().take(SAMPLE_SIZE).collect()
            } else {
                Vec::new()
            },
        }
    }
}

fn spans_empty(spans: &BTreeMap<String, BTreeMap<String, Span>>, key: &str) -> bool {
    spans.get(key).is_none_or(BTreeMap::is_empty)
}

/// Input episodes open at one instant `at` (the start of the latest of them).
#[derive(Debug, Clone)]
struct Group {
    at: Millis,
    level: Level,
    members: Vec<Span>,
}

impl Group {
    /// When fewer than `min` pipelines remain open: the (k − min + 1)-th earliest
    /// resolution of the k members' pipelines.
    fn end(&self, min: usize) -> Millis {
        let mut ends: BTreeMap<&str, Millis> = BTreeMap::new();
        for s in &self.members {
            let r = s.resolved_at.unwrap_or(Millis::MAX);
            let e = ends.entry(s.pipeline.as_str()).or_insert(r);
            *e = (*e).max(r);
        }
        let mut ends: Vec<Millis> = ends.into_values().collect();
        ends.sort_unstable();
        let k = ends.len();
        ends.get(k.saturating_sub(min)).copied().unwrap_or(self.at)
    }

    fn at_end(&self, end: Millis) -> Group {
        Group {
            at: end,
            ..self.clone()
        }
    }
}

/// One level up; red stays red.
pub fn one_up(level: Level) -> Level {
    match level {
        Level::Blue => Level::Yellow,
        Level::Yellow => Level::Orange,
        Level::Orange | Level::Red => Level::Red,
    }
}

/// The instants at which input episodes of at least `min` pipelines were open at
/// once (each checked at an episode's start, where co-firing can begin), their
/// starts at most `within` apart; of several, the one with the most pipelines,
/// then the highest level, then the latest.
fn best_group(spans: &BTreeMap<String, Span>, within: Option<Millis>, min: usize) -> Option<Group> {
    let mut best: Option<(usize, Group)> = None;
    for anchor in spans.values() {
        let at = anchor.start;
        let members: Vec<Span> = spans
            .values()
            .filter(|s| s.open_at(at) && within.is_none_or(|w| at - s.start <= w))
            .cloned()
            .collect();
        let pipelines: BTreeSet<&str> = members.iter().map(|s| s.pipeline.as_str()).collect();
        if pipelines.len() < min {
            continue;
        }
        let level = members.iter().map(|s| s.level).max().unwrap_or(Level::Blue);
        let n = pipelines.len();
        if best
            .as_ref()
            .is_none_or(|(bn, b)| (n, level, at) > (*bn, b.level, b.at))
        {
            best = Some((n, Group { at, level, members }));
        }
    }
    best.map(|b| b.1)
}

impl CompoundDetector {
    /// The text of its file: a compound whose text is unchanged keeps its state
    /// through a redeploy.
    pub fn file_text(&self) -> &str {
        &self.def.file_text
    }
}

impl Named for CompoundDetector {
    fn name(&self) -> &str {
        &self.def.def.name
    }
}

impl Stateful for CompoundDetector {
    type State = CompoundState;

    /// What it remembers, for checkpoints.
    fn state(&self) -> CompoundState {
        CompoundState {
            spans: self.spans.clone(),
            raised: self.raised.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    fn restore(&mut self, s: CompoundState) {
        self.spans = s.spans;
        self.raised = s.raised;
        self.lifecycle = s.lifecycle;
    }
}

#[cfg(test)]
mod tests;
