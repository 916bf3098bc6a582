//! Pipeline files (`pipelines/*.toml`): what an analyst writes — a name, a
//! description, the SQL with its window, and how late events may be. Reading a
//! file reports every mistake it finds as `file:line:col: message`, not just the
//! first, so `yujing check` can list them all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use toml::Spanned;

use crate::core::time::Millis;
use crate::detect::compound::{self, CompoundDef};
use crate::detect::config::Sections;
use crate::detect::rule::CompiledRule;
use crate::error::{Diagnostic, Diagnostics};
use crate::query::{CompiledQuery, compile};
use crate::schema::Catalog;
use crate::task::routing::RoutingTable;

mod parse;

use parse::string_content_start;
pub use parse::{parse_pipeline, parse_pipeline_partial};

/// Default bound on the keys one window bin of a pipeline may hold: far above a
/// district's grids × topics, far below what exhausts memory.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A pipeline as written.
#[derive(Debug, Clone)]
pub struct PipelineDef {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    pub sql: String,
    pub lateness: Millis,
    /// UTC offset that window starts align to (e.g. `+08:00` for days starting at local midnight).
    pub utc_offset: Millis,
    pub enabled: bool,
    /// `[detect]` and `[[rule]]`.
    pub sections: Sections,
    /// The lowest alert level that opens response tasks, if not the routing table's.
    pub task_level: Option<crate::core::level::Level>,
    /// Most distinct keys (GROUP BY values) in one window bin; a record that would
    /// open one more is a dead letter `too_many_keys`.
    pub max_keys: usize,
    /// Byte offset of the SQL text in the file and whether it can be mapped char for char.
    sql_offset: usize,
    text: Arc<str>,
}

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub def: PipelineDef,
    pub query: Arc<CompiledQuery>,
    pub rules: Vec<CompiledRule>,
    pub sensitive: Option<crate::detect::sensitive::Sensitive>,
}

impl PipelineDef {
    /// What a pipeline's state depends on — its SQL (windows included), lateness,
    /// alignment, `[detect]` and rules — hashed: a checkpoint restores a pipeline's
    /// state only when this is unchanged.
    pub fn fingerprint(&self) -> String {
        let text = format!(
            "{}\0{}\0{}\0{:?}",
            self.sql, self.lateness, self.utc_offset, self.sections
        );
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }

    fn diag_at(&self, offset: usize, message: String) -> Diagnostic {
        Diagnostic::at(&self.file, &self.text, offset, message)
    }

