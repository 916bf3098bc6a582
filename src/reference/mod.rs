//! Reference tables: the district's own lists — key enterprises, the grid
//! hierarchy with each grid's worker, sensitive dates, monthly targets — that a
//! pipeline's SQL joins by name and routes look attributes up in.
//!
//! A table is declared in the config (`[tables.NAME]`) with a typed column list
//! and a CSV or JSON-lines file. `pii` columns are pseudonymised with the feeds'
//! key, so a join on a pseudonym works. A table may have dated versions
//! (`[[tables.NAME.versions]]`, each in force from an event time on), so a
//! replay sees a list change where it changed; and the daemon reads a file again
//! when it changes (SIGHUP, or the file watch), the new rows in force for the
//! windows that start after. Scans read the version in force at the start of
//! their window bin (a window's final half: at the window's start).

mod load;
pub mod shipped;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use arrow::array::Array;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use crate::core::field::FieldType;
use crate::core::time::{Millis, parse_rfc3339};
use crate::error::Diagnostic;

pub use load::{parse_table, read_table};

/// `[tables.NAME]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// CSV (with a header row) or JSON lines, by extension (`.csv`, `.jsonl`).
    pub file: PathBuf,
    #[serde(default)]
    pub description: String,
    pub columns: Vec<ColumnDef>,
    /// The column that names a row (unique): routes and department templates
    /// look rows up by it, with the alert key's value of the same column.
    pub key: Option<String>,
    /// Later versions, each in force from an event time on.
    #[serde(default)]
    pub versions: Vec<VersionDef>,
}

/// One typed column of a reference table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// A row without it is refused.
    #[serde(default)]
    pub required: bool,
    /// Personal data: replaced by its pseudonym under the feeds' key when read.
    #[serde(default)]
    pub pii: bool,
}

/// `[[tables.NAME.versions]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDef {
    /// RFC 3339: windows starting at or after this read this version.
    pub from: String,
    pub file: PathBuf,
}

/// What one file held when it was last read.
#[derive(Debug)]
pub struct Contents {
    pub batch: RecordBatch,
    /// Content hash (hex), so an unchanged file is not counted as a new version.
    pub digest: String,
    /// Row of each key value, when the table has a key.
    index: HashMap<String, usize>,
}

#[derive(Debug)]
struct Version {
    from: Millis,
    file: PathBuf,
    contents: Arc<Contents>,
}

/// A loaded table, shared by every compiled pipeline that reads it, so a
/// reload reaches them all.
#[derive(Debug)]
pub struct ReferenceTable {
    pub name: String,
    pub def: TableDef,
    pub schema: SchemaRef,
    pii_key: [u8; 32],
    versions: RwLock<Vec<Version>>,
    /// How many times a file of this table was read with new contents.
    loads: std::sync::atomic::AtomicU64,
    /// Built into the binary (see [`shipped`]): no file to read again.
    pub embedded: bool,
}

/// What a reload did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    /// New contents, now in force; the table's new version number.
    Changed(u64),
}

