//! The routing table: which department owns each of the three tracks of an
//! alert's response, how long it has to acknowledge and to complete, and the
//! chain of departments an overdue task climbs, step by step. The shipped table (`routing/routing.toml`) follows the 责任部门 column
//! of the source document; `yujing check` validates any table with `file:line:col`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::Track;
use crate::alert::Alert;
use crate::core::key::{Cell, Key};
use crate::core::level::Level;
use crate::core::time::{DAY, HOUR, Millis, parse_duration};
use crate::error::Diagnostic;

/// The shipped table.
pub const EMBEDDED: &str = include_str!("../../routing/routing.toml");

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    feed: Option<Spanned<String>>,
    pipeline: Option<Spanned<String>>,
    category: Option<String>,
    kind: Option<String>,
    district: Option<String>,
    street: Option<String>,
    legal: Option<String>,
    opinion: Option<String>,
    control: Option<String>,
}

impl Route {
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
    /// Where each route starts in the file (for [`RoutingTable::conditions`]).
    route_at: Vec<Diagnostic>,
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
            route_at: raw
                .route
                .iter()
                .map(|r| at(r.span().start, String::new()))
                .collect(),
            routes: raw.route.into_iter().map(Spanned::into_inner).collect(),
        })
    }

    /// Each route's conditions (label, value) and where it is written.
    pub fn conditions(&self) -> impl Iterator<Item = (Vec<(&'static str, String)>, &Diagnostic)> {
        self.routes.iter().map(selectors).zip(&self.route_at)
    }

    /// How long a task of this level has to be acknowledged.
    pub fn deadline(&self, level: Level) -> Millis {
        self.acknowledge.get(&level).copied().unwrap_or(4 * HOUR)
    }

    /// How long a task of this level has to be done, from when it opened.
    pub fn completion(&self, level: Level) -> Millis {
        self.complete.get(&level).copied().unwrap_or(3 * DAY)
    }

    /// The department for one track of an alert.
    pub fn department(&self, alert: &Alert, track: Track) -> String {
        let best = self
            .routes
            .iter()
            .filter(|r| r.get(track).is_some() && matches(r, alert))
            .fold(None::<&Route>, |best, r| match best {
                Some(b) if specificity(b) >= specificity(r) => Some(b),
                _ => Some(r),
            });
        let template = best
            .and_then(|r| r.get(track))
            .or(self.default.get(track))
            .cloned()
            .unwrap_or_default();
        fill(&template, &alert.key)
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
            to: fill(&s.to, key),
            wait: s.wait,
        })
    }
}

