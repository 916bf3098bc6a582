//! The routing table: which department owns each of the three tracks of an
//! alert's response, how long it has to acknowledge and to complete, and the
//! chain of departments an overdue task climbs, step by step. The shipped table (`routing/routing.toml`) follows the 责任部门 column
//! of the source document; `yujing check` validates any table with `file:line:col`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

mod route;

use route::{Route, Selectors, fill, fill_key, matches, selectors, specificity};

use super::Track;
use crate::alert::Alert;
use crate::core::key::Key;
use crate::core::level::Level;
use crate::core::time::{DAY, HOUR, Millis, parse_duration};
use crate::error::Diagnostic;
use crate::reference::Tables;

/// The shipped table.
pub const EMBEDDED: &str = include_str!("../../../routing/routing.toml");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Departments {
    legal: Option<String>,
    opinion: Option<String>,
    control: Option<String>,
}

impl Departments {
    fn get(&self, track: Track) -> Option<&String> {
        match track {
            Track::Legal => self.legal.as_ref(),
            Track::Opinion => self.opinion.as_ref(),
            Track::Control => self.control.as_ref(),
        }
    }
}

/// One step of an escalation chain as written: who is told, and how long they
/// have to acknowledge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    to: String,
    wait: Spanned<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationFile {
    #[serde(default)]
    default: Vec<StepFile>,
    #[serde(default)]
    chains: BTreeMap<String, Vec<StepFile>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlinesFile {
    #[serde(default)]
    acknowledge: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    complete: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// One step of an escalation: the department told, and its time to acknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub to: String,
    pub wait: Millis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    open_at: Option<Spanned<String>>,
    #[serde(default)]
    deadlines: DeadlinesFile,
    default: Departments,
    #[serde(default)]
    escalation: EscalationFile,
    #[serde(default)]
    route: Vec<Spanned<Route>>,
}

/// A checked routing table.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    pub file: PathBuf,
    /// The lowest level that opens tasks, unless a pipeline says otherwise.
    pub open_at: Level,
    /// Time to acknowledge, per level.
    acknowledge: BTreeMap<Level, Millis>,
    /// Time to complete (处置时限), per level, from when the task opened.
    complete: BTreeMap<Level, Millis>,
    default: Departments,
    /// Escalation steps for departments without a chain of their own.
    default_chain: Vec<Step>,
    chains: BTreeMap<String, Vec<Step>>,
    routes: Vec<Route>,
    /// The table's text and each route's offset in it, to locate routes
    /// ([`RoutingTable::conditions`], [`RoutingTable::with_tables`]).
    text: std::sync::Arc<str>,
    route_offsets: Vec<usize>,
    /// Reference tables routes and templates look attributes up in.
    tables: Tables,
}

fn level_named(name: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == name)
}

impl RoutingTable {
    /// The shipped table.
    pub fn embedded(feeds: &BTreeSet<String>) -> Result<Self, Vec<Diagnostic>> {
        Self::parse(Path::new("routing/routing.toml"), EMBEDDED, feeds)
    }

