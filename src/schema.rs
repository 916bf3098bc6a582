//! Feed schemas: the single source of truth for decoding, validation and SQL column
//! types. One TOML file per feed in `schemas/`; the shipped ones are embedded in the
//! binary and a directory can override them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::Deserialize;

use crate::error::{Diagnostic, Diagnostics, Error, Result, line_col};

/// Most fields a feed schema may have (the decoder keeps one slot per field on the stack).
pub const MAX_FIELDS: usize = 32;

/// The column every feed carries as its event time.
pub const EVENT_TIME: &str = "event_time";
/// The column that identifies an event within its feed.
pub const EVENT_ID: &str = "event_id";

/// The shipped schemas, embedded so the binary works from any folder.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "public_opinion.toml",
        include_str!("../schemas/public_opinion.toml"),
    ),
    ("petition.toml", include_str!("../schemas/petition.toml")),
    (
        "labor_dispute.toml",
        include_str!("../schemas/labor_dispute.toml"),
    ),
    (
        "police_incident.toml",
        include_str!("../schemas/police_incident.toml"),
    ),
];

pub use crate::core::field::{FieldType, timestamp_type};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub required: bool,
    /// Personal data: hashed with a keyed hash at decode time, never shown in clear.
    /// Only on `string` and `string_list` fields, which can hold the hash.
    #[serde(default)]
    pub pii: bool,
    /// Free text that may carry personal data (a post, a note): kept for the
    /// pipelines' SQL, but never repeated in a dead letter.
    #[serde(default)]
    pub personal: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub doc: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    feed: String,
    #[serde(default)]
    description: String,
    fields: Vec<FieldDef>,
}

/// One feed's schema.
#[derive(Debug, Clone)]
pub struct FeedSchema {
    pub feed: String,
    pub description: String,
    pub fields: Vec<FieldDef>,
    pub arrow: SchemaRef,
    pub event_time_index: usize,
    pub event_id_index: usize,
}

impl FeedSchema {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// All feeds known to the engine, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub feeds: BTreeMap<String, Arc<FeedSchema>>,
    /// Residents per district, for rates per 100 000 people: the SQL table
    /// `district_population(district, population)`.
    pub population: BTreeMap<String, i64>,
    /// The config's reference tables, by name (see [`crate::reference`]).
    pub tables: crate::reference::Tables,
}

/// Residents of the districts `yujing gen` writes (used when the config gives none).
pub const DEFAULT_POPULATION: [(&str, i64); 3] = [
    ("西湖区", 1_130_000),
    ("上城区", 1_320_000),
    ("拱墅区", 1_180_000),
];

/// Name of the population table in pipeline SQL.
pub const POPULATION_TABLE: &str = "district_population";

impl Catalog {
    /// The shipped schemas.
    pub fn embedded() -> Result<Self> {
        let mut catalog = Catalog {
            population: DEFAULT_POPULATION
                .iter()
                .map(|(d, n)| (d.to_string(), *n))
                .collect(),
            ..Catalog::default()
        };
        let mut diags = Vec::new();
        for (name, text) in EMBEDDED {
            catalog.add(Path::new("schemas").join(name).as_path(), text, &mut diags);
        }
        match crate::reference::shipped::tables() {
            Ok(tables) => catalog.tables = tables,
            Err(mut d) => diags.append(&mut d),
        }
        Diagnostics(diags)
            .into_result(catalog)
            .map_err(Error::Invalid)
    }

    /// The shipped schemas, with any `*.toml` in `dir` added or replacing a feed of the same name.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut catalog = Self::embedded()?;
        let Some(dir) = dir else { return Ok(catalog) };
        let mut diags = Vec::new();
        for path in toml_files(dir)? {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            catalog.add(&path, &text, &mut diags);
        }
        Diagnostics(diags)
            .into_result(catalog)
            .map_err(Error::Invalid)
    }

    /// Reference tables must not take a name SQL already has (a feed, `district_population`).
    pub fn check_names(&self) -> std::result::Result<(), Diagnostics> {
        let clashes: Vec<Diagnostic> = self
            .tables
            .iter()
            .filter(|(name, _)| self.feeds.contains_key(*name) || *name == POPULATION_TABLE)
            .map(|(name, t)| Diagnostic {
                file: t.def.file.clone(),
                line: 0,
                col: 0,
                message: format!(
                    "table `{name}`: the name is taken (a feed or `{POPULATION_TABLE}`)"
                ),
            })
            .collect();
        Diagnostics(clashes).into_result(())
    }

    /// Adds (or replaces) the feed a schema file defines, or records its mistakes.
    fn add(&mut self, path: &Path, text: &str, diags: &mut Vec<Diagnostic>) {
        match parse_schema(path, text) {
            Ok(s) => {
                self.feeds.insert(s.feed.clone(), Arc::new(s));
            }
            Err(d) => diags.extend(d),
        }
    }

    pub fn get(&self, feed: &str) -> Option<&Arc<FeedSchema>> {
        self.feeds.get(feed)
    }

    pub fn names(&self) -> Vec<&str> {
        self.feeds.keys().map(String::as_str).collect()
    }
}

