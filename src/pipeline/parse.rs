//! Reading one pipeline file: every top-level key checked for its type and
//! value, every mistake reported as `file:line:col: message`, not just the first.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{DEFAULT_MAX_KEYS, PipelineDef};
use crate::core::level::Level;
use crate::core::time::{Millis, parse_duration};
use crate::detect::config::Sections;
use crate::error::Diagnostic;

/// Keys a pipeline file may have.
const KNOWN_KEYS: [&str; 11] = [
    "name",
    "description",
    "sql",
    "lateness",
    "timezone",
    "enabled",
    "detect",
    "rule",
    "task_level",
    "max_keys",
    "sensitive",
];

/// Parses one pipeline file, collecting every mistake.
pub fn parse_pipeline(file: &Path, text: &str) -> Result<PipelineDef, Vec<Diagnostic>> {
    match parse_pipeline_partial(file, text) {
        (Some(def), diags) if diags.is_empty() => Ok(def),
        (_, diags) => Err(diags),
    }
}

/// Parses what it can of a pipeline file: the definition as far as it goes (when
/// the TOML itself parses) and every mistake, so `check` can still plan the SQL
/// of a file whose other keys are wrong.
pub fn parse_pipeline_partial(file: &Path, text: &str) -> (Option<PipelineDef>, Vec<Diagnostic>) {
    let shared: Arc<str> = text.into();
    let at = |offset: usize, message: String| Diagnostic::at(file, text, offset, message);
    let table = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            return (
                None,
                vec![at(
                    e.span().map_or(0, |s| s.start),
                    e.message().trim().to_string(),
                )],
            );
        }
    };
    let mut diags = Vec::new();
    let mut def = PipelineDef {
        file: file.to_path_buf(),
        name: String::new(),
        description: String::new(),
        sql: String::new(),
        lateness: 0,
        utc_offset: 0,
        enabled: true,
        sections: Sections::default(),
        task_level: None,
        max_keys: DEFAULT_MAX_KEYS,
        sql_offset: 0,
        text: shared,
    };
    let mut seen = Seen::default();
    for (key, value) in table.get_ref().iter() {
        set_key(&mut def, key, value, &at, &mut diags, &mut seen);
    }
    match toml::from_str::<Sections>(text) {
        Ok(sections) => def.sections = sections,
        Err(e) => diags.push(at(
            e.span().map_or(0, |s| s.start),
            format!("in [detect] or [[rule]]: {}", e.message().trim()),
        )),
    }
    let end = text.len();
    if def.name.is_empty() && !diags.iter().any(|d| d.message.starts_with("name")) {
        diags.push(at(end, "missing `name`".into()));
    }
    if !seen.sql {
        diags.push(at(end, "missing `sql`".into()));
    }
    if !seen.lateness {
        diags.push(at(
            end,
            "missing `lateness` (how late an event may be, e.g. \"5m\")".into(),
        ));
    }
    diags.sort_by_key(|d| (d.line, d.col));
    (seen.sql.then_some(def), diags)
}

/// Which required keys a file has.
#[derive(Default)]
struct Seen {
    sql: bool,
    lateness: bool,
}

/// Reads one top-level key of a pipeline file into `def`; mistakes go to `diags`.
fn set_key(
    def: &mut PipelineDef,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
    seen: &mut Seen,
) {
    let k: &str = key.get_ref();
    let vspan = value.span();
    let string = |diags: &mut Vec<Diagnostic>| -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                diags.push(at(vspan.start, format!("`{k}` must be a string")));
                None
            }
        }
    };
    match k {
        "name" | "description" | "sql" | "lateness" | "timezone" | "task_level" => {
            if let Some(s) = string(diags) {
                set_string(def, k, s, vspan.start, at, diags, seen);
            }
        }
        // Read below with their own types.
        "detect" | "rule" | "sensitive" => {}
        "max_keys" => match positive(value.get_ref()) {
            Some(n) => def.max_keys = n,
            None => diags.push(at(
                vspan.start,
                "`max_keys` must be a positive integer".into(),
            )),
        },
        "enabled" => match value.get_ref() {
            DeValue::Boolean(b) => def.enabled = *b,
            _ => diags.push(at(vspan.start, "`enabled` must be true or false".into())),
        },
        other => diags.push(at(
            key.span().start,
            format!(
                "unknown key `{other}` (a pipeline has {})",
                KNOWN_KEYS.map(|k| format!("`{k}`")).join(", ")
            ),
        )),
    }
}

/// Sets a key whose value is a string.
fn set_string(
    def: &mut PipelineDef,
    k: &str,
    s: String,
    start: usize,
    at: &dyn Fn(usize, String) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
    seen: &mut Seen,
) {
    match k {
        "name" => {
            if !is_name(&s) {
                let message = format!("name `{s}` must be letters, digits and `_`");
                diags.push(at(start, message));
            }
            def.name = s;
        }
        "description" => def.description = s,
        "sql" => {
            seen.sql = true;
            def.sql = s;
            def.sql_offset = string_content_start(&def.text, start);
        }
        "lateness" => {
            seen.lateness = true;
            match parse_duration(&s) {
                Ok(v) => def.lateness = v,
                Err(m) => diags.push(at(start, format!("bad lateness: {m}"))),
            }
        }
        "timezone" => match parse_utc_offset(&s) {
            Some(v) => def.utc_offset = v,
            None => diags.push(at(
                start,
                format!("bad timezone `{s}`: write a UTC offset such as \"+08:00\""),
            )),
        },
        "task_level" => match Level::ALL.into_iter().find(|l| l.as_str() == s) {
            Some(l) => def.task_level = Some(l),
            None => diags.push(at(
                start,
                format!("unknown level `{s}` (blue, yellow, orange, red)"),
            )),
        },
        _ => {}
    }
}

/// A pipeline's name: letters, digits and `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A positive integer, or `None`.
fn positive(value: &DeValue<'_>) -> Option<usize> {
    match value {
        DeValue::Integer(i) => i.as_str().parse::<usize>().ok().filter(|n| *n > 0),
        _ => None,
    }
}

fn parse_utc_offset(s: &str) -> Option<Millis> {
    if s == "UTC" || s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && rest.len() == 5).then_some(sign * (h * 60 + m) * 60_000)
}

/// Where the characters of a TOML string value start, given where its token starts.
pub(super) fn string_content_start(text: &str, token_start: usize) -> usize {
    let rest = &text[token_start..];
    let mut offset = token_start;
    if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
        offset += 3;
        // A newline right after the opening quotes is not part of the string.
        if text[offset..].starts_with("\r\n") {
            offset += 2;
        } else if text[offset..].starts_with('\n') {
            offset += 1;
        }
    } else if rest.starts_with('"') || rest.starts_with('\'') {
        offset += 1;
    }
    offset
}