/// A route's conditions, as (label, value).
type Selectors = Vec<(&'static str, String)>;

fn selectors(r: &Route) -> Selectors {
    [
        ("feed", r.feed.as_ref().map(|s| s.get_ref().clone())),
        ("pipeline", r.pipeline.as_ref().map(|s| s.get_ref().clone())),
        ("category", r.category.clone()),
        ("kind", r.kind.clone()),
        ("district", r.district.clone()),
        ("street", r.street.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// How specific a route is: one per condition, and a pipeline counts double, as
/// it is narrower than the feeds it reads.
fn specificity(r: &Route) -> usize {
    selectors(r).len() + r.pipeline.is_some() as usize
}

fn matches(r: &Route, alert: &Alert) -> bool {
    let label = |name: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| alert.key.get(name).and_then(Cell::as_str) == Some(w.as_str()))
    };
    r.feed
        .as_ref()
        .is_none_or(|f| alert.feeds.iter().any(|x| x == f.get_ref()))
        && r.pipeline
            .as_ref()
            .is_none_or(|p| alert.pipeline == *p.get_ref())
        && label("category", &r.category)
        && label("kind", &r.kind)
        && label("district", &r.district)
        && label("street", &r.street)
}

/// Fills `{street}` and `{district}` from the alert's key.
fn fill(template: &str, key: &Key) -> String {
    let value = |name: &str, fallback: &str| {
        key.get(name)
            .and_then(Cell::as_str)
            .unwrap_or(fallback)
            .to_string()
    };
    template
        .replace("{street}", &value("street", "属地街道（镇）"))
        .replace("{district}", &value("district", "属地区"))
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
mod tests {
    use super::*;
    use crate::alert::{Measure, Status};

    /// The feeds of the shipped schemas.
    fn feeds() -> BTreeSet<String> {
        let catalog = crate::schema::Catalog::embedded().expect("schemas");
        catalog.feeds.keys().cloned().collect()
    }

    fn alert(pipeline: &str, feed: &str, labels: &[(&str, &str)]) -> Alert {
        Alert {
            alert_id: String::new(),
            incident_id: String::new(),
            status: Status::Firing,
            level: Level::Orange,
            pipeline: pipeline.into(),
            feeds: vec![feed.into()],
            key: labels
                .iter()
                .map(|(k, v)| (k.to_string(), Cell::Text(v.to_string())))
                .collect(),
            window_start: 0,
            window_end: 0,
            measure: Measure {
                value: 0.0,
                expected: None,
                threshold: None,
                score: None,
                p_value: None,
                method: String::new(),
                explanation: None,
            },
            summary: String::new(),
            event_ids: vec![],
        }
    }

    #[test]
    fn the_most_specific_route_wins_per_track() {
        let t = RoutingTable::embedded(&feeds()).unwrap();
        let police = alert(
            "police_grid_hour",
            "police_incident",
            &[("district", "西湖区"), ("street", "北山街道")],
        );
        assert_eq!(t.department(&police, Track::Legal), "西湖公安分局");
        assert_eq!(
            t.department(&police, Track::Opinion),
            "区委宣传部（网信办）"
        );
        assert_eq!(
            t.department(&police, Track::Control),
            "北山街道、西湖公安分局"
        );
        let land = alert(
            "petition_collective",
            "petition",
            &[("district", "西湖区"), ("category", "land_acquisition")],
        );
        assert_eq!(t.department(&land, Track::Legal), "区委信访局、区征迁办");
        assert_eq!(
            t.department(&land, Track::Control),
            "属地街道（镇）、西湖公安分局"
        );
        let key = &police.key;
        let first = t.step("西湖公安分局", 0, key).expect("a first step");
        assert_eq!(first.to, "区委政法委");
        let second = t.step("西湖公安分局", 1, key).expect("a second step");
        assert_ne!(second.to, first.to, "the chain climbs");
        assert_eq!(t.step("西湖公安分局", 9, key), None, "the chain ends");
        assert_eq!(t.deadline(Level::Red), HOUR);
        assert!(t.completion(Level::Red) > t.deadline(Level::Red));
        // A pipeline route beats a feed route.
        let compound = alert(
            "district_compound_risk",
            "police_incident",
            &[("district", "西湖区")],
        );
        assert_eq!(t.department(&compound, Track::Legal), "区委政法委");
    }

    #[test]
    fn mistakes_are_located() {
        let text = "open_at = \"purple\"\n[deadlines.acknowledge]\nred = \"1h\"\nmauve = \"2h\"\n[default]\nlegal = \"a\"\nopinion = \"b\"\ncontrol = \"c\"\n[[route]]\nfeed = \"weather\"\nlegal = \"x\"\n[[route]]\nfeed = \"petition\"\nlegal = \"y\"\n[[route]]\nfeed = \"petition\"\nlegal = \"z\"\n";
        let err = RoutingTable::parse(Path::new("r.toml"), text, &feeds()).unwrap_err();
        let shown: Vec<String> = err.iter().map(|d| d.to_string()).collect();
        assert!(
            shown[0].starts_with("r.toml:1:11: unknown level `purple`"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("r.toml:4:1: unknown level `mauve`"),
            "{shown:?}"
        );
        assert!(
            shown[2].starts_with("r.toml:10:8: unknown feed `weather`"),
            "{shown:?}"
        );
        assert!(
            shown[3].starts_with("r.toml:15:1: unreachable route"),
            "{shown:?}"
        );
        assert_eq!(shown.len(), 4, "{shown:?}");
        let unknown_track = "[default]\nlegal = \"a\"\nopinion = \"b\"\ncontrol = \"c\"\n[[route]]\nfeed = \"petition\"\npropaganda = \"x\"\n";
        let err = RoutingTable::parse(Path::new("r.toml"), unknown_track, &feeds()).unwrap_err();
        assert!(err[0].to_string().starts_with("r.toml:"), "{}", err[0]);
        assert!(err[0].to_string().contains("propaganda"), "{}", err[0]);
    }
}
