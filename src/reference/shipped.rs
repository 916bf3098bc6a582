//! The shipped reference tables: those of the generator's districts, from
//! `examples/reference/`, embedded so the shipped pipelines and the demo run
//! without a config. A config's `[tables.NAME]` replaces the one of its name.

use std::path::Path;
use std::sync::Arc;

use super::{ReferenceTable, TableDef, Tables};
use crate::error::Diagnostic;

/// The declarations, as a config would write them.
pub const DECLARATIONS: &str = include_str!("../../examples/reference/tables.toml");

/// Each file's name and contents.
pub const FILES: [(&str, &str); 4] = [
    (
        "grids.csv",
        include_str!("../../examples/reference/grids.csv"),
    ),
    (
        "key_enterprises.csv",
        include_str!("../../examples/reference/key_enterprises.csv"),
    ),
    (
        "sensitive_dates.csv",
        include_str!("../../examples/reference/sensitive_dates.csv"),
    ),
    (
        "street_targets.csv",
        include_str!("../../examples/reference/street_targets.csv"),
    ),
];

#[derive(serde::Deserialize)]
struct Declared {
    tables: std::collections::BTreeMap<String, TableDef>,
}

/// The shipped tables. They hold no PII column, so no key is needed.
pub fn tables() -> Result<Tables, Vec<Diagnostic>> {
    let here = Path::new("examples/reference/tables.toml");
    let declared: Declared = toml::from_str(DECLARATIONS).map_err(|e| {
        vec![Diagnostic {
            file: here.to_path_buf(),
            line: 0,
            col: 0,
            message: e.to_string(),
        }]
    })?;
    let mut tables = Tables::new();
    for (name, def) in declared.tables {
        let file = def.file.to_string_lossy().to_string();
        let text = FILES
            .iter()
            .find(|(n, _)| *n == file)
            .map_or("", |(_, t)| *t);
        let table = ReferenceTable::from_text(&name, &def, &file, text.as_bytes())?;
        tables.insert(name, Arc::new(table));
    }
    Ok(tables)
}