impl ReferenceTable {
    /// Reads every file of the table (paths relative to `base`).
    pub fn load(
        name: &str,
        def: &TableDef,
        base: &Path,
        pii_key: [u8; 32],
    ) -> Result<ReferenceTable, Vec<Diagnostic>> {
        let schema = table_schema(def);
        let mut diags = Vec::new();
        let mut versions = Vec::new();
        let files = std::iter::once((None, &def.file))
            .chain(def.versions.iter().map(|v| (Some(&v.from), &v.file)));
        for (from_text, file) in files {
            let from = match from_text.map(|text| (text, parse_rfc3339(text))) {
                None => Millis::MIN,
                Some((_, Some(t))) => t,
                Some((text, None)) => {
                    diags.push(Diagnostic {
                        file: base.join(file),
                        line: 0,
                        col: 0,
                        message: format!(
                            "table `{name}`: version `from = \"{text}\"` is not an RFC 3339 time"
                        ),
                    });
                    continue;
                }
            };
            let path = base.join(file);
            match read_table(&path, def, &schema, &pii_key) {
                Ok(contents) => versions.push(Version {
                    from,
                    file: path,
                    contents: Arc::new(contents),
                }),
                Err(mut d) => diags.append(&mut d),
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        versions.sort_by_key(|v| v.from);
        Ok(ReferenceTable {
            name: name.to_string(),
            def: def.clone(),
            schema,
            pii_key,
            versions: RwLock::new(versions),
            loads: std::sync::atomic::AtomicU64::new(1),
            embedded: false,
        })
    }

    /// A table from text built into the binary; `label` names it in mistakes.
    pub fn from_text(
        name: &str,
        def: &TableDef,
        label: &str,
        bytes: &[u8],
    ) -> Result<ReferenceTable, Vec<Diagnostic>> {
        let schema = table_schema(def);
        let contents = parse_table(Path::new(label), bytes, def, &schema, &[0; 32])?;
        Ok(ReferenceTable {
            name: name.to_string(),
            def: def.clone(),
            schema,
            pii_key: [0; 32],
            versions: RwLock::new(vec![Version {
                from: Millis::MIN,
                file: PathBuf::from(label),
                contents: Arc::new(contents),
            }]),
            loads: std::sync::atomic::AtomicU64::new(1),
            embedded: true,
        })
    }

    /// The contents in force at event time `t`.
    pub fn at(&self, t: Millis) -> Arc<Contents> {
        let versions = self.versions.read().unwrap_or_else(|p| p.into_inner());
        let i = versions.partition_point(|v| v.from <= t).saturating_sub(1);
        versions[i].contents.clone()
    }

    /// The table's version number: 1 when first read, one more each time a
    /// file of it is read with new contents.
    pub fn version(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Rows of the version in force now (the latest).
    pub fn rows(&self) -> usize {
        self.at(Millis::MAX).batch.num_rows()
    }

    /// Reads the files again; a file whose contents changed is in force from
    /// now on (one whose bytes are the same is not parsed again). A file that
    /// no longer reads leaves the version before in force.
    pub fn reload(&self) -> Result<Reloaded, Vec<Diagnostic>> {
        if self.embedded {
            return Ok(Reloaded::Unchanged);
        }
        let files: Vec<(PathBuf, String)> = {
            let versions = self.versions.read().unwrap_or_else(|p| p.into_inner());
            versions
                .iter()
                .map(|v| (v.file.clone(), v.contents.digest.clone()))
                .collect()
        };
        let mut changed = Vec::new();
        for (i, (path, digest)) in files.into_iter().enumerate() {
            let bytes = load::read_bytes(&path)?;
            if load::digest(&bytes) != digest {
                let contents = parse_table(&path, &bytes, &self.def, &self.schema, &self.pii_key)?;
                changed.push((i, Arc::new(contents)));
            }
        }
        Ok(self.install(changed))
    }

    /// Takes the contents of `fresh` — the same declaration, just read — where
    /// they differ from this table's, so pipelines holding this table see them
    /// (a redeploy reads each file once).
    pub fn adopt(&self, fresh: &ReferenceTable) -> Reloaded {
        let changed = {
            let ours = self.versions.read().unwrap_or_else(|p| p.into_inner());
            let theirs = fresh.versions.read().unwrap_or_else(|p| p.into_inner());
            ours.iter()
                .zip(theirs.iter())
                .enumerate()
                .filter(|(_, (o, t))| o.contents.digest != t.contents.digest)
                .map(|(i, (_, t))| (i, t.contents.clone()))
                .collect()
        };
        self.install(changed)
    }

    /// Puts new contents in force, version by version, and counts a new version.
    fn install(&self, changed: Vec<(usize, Arc<Contents>)>) -> Reloaded {
        if changed.is_empty() {
            return Reloaded::Unchanged;
        }
        let mut versions = self.versions.write().unwrap_or_else(|p| p.into_inner());
        for (i, contents) in changed {
            versions[i].contents = contents;
        }
        let n = self
            .loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        Reloaded::Changed(n)
    }

    /// The value of `column` in the row whose key is `key`, in force at `t`,
    /// as text; `None` when the table has no key, no such row or no value.
    pub fn attribute(&self, t: Millis, key: &str, column: &str) -> Option<String> {
        let contents = self.at(t);
        let row = *contents.index.get(key)?;
        let array = contents.batch.column_by_name(column)?;
        if array.is_null(row) {
            return None;
        }
        arrow::util::display::array_value_to_string(array, row).ok()
    }
}

/// The Arrow schema of a table's rows.
fn table_schema(def: &TableDef) -> SchemaRef {
    Arc::new(Schema::new(
        def.columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), !c.required))
            .collect::<Vec<_>>(),
    ))
}

/// Every reference table of a config, by name.
pub type Tables = BTreeMap<String, Arc<ReferenceTable>>;

/// The tables' names for a message that says which there are.
pub fn names(tables: &Tables) -> String {
    if tables.is_empty() {
        return "none; declare one in the config's [tables]".into();
    }
    tables.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Loads the config's tables; every mistake of every file is reported.
pub fn load_all(
    defs: &BTreeMap<String, TableDef>,
    base: &Path,
    pii_key: [u8; 32],
) -> Result<Tables, Vec<Diagnostic>> {
    let mut tables = Tables::new();
    let mut diags = Vec::new();
    for (name, def) in defs {
        match ReferenceTable::load(name, def, base, pii_key) {
            Ok(t) => {
                tables.insert(name.clone(), Arc::new(t));
            }
            Err(mut d) => diags.append(&mut d),
        }
    }
    if diags.is_empty() {
        Ok(tables)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests;