    /// A diagnostic for a 1-based line and column of the SQL text.
    pub fn sql_diag(&self, sql_line: usize, sql_col: usize, message: String) -> Diagnostic {
        let mut offset = self.sql_offset;
        let mut rest = &self.text[self.sql_offset..];
        for _ in 1..sql_line.max(1) {
            match rest.find('\n') {
                Some(i) => {
                    offset += i + 1;
                    rest = &rest[i + 1..];
                }
                None => break,
            }
        }
        let col_bytes: usize = rest
            .chars()
            .take(sql_col.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        self.diag_at(offset + col_bytes, format!("in sql: {message}"))
    }

    /// Plans the SQL; mistakes are located in the pipeline file.
    pub async fn compile(&self, catalog: &Catalog) -> Result<Pipeline, Vec<Diagnostic>> {
        let query = compile(&self.sql, catalog).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| self.sql_diag(e.line, e.col, e.message))
                .collect::<Vec<_>>()
        })?;
        let rules = self.check_sections(&query.output_schema, query.window.slide())?;
        let detects = self.sections.detect.is_some() || !self.sections.rule.is_empty();
        if detects && matches!(query.window, crate::query::WindowSpec::Session { .. }) {
            return Err(vec![self.diag_at(
                self.sql_offset,
                "detection compares windows of a regular series: use tumble or hop".into(),
            )]);
        }
        if self.sections.detect.is_some() && query.window.is_irregular() {
            return Err(vec![self.diag_at(
                self.sql_offset,
                format!(
                    "[detect] compares windows of a regular series, and {} windows are not one (months differ in length, running totals grow): judge them with [[rule]]",
                    query.window
                ),
            )]);
        }
        let sensitive = match &self.sections.sensitive {
            Some(c) => Some(
                crate::detect::sensitive::Sensitive::new(c, &catalog.tables)
                    .map_err(|m| vec![self.diag_at(c.calendar.span().start, m)])?,
            ),
            None => None,
        };
        Ok(Pipeline {
            def: self.clone(),
            query: Arc::new(query),
            rules,
            sensitive,
        })
    }

    /// Checks `[detect]` and `[[rule]]` against the query's result columns and plans the rules.
    fn check_sections(
        &self,
        output: &SchemaRef,
        slide: crate::core::time::Millis,
    ) -> Result<Vec<CompiledRule>, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let column =
            |name: &Spanned<String>, numeric: bool, diags: &mut Vec<Diagnostic>| match output
                .field_with_name(name.get_ref())
            {
                Ok(f) if numeric && !f.data_type().is_numeric() => diags.push(self.diag_at(
                    name.span().start,
                    format!("`{}` is {}, not a number", name.get_ref(), f.data_type()),
                )),
                Ok(_) => {}
                Err(_) => diags.push(self.diag_at(
                    name.span().start,
                    format!(
                            "the query has no column `{}` (it has {})",
                            name.get_ref(),
                            output
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                )),
            };
        if let Some(d) = &self.sections.detect {
            column(&d.value, true, &mut diags);
            for k in d.key.iter().flatten() {
                column(k, false, &mut diags);
            }
            if let Some(t) = &d.trials {
                column(t, true, &mut diags);
            }
            for p in d.missing_parameters() {
                diags.push(self.diag_at(d.method.span().start, format!("this method needs `{p}`")));
            }
            for b in d.bad_settings() {
                diags.push(self.diag_at(d.method.span().start, b));
            }
            if *d.method.get_ref() == crate::detect::config::Method::Farrington
                && let Err(e) = d.farrington(slide)
            {
                let at = d.period.as_ref().map_or(d.method.span(), |p| p.span());
                diags.push(self.diag_at(at.start, format!("farrington: {e}")));
            }
            if !(d.alpha > 0.0 && d.alpha < 1.0) {
                diags.push(self.diag_at(
                    d.method.span().start,
                    format!("alpha must be between 0 and 1, not {}", d.alpha),
                ));
            }
        }
        let rules = self.compile_rules(output, &mut diags);
        if diags.is_empty() {
            Ok(rules)
        } else {
            Err(diags)
        }
    }

    /// Plans the `[[rule]]` conditions over the query's result columns.
    fn compile_rules(&self, output: &SchemaRef, diags: &mut Vec<Diagnostic>) -> Vec<CompiledRule> {
        let mut rules = Vec::new();
        for r in &self.sections.rule {
            match crate::detect::rule::compile_condition(r.when.get_ref(), output) {
                Ok(expr) => rules.push(CompiledRule {
                    name: r.name.clone().unwrap_or_else(|| r.when.get_ref().clone()),
                    level: r.level,
                    expr,
                }),
                Err(e) => {
                    let at = crate::query::locate(&e, r.when.get_ref());
                    let start = string_content_start(&self.text, r.when.span().start);
                    let col: usize = r
                        .when
                        .get_ref()
                        .chars()
                        .take(at.col.saturating_sub(1))
                        .map(char::len_utf8)
                        .sum();
                    diags.push(self.diag_at(start + col, format!("in rule: {}", at.message)));
                }
            }
        }
        rules
    }
}

/// Reads every `*.toml` of a directory as a pipeline (sorted by file name).
pub fn load_dir(dir: &Path) -> Result<Vec<PipelineDef>, Diagnostics> {
    match load_dir_partial(dir) {
        (defs, diags) if diags.is_empty() => Ok(defs),
        (_, diags) => Err(Diagnostics(diags)),
    }
}

/// Every pipeline of a directory as far as it parses, and every mistake found.
/// Compound pipelines (read by [`compound`]) are left out.
pub fn load_dir_partial(dir: &Path) -> (Vec<PipelineDef>, Vec<Diagnostic>) {
    let files = match crate::schema::toml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            let d = Diagnostic {
                file: dir.to_path_buf(),
                line: 0,
                col: 0,
                message: e.to_string(),
            };
            return (Vec::new(), vec![d]);
        }
    };
    let mut defs = Vec::new();
    let mut diags = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) if compound::is_compound(&text) => {}
            Ok(text) => {
                let (def, found) = parse_pipeline_partial(&path, &text);
                defs.extend(def);
                diags.extend(found);
            }
            Err(e) => diags.push(Diagnostic {
                file: path.clone(),
                line: 0,
                col: 0,
                message: e.to_string(),
            }),
        }
    }
    let mut names = std::collections::HashMap::new();
    for d in &defs {
        if let Some(other) = names.insert(d.name.clone(), d.file.clone()) {
            diags.push(Diagnostic {
                file: d.file.clone(),
                line: 1,
                col: 1,
                message: format!(
                    "pipeline name `{}` is also used by {}",
                    d.name,
                    other.display()
                ),
            });
        }
    }
    (defs, diags)
}

/// Everything a folder of pipelines runs: the query pipelines, planned, and the
/// compound pipelines that read their alerts.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub pipelines: Vec<Pipeline>,
    pub compounds: Vec<CompoundDef>,
    /// Where response tasks go; the shipped table unless the config names one.
    pub routing: RoutingTable,
}