/// The `*.toml` files of a directory, sorted by name so that runs are deterministic.
pub fn toml_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Why a field's `pii` or `personal` mark cannot be honoured, if it cannot.
fn refused_mark(f: &FieldDef) -> Option<String> {
    let text = matches!(f.ty, FieldType::String | FieldType::StringList);
    let key_field = matches!(f.name.as_str(), EVENT_ID | EVENT_TIME);
    [(f.pii, "pii"), (f.personal, "personal")]
        .into_iter()
        .find(|(marked, _)| *marked && (!text || key_field))
        .map(|(_, what)| {
            format!(
                "field `{}`: `{what} = true` needs a string or string_list field other than \
                 event_id and event_time (a hash or a withheld text cannot stand in for {})",
                f.name,
                f.ty.json_name()
            )
        })
}

fn parse_schema(path: &Path, text: &str) -> Result<FeedSchema, Vec<Diagnostic>> {
    let diag = |offset: Option<usize>, message: String| {
        let (line, col) = offset.map_or((0, 0), |o| line_col(text, o));
        Diagnostic {
            file: path.to_path_buf(),
            line,
            col,
            message,
        }
    };
    let file: SchemaFile = toml::from_str(text)
        .map_err(|e| vec![diag(e.span().map(|s| s.start), e.message().to_string())])?;
    let mut diags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in &file.fields {
        if !seen.insert(f.name.as_str()) {
            diags.push(diag(None, format!("field `{}` is declared twice", f.name)));
        }
        if let Some(m) = refused_mark(f) {
            diags.push(diag(None, m));
        }
        if matches!(f.name.as_str(), "window_start" | "window_end") {
            diags.push(diag(
                None,
                format!("field name `{}` is reserved for windows", f.name),
            ));
        }
    }
    if file.fields.len() > crate::schema::MAX_FIELDS {
        diags.push(diag(
            None,
            format!("a feed has at most {} fields", crate::schema::MAX_FIELDS),
        ));
    }
    let position = |name: &str, ty: FieldType| {
        file.fields
            .iter()
            .position(|f| f.name == name && f.ty == ty && f.required)
    };
    let event_time_index = position(EVENT_TIME, FieldType::Timestamp);
    let event_id_index = position(EVENT_ID, FieldType::String);
    if event_time_index.is_none() {
        diags.push(diag(
            None,
            "every feed needs a required `event_time` of type timestamp".into(),
        ));
    }
    if event_id_index.is_none() {
        diags.push(diag(
            None,
            "every feed needs a required `event_id` of type string".into(),
        ));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let arrow = Arc::new(Schema::new(
        file.fields
            .iter()
            .map(|f| Field::new(&f.name, f.ty.arrow_type(), !f.required))
            .collect::<Vec<_>>(),
    ));
    Ok(FeedSchema {
        feed: file.feed,
        description: file.description,
        fields: file.fields,
        arrow,
        event_time_index: event_time_index.unwrap_or_default(),
        event_id_index: event_id_index.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schemas_load_with_pii_marked() {
        let c = Catalog::embedded().unwrap();
        assert_eq!(
            c.names(),
            [
                "labor_dispute",
                "petition",
                "police_incident",
                "public_opinion"
            ]
        );
        let p = c.get("petition").unwrap();
        assert!(p.fields[p.index_of("petitioner_id").unwrap()].pii);
        let o = c.get("public_opinion").unwrap();
        assert!(o.fields[o.index_of("author_id").unwrap()].pii);
        assert!(o.fields[o.index_of("text").unwrap()].personal);
    }

    #[test]
    fn pii_is_refused_where_no_hash_can_stand() {
        let base = "feed = \"f\"\n[[fields]]\nname = \"event_id\"\ntype = \"string\"\nrequired = true\n\
                    [[fields]]\nname = \"event_time\"\ntype = \"timestamp\"\nrequired = true\n";
        for (ty, ok) in [
            ("string", true),
            ("string_list", true),
            ("int", false),
            ("float", false),
            ("bool", false),
            ("timestamp", false),
        ] {
            for mark in ["pii", "personal"] {
                let text =
                    format!("{base}[[fields]]\nname = \"x\"\ntype = \"{ty}\"\n{mark} = true\n");
                let got = parse_schema(Path::new("f.toml"), &text);
                assert_eq!(got.is_ok(), ok, "{mark} on {ty}");
                if let Err(d) = got {
                    assert!(
                        d[0].message
                            .contains(&format!("`{mark} = true` needs a string")),
                        "{}",
                        d[0].message
                    );
                }
            }
        }
        let id = base.replace("required = true\n[[", "required = true\npii = true\n[[");
        assert!(parse_schema(Path::new("f.toml"), &id).is_err());
    }

    #[test]
    fn schema_mistakes_are_located() {
        let text = "feed = \"x\"\n[[fields]]\nname = \"a\"\ntype = \"strng\"\n";
        let err = parse_schema(Path::new("x.toml"), text).unwrap_err();
        assert_eq!(err[0].line, 4, "{:?}", err);
    }
}