    /// Reads a table from a file.
    pub fn load(path: &Path, feeds: &BTreeSet<String>) -> Result<Self, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                col: 0,
                message: e.to_string(),
            }]
        })?;
        Self::parse(path, &text, feeds)
    }

    /// Parses and checks a table: unknown keys, tracks and levels, bad durations,
    /// routes naming a feed not in `feeds`, and routes that can never win.
    pub fn parse(
        file: &Path,
        text: &str,
        feeds: &BTreeSet<String>,
    ) -> Result<Self, Vec<Diagnostic>> {
        let at = |offset: usize, message: String| Diagnostic::at(file, text, offset, message);
        let raw: RoutingFile = toml::from_str(text).map_err(|e| {
            vec![at(
                e.span().map_or(0, |s| s.start),
                format!("routing table: {}", e.message().trim()),
            )]
        })?;
        let mut diags = Vec::new();
        let open_at = match &raw.open_at {
            Some(s) => level_named(s.get_ref()).unwrap_or_else(|| {
                diags.push(at(
                    s.span().start,
                    format!(
                        "unknown level `{}` (blue, yellow, orange, red)",
                        s.get_ref()
                    ),
                ));
                Level::Orange
            }),
            None => Level::Orange,
        };
        let acknowledge = read_deadlines(&raw.deadlines.acknowledge, ACKNOWLEDGE, &at, &mut diags);
        let complete = read_deadlines(&raw.deadlines.complete, COMPLETE, &at, &mut diags);
        let default_chain = read_chain(&raw.escalation.default, &at, &mut diags);
        let chains = raw
            .escalation
            .chains
            .iter()
            .map(|(from, steps)| (from.clone(), read_chain(steps, &at, &mut diags)))
            .collect();
        for track in Track::ALL {
            if raw.default.get(track).is_none() {
                diags.push(at(
                    0,
                    format!("[default] has no `{}` department", track.as_str()),
                ));
            }
        }
        check_routes(&raw, feeds, &at, &mut diags);
        if !diags.is_empty() {
            diags.sort_by_key(|d| (d.line, d.col));
            return Err(diags);
        }
        Ok(RoutingTable {
            file: file.to_path_buf(),
            open_at,
            acknowledge,
            complete,
            default: raw.default,
            default_chain,
            chains,
            route_offsets: raw.route.iter().map(|r| r.span().start).collect(),
            routes: raw.route.into_iter().map(Spanned::into_inner).collect(),
            text: text.into(),
            tables: Tables::new(),
        })
    }

    /// The table with the reference tables its attribute routes and
    /// `{TABLE.COLUMN}` templates read; each names a table with a key and a
    /// column it has, or is reported where it is written.
    pub fn with_tables(mut self, tables: &Tables) -> Result<Self, Vec<Diagnostic>> {
        let text = &self.text;
        // Where a route names `path`: its first mention from the route's start.
        let at = |path: &str, start: usize, message: String| {
            let offset = text[start..].find(path).map_or(start, |i| start + i);
            Diagnostic::at(&self.file, text, offset, message)
        };
        let mut diags = Vec::new();
        for (route, &start) in self.routes.iter().zip(&self.route_offsets) {
            let templates = Track::ALL
                .into_iter()
                .filter_map(|t| route.get(t))
                .flat_map(|d| template_names(d));
            let paths = route
                .attribute
                .keys()
                .map(|k| k.get_ref().clone())
                .chain(templates);
            for path in paths {
                if let Err(m) = check_attribute(&path, tables) {
                    diags.push(at(&path, start, m));
                }
            }
        }
        if diags.is_empty() {
            self.tables = tables.clone();
            Ok(self)
        } else {
            Err(diags)
        }
    }

    /// Each route's conditions (label, value) and where it is written; an
    /// attribute condition stands for the key column its table is looked up by.
    pub fn conditions(&self) -> impl Iterator<Item = (Selectors, Diagnostic)> {
        self.routes
            .iter()
            .map(|r| {
                selectors(r)
                    .into_iter()
                    .map(|(label, value)| {
                        let key = label
                            .split_once('.')
                            .and_then(|(t, _)| self.tables.get(t)?.def.key.clone());
                        (key.unwrap_or(label), value)
                    })
                    .collect()
            })
            .zip(
                self.route_offsets
                    .iter()
                    .map(|&o| Diagnostic::at(&self.file, &self.text, o, String::new())),
            )
    }

    /// How long a task of this level has to be acknowledged.
    pub fn deadline(&self, level: Level) -> Millis {
        self.acknowledge.get(&level).copied().unwrap_or(4 * HOUR)
    }

    /// How long a task of this level has to be done, from when it opened.
    pub fn completion(&self, level: Level) -> Millis {
        self.complete.get(&level).copied().unwrap_or(3 * DAY)
    }

    /// The department for one track of an alert: the most specific matching
    /// route's (of equals, the first written); a template whose reference
    /// value is missing gives way to the next route, then to [default].
    pub fn department(&self, alert: &Alert, track: Track) -> String {
        let mut matching: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| r.get(track).is_some() && matches(r, alert, &self.tables))
            .collect();
        // Stable: of equally specific routes the first written stays first.
        matching.sort_by_key(|r| std::cmp::Reverse(specificity(r)));
        let default = self.default.get(track).cloned().unwrap_or_default();
        matching
            .iter()
            .find_map(|r| fill(r.get(track)?, alert, &self.tables))
            .or_else(|| fill(&default, alert, &self.tables))
            .unwrap_or_else(|| fill_key(&default, &alert.key))
    }

    /// Every department the table names in full: the bounded set that metric
    /// labels and reassignments may use. A name made from a template
    /// (`{street}街道办`) is filled from data, so it is not among them.
    pub fn departments(&self) -> BTreeSet<String> {
        let tracks = [Track::Legal, Track::Opinion, Track::Control];
        let named = tracks
            .iter()
            .filter_map(|t| self.default.get(*t))
            .chain(
                self.routes
                    .iter()
                    .flat_map(|r| tracks.iter().filter_map(|t| r.get(*t))),
            )
            .chain(self.default_chain.iter().map(|s| &s.to))
            .chain(self.chains.iter().flat_map(|(from, steps)| {
                std::iter::once(from).chain(steps.iter().map(|s| &s.to))
            }));
        named.filter(|d| !d.contains('{')).cloned().collect()
    }

    /// The escalation step `n` (from 0) of a task first owned by `owner`, filled
    /// from its key; `None` past the end of the chain.
    pub fn step(&self, owner: &str, n: usize, key: &Key) -> Option<Step> {
        let chain = self.chains.get(owner).unwrap_or(&self.default_chain);
        chain.get(n).map(|s| Step {
            to: fill_key(&s.to, key),
            wait: s.wait,
        })
    }
}