impl Compiled {
    /// Routes of the routing table that no alert can match: a route naming a
    /// key label (`category`, `kind`, `district`, `street`) that no pipeline
    /// reading its feed (or the pipeline it names) has among its key columns.
    pub fn routes_never_matched(&self) -> Vec<crate::error::Diagnostic> {
        let watchers = self.watchers();
        let mut found = Vec::new();
        for (conditions, at) in self.routing.conditions() {
            let wants = |name: &str| conditions.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            let labels: Vec<&str> = conditions
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !["feed", "pipeline"].contains(k))
                .collect();
            if labels.is_empty() {
                continue;
            }
            let candidates: Vec<&crate::eval::labels::Watcher> = watchers
                .iter()
                .filter(|w| wants("feed").is_none_or(|f| w.feeds.contains(f)))
                .filter(|w| wants("pipeline").is_none_or(|p| w.name == *p))
                .collect();
            if candidates
                .iter()
                .any(|w| labels.iter().all(|l| w.keys.iter().any(|k| k == l)))
            {
                continue;
            }
            let carried: Vec<String> = candidates
                .iter()
                .map(|w| format!("{} ({})", w.name, w.keys.join(", ")))
                .collect();
            let message = format!(
                "this route can never match: no pipeline{} has {} among its key columns (alerts carry: {})",
                wants("feed").map_or(String::new(), |f| format!(" reading `{f}`")),
                labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                if carried.is_empty() {
                    "no pipeline matches its feed or name".into()
                } else {
                    carried.join("; ")
                },
            );
            found.push(crate::error::Diagnostic { message, ..at });
        }
        found
    }

    /// Logs the routes that can never match: `check` refuses them, a run only says so.
    pub fn warn_of_dead_routes(&self) {
        for dead in self.routes_never_matched() {
            tracing::warn!("{dead}");
        }
    }

    /// Each enabled pipeline's feeds and key columns, compounds last (their
    /// feeds those of their inputs): what scoring against labels needs.
    pub fn watchers(&self) -> Vec<crate::eval::labels::Watcher> {
        let pipelines: Vec<crate::eval::labels::Watcher> = self
            .pipelines
            .iter()
            .filter(|p| p.def.enabled)
            .map(|p| crate::eval::labels::Watcher {
                name: p.def.name.clone(),
                feeds: p.query.feeds.iter().cloned().collect(),
                keys: crate::detect::runner::key_columns(
                    p.def.sections.detect.as_ref(),
                    &p.query.output_schema,
                ),
            })
            .collect();
        let compounds: Vec<crate::eval::labels::Watcher> = self
            .compounds
            .iter()
            .filter(|c| c.def.enabled)
            .map(|c| {
                let inputs = &c.def.compound.inputs;
                let feeds = pipelines
                    .iter()
                    .filter(|w| inputs.iter().any(|i| *i.get_ref() == w.name))
                    .flat_map(|w| w.feeds.iter().cloned())
                    .collect::<std::collections::BTreeSet<_>>();
                crate::eval::labels::Watcher {
                    name: c.def.name.clone(),
                    feeds: feeds.into_iter().collect(),
                    keys: c.def.compound.key.clone(),
                }
            })
            .collect();
        pipelines.into_iter().chain(compounds).collect()
    }

    /// Per pipeline, the lowest level that opens tasks where it differs from the table's.
    pub fn task_levels(&self) -> std::collections::BTreeMap<String, crate::core::level::Level> {
        let pipelines = self
            .pipelines
            .iter()
            .filter_map(|p| p.def.task_level.map(|l| (p.def.name.clone(), l)));
        let compounds = self
            .compounds
            .iter()
            .filter_map(|c| c.def.task_level.map(|l| (c.def.name.clone(), l)));
        pipelines.chain(compounds).collect()
    }
}

/// Parses and plans every pipeline of a directory, reporting all mistakes: those
/// of the files, those of the SQL of every file that has SQL, and those of the
/// compound pipelines.
pub async fn compile_dir(dir: &Path, catalog: &Catalog) -> Result<Compiled, Diagnostics> {
    let (defs, mut diags) = load_dir_partial(dir);
    let mut compound_files = Vec::new();
    if let Ok(files) = crate::schema::toml_files(dir) {
        for path in files {
            if let Ok(text) = std::fs::read_to_string(&path)
                && compound::is_compound(&text)
            {
                compound_files.push((path, text));
            }
        }
    }
    let pipelines = match compile_all(defs, catalog).await {
        Ok(p) => p,
        Err(Diagnostics(more)) => {
            diags.extend(more);
            Vec::new()
        }
    };
    let compounds = compounds(&compound_files, &pipelines, &mut diags);
    let routing = RoutingTable::embedded(&catalog.feeds.keys().cloned().collect())
        .and_then(|r| r.with_tables(&catalog.tables))
        .map_err(Diagnostics)?;
    diags.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    Diagnostics(diags).into_result(Compiled {
        pipelines,
        compounds,
        routing,
    })
}