/// The `{TABLE.COLUMN}` placeholders of a department template.
fn template_names(department: &str) -> Vec<String> {
    department
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_string())
        .filter(|name| name.contains('.'))
        .collect()
}

/// `TABLE.COLUMN` names a reference table with a key, and a column of it.
fn check_attribute(path: &str, tables: &Tables) -> Result<(), String> {
    let Some((table, column)) = path.split_once('.') else {
        return Err(format!("`{path}`: an attribute is TABLE.COLUMN"));
    };
    let Some(t) = tables.get(table) else {
        return Err(format!(
            "`{path}`: no reference table `{table}` (tables: {})",
            crate::reference::names(tables)
        ));
    };
    if t.def.key.is_none() {
        return Err(format!(
            "`{path}`: table `{table}` has no `key`, so an alert's row in it cannot be found"
        ));
    }
    if !t.def.columns.iter().any(|c| c.name == column) {
        return Err(format!(
            "`{path}`: table `{table}` has no column `{column}` (it has {})",
            t.def
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// The shipped defaults: time to acknowledge and to complete, by level.
const ACKNOWLEDGE: [(Level, Millis); 4] = [
    (Level::Red, HOUR),
    (Level::Orange, 4 * HOUR),
    (Level::Yellow, 24 * HOUR),
    (Level::Blue, 72 * HOUR),
];
const COMPLETE: [(Level, Millis); 4] = [
    (Level::Red, 24 * HOUR),
    (Level::Orange, 3 * DAY),
    (Level::Yellow, 7 * DAY),
    (Level::Blue, 15 * DAY),
];

/// A deadline per level: `defaults`, overridden by the table's.
fn read_deadlines(
    table: &BTreeMap<Spanned<String>, Spanned<String>>,
    defaults: [(Level, Millis); 4],
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<Level, Millis> {
    let mut deadlines: BTreeMap<Level, Millis> = defaults.into();
    for (level, d) in table {
        let Some(l) = level_named(level.get_ref()) else {
            diags.push(at(
                level.span().start,
                format!(
                    "unknown level `{}` (blue, yellow, orange, red)",
                    level.get_ref()
                ),
            ));
            continue;
        };
        if let Some(v) = positive_duration(d, "deadline", at, diags) {
            deadlines.insert(l, v);
        }
    }
    deadlines
}

/// A duration longer than 0, or a located diagnostic.
fn positive_duration(
    d: &Spanned<String>,
    what: &str,
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) -> Option<Millis> {
    match parse_duration(d.get_ref()) {
        Ok(v) if v > 0 => Some(v),
        Ok(_) => {
            diags.push(at(
                d.span().start,
                format!("a {what} must be longer than 0"),
            ));
            None
        }
        Err(m) => {
            diags.push(at(d.span().start, format!("bad {what}: {m}")));
            None
        }
    }
}

fn read_chain(
    steps: &[StepFile],
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Step> {
    steps
        .iter()
        .filter_map(|s| {
            positive_duration(&s.wait, "wait", at, diags).map(|wait| Step {
                to: s.to.clone(),
                wait,
            })
        })
        .collect()
}

/// Every route names a known feed, some department and some condition, and is
/// reachable.
fn check_routes(
    raw: &RoutingFile,
    feeds: &BTreeSet<String>,
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) {
    // A route that names the same selectors as an earlier one never wins a
    // track the earlier one also names.
    let mut seen: Vec<(Selectors, BTreeSet<Track>)> = Vec::new();
    for route in &raw.route {
        let r = route.get_ref();
        let start = route.span().start;
        if let Some(f) = &r.feed
            && !feeds.contains(f.get_ref())
        {
            diags.push(at(
                f.span().start,
                format!(
                    "unknown feed `{}` (known: {})",
                    f.get_ref(),
                    feeds.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let tracks: BTreeSet<Track> = Track::ALL
            .into_iter()
            .filter(|t| r.get(*t).is_some())
            .collect();
        if tracks.is_empty() {
            diags.push(at(
                start,
                "this route names no department (legal, opinion or control)".into(),
            ));
            continue;
        }
        let selectors = selectors(r);
        if selectors.is_empty() {
            diags.push(at(
                start,
                "this route matches everything: put its departments in [default]".into(),
            ));
        }
        let shadowed: BTreeSet<Track> = seen
            .iter()
            .filter(|(s, _)| *s == selectors)
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        if tracks.is_subset(&shadowed) {
            diags.push(at(
                start,
                "unreachable route: an earlier route with the same conditions already routes its tracks".into(),
            ));
        }
        seen.push((selectors, tracks));
    }
}

#[cfg(test)]
mod tests;