/// Reads compound pipeline files and checks their inputs against `pipelines`
/// (not when those had errors of their own).
fn compounds(
    files: &[(PathBuf, String)],
    pipelines: &[Pipeline],
    diags: &mut Vec<Diagnostic>,
) -> Vec<CompoundDef> {
    let known: std::collections::BTreeMap<String, Vec<String>> = pipelines
        .iter()
        .filter(|p| p.def.sections.detect.is_some() || !p.rules.is_empty())
        .map(|p| {
            let keys = crate::detect::runner::key_columns(
                p.def.sections.detect.as_ref(),
                &p.query.output_schema,
            );
            (p.def.name.clone(), keys)
        })
        .collect();
    let check_inputs = diags.is_empty();
    let mut out = Vec::new();
    for (path, text) in files {
        match compound::parse(path, text) {
            Ok(def) if !def.def.enabled => {}
            Ok(def) => {
                if check_inputs {
                    diags.extend(def.check(&known));
                }
                out.push(def);
            }
            Err(d) => diags.extend(d),
        }
    }
    out
}

/// The shipped pipelines, compound ones included, planned.
pub async fn compile_embedded(catalog: &Catalog) -> Result<Compiled, Diagnostics> {
    let pipelines = compile_all(embedded()?, catalog).await?;
    let files: Vec<(PathBuf, String)> = EMBEDDED_COMPOUND
        .iter()
        .map(|(name, text)| (Path::new("pipelines").join(name), text.to_string()))
        .collect();
    let mut diags = Vec::new();
    let compounds = compounds(&files, &pipelines, &mut diags);
    let routing = RoutingTable::embedded(&catalog.feeds.keys().cloned().collect())
        .and_then(|r| r.with_tables(&catalog.tables))
        .map_err(Diagnostics)?;
    Diagnostics(diags).into_result(Compiled {
        pipelines,
        compounds,
        routing,
    })
}

/// The shipped compound pipelines.
const EMBEDDED_COMPOUND: &[(&str, &str)] = &[(
    "district_compound_risk.toml",
    include_str!("../../pipelines/district_compound_risk.toml"),
)];

pub async fn compile_all(
    defs: Vec<PipelineDef>,
    catalog: &Catalog,
) -> Result<Vec<Pipeline>, Diagnostics> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for d in defs.into_iter().filter(|d| d.enabled) {
        match d.compile(catalog).await {
            Ok(p) => out.push(p),
            Err(e) => diags.extend(e),
        }
    }
    Diagnostics(diags).into_result(out)
}

/// The shipped pipelines, embedded so `yujing demo` runs from any folder.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "district_petition_labor_day.toml",
        include_str!("../../pipelines/district_petition_labor_day.toml"),
    ),
    (
        "labor_enterprise_day.toml",
        include_str!("../../pipelines/labor_enterprise_day.toml"),
    ),
    (
        "labor_key_enterprise_day.toml",
        include_str!("../../pipelines/labor_key_enterprise_day.toml"),
    ),
    (
        "labor_industry_week.toml",
        include_str!("../../pipelines/labor_industry_week.toml"),
    ),
    (
        "negative_list_homicide_rate.toml",
        include_str!("../../pipelines/negative_list_homicide_rate.toml"),
    ),
    (
        "opinion_negative_topic.toml",
        include_str!("../../pipelines/opinion_negative_topic.toml"),
    ),
    (
        "petition_collective.toml",
        include_str!("../../pipelines/petition_collective.toml"),
    ),
    (
        "petition_street_month.toml",
        include_str!("../../pipelines/petition_street_month.toml"),
    ),
    (
        "petition_street_day.toml",
        include_str!("../../pipelines/petition_street_day.toml"),
    ),
    (
        "police_deaths_district_day.toml",
        include_str!("../../pipelines/police_deaths_district_day.toml"),
    ),
    (
        "police_grid_hour.toml",
        include_str!("../../pipelines/police_grid_hour.toml"),
    ),
];

/// The shipped pipelines as written.
pub fn embedded() -> Result<Vec<PipelineDef>, Diagnostics> {
    let mut defs = Vec::new();
    let mut diags = Vec::new();
    for (name, text) in EMBEDDED {
        match parse_pipeline(&Path::new("pipelines").join(name), text) {
            Ok(d) => defs.push(d),
            Err(d) => diags.extend(d),
        }
    }
    Diagnostics(diags).into_result(defs)
}

#[cfg(test)]
mod tests;
