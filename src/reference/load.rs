//! Reading one reference file into typed Arrow columns: CSV with a header row
//! or JSON lines, every mistake located as `file:line:col`, every `pii` value
//! replaced by its pseudonym before it is kept.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{ColumnDef, Contents, TableDef};
use crate::core::field::FieldType;
use crate::core::time::{Millis, parse_rfc3339};
use crate::error::Diagnostic;

/// A typed cell.
enum Cell {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Time(Millis),
}

/// Reads `path` as the table `def` describes.
pub fn read_table(
    path: &Path,
    def: &TableDef,
    schema: &SchemaRef,
    pii_key: &[u8; 32],
) -> Result<Contents, Vec<Diagnostic>> {
    parse_table(path, &read_bytes(path)?, def, schema, pii_key)
}

/// The bytes of a table's file, or why not.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Vec<Diagnostic>> {
    std::fs::read(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read the table's file: {e}"),
        }]
    })
}

/// What tells one content of a file from another.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

/// Parses the contents of `path` (its extension tells the format).
pub fn parse_table(
    path: &Path,
    bytes: &[u8],
    def: &TableDef,
    schema: &SchemaRef,
    pii_key: &[u8; 32],
) -> Result<Contents, Vec<Diagnostic>> {
    let located = |line: usize, col: usize, message: String| Diagnostic {
        file: path.to_path_buf(),
        line,
        col,
        message,
    };
    let mistakes = definition_mistakes(def);
    if !mistakes.is_empty() {
        return Err(mistakes.into_iter().map(|m| located(0, 0, m)).collect());
    }
    let mut diags: Vec<Located> = Vec::new();
    let raw = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv_rows(bytes, def, &mut diags),
        Some("jsonl" | "json" | "ndjson") => json_rows(bytes, def, &mut diags),
        _ => {
            return Err(vec![located(
                0,
                0,
                "a reference file is `.csv` (with a header row) or `.jsonl`".into(),
            )]);
        }
    };
    let rows = rows_checked(raw, def, &mut diags);
    if !diags.is_empty() {
        diags.sort_by_key(|(line, col, _)| (*line, *col));
        return Err(diags
            .into_iter()
            .map(|(line, col, m)| located(line, col, m))
            .collect());
    }
    let pseudonymised = rows
        .into_iter()
        .map(|cells| {
            cells
                .into_iter()
                .zip(&def.columns)
                .map(|(cell, c)| match cell {
                    Some(Cell::Text(s)) if c.pii => Some(Cell::Text(
                        (*crate::core::pseudonym::pseudonym(pii_key, &s)).to_string(),
                    )),
                    other => other,
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let batch = batch(schema, def, &pseudonymised)
        .map_err(|e| vec![located(0, 0, format!("building the table: {e}"))])?;
    let index = key_index(def, &pseudonymised);
    Ok(Contents {
        batch,
        digest: digest(bytes),
        index,
    })
}

/// Mistakes of the declaration itself.
fn definition_mistakes(def: &TableDef) -> Vec<String> {
    let mut out = Vec::new();
    if def.columns.is_empty() {
        out.push("a reference table declares its `columns`".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &def.columns {
        if !seen.insert(c.name.as_str()) {
            out.push(format!("column `{}` is declared twice", c.name));
        }
        if c.ty == FieldType::StringList {
            out.push(format!(
                "column `{}`: a reference table holds scalars (string, int, float, bool, timestamp)",
                c.name
            ));
        }
        if c.pii && c.ty != FieldType::String {
            out.push(format!(
                "column `{}`: only a string column can be `pii` (its pseudonym is a string)",
                c.name
            ));
        }
    }
    if let Some(key) = &def.key
        && !def.columns.iter().any(|c| &c.name == key)
    {
        out.push(format!("key `{key}` is not one of the columns"));
    }
    out
}

type Located = (usize, usize, String);
/// A row as read: its line, and per declared column its text or JSON value.
type RawRow = (usize, Vec<Option<Raw>>);

enum Raw {
    Text(String),
    Json(serde_json::Value),
}

fn csv_rows(bytes: &[u8], def: &TableDef, diags: &mut Vec<Located>) -> Vec<RawRow> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            diags.push((1, 1, format!("the header row: {e}")));
            return Vec::new();
        }
    };
    let mut position = vec![None; def.columns.len()];
    for (i, h) in headers.iter().enumerate() {
        match def.columns.iter().position(|c| c.name == h) {
            Some(c) => position[c] = Some(i),
            None => diags.push((1, 1, unknown_column(h, def))),
        }
    }
    for (c, p) in def.columns.iter().zip(&position) {
        if p.is_none() {
            diags.push((1, 1, format!("the header row has no column `{}`", c.name)));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line() as usize);
                let cells = position
                    .iter()
                    .map(|p| {
                        p.and_then(|i| r.get(i))
                            .filter(|s| !s.is_empty())
                            .map(|s| Raw::Text(s.to_string()))
                    })
                    .collect();
                rows.push((line, cells));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                diags.push((line, 1, format!("not a CSV row: {e}")));
            }
        }
    }
    rows
}

fn json_rows(bytes: &[u8], def: &TableDef, diags: &mut Vec<Located>) -> Vec<RawRow> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut object = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => {
                diags.push((line_no, 1, "a row is a JSON object".into()));
                continue;
            }
            Err(e) => {
                diags.push((line_no, e.column(), format!("not JSON: {e}")));
                continue;
            }
        };
        let cells = def
            .columns
            .iter()
            .map(|c| {
                object
                    .remove(&c.name)
                    .filter(|v| !v.is_null())
                    .map(Raw::Json)
            })
            .collect();
        for k in object.keys() {
            diags.push((line_no, 1, unknown_column(k, def)));
        }
        rows.push((line_no, cells));
    }
    rows
}

fn unknown_column(name: &str, def: &TableDef) -> String {
    format!(
        "column `{name}` is not declared (the table has {})",
        def.columns
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Types every cell, reports the ones that do not fit and duplicate keys.
fn rows_checked(
    rows: Vec<RawRow>,
    def: &TableDef,
    diags: &mut Vec<Located>,
) -> Vec<Vec<Option<Cell>>> {
    let mut keys: HashMap<String, usize> = HashMap::new();
    let key_column = key_position(def);
    let mut out = Vec::with_capacity(rows.len());
    for (line, raw) in rows {
        let mut cells = Vec::with_capacity(raw.len());
        for (col, (value, c)) in raw.into_iter().zip(&def.columns).enumerate() {
            let cell = match value {
                None if c.required => {
                    diags.push((line, col + 1, format!("column `{}` is required", c.name)));
                    None
                }
                None => None,
                Some(v) => match typed(v, c) {
                    Ok(cell) => Some(cell),
                    Err(m) => {
                        diags.push((line, col + 1, format!("column `{}`: {m}", c.name)));
                        None
                    }
                },
            };
            cells.push(cell);
        }
        if let Some(k) = key_column
            && let Some(value) = cells.get(k).and_then(key_text)
            && let Some(first) = keys.insert(value.clone(), line)
        {
            // A personal key is never repeated in a message.
            let shown = match def.columns[k].pii {
                true => "(personal, withheld)".to_string(),
                false => format!("`{value}`"),
            };
            diags.push((
                line,
                k + 1,
                format!("key {shown} again (first on line {first}): a key names one row"),
            ));
        }
        out.push(cells);
    }
    out
}

fn typed(raw: Raw, c: &ColumnDef) -> Result<Cell, String> {
    use serde_json::Value;
    let want = || format!("expected {}", c.ty.json_name());
    match (c.ty, raw) {
        (FieldType::String, Raw::Text(s) | Raw::Json(Value::String(s))) => Ok(Cell::Text(s)),
        (FieldType::Int, Raw::Text(s)) => s
            .parse()
            .map(Cell::Int)
            .map_err(|_| format!("`{s}` is not an integer")),
        (FieldType::Int, Raw::Json(v)) => v.as_i64().map(Cell::Int).ok_or_else(want),
        (FieldType::Float, Raw::Text(s)) => s
            .parse()
            .map(Cell::Float)
            .map_err(|_| format!("`{s}` is not a number")),
        (FieldType::Float, Raw::Json(v)) => v.as_f64().map(Cell::Float).ok_or_else(want),
        (FieldType::Bool, Raw::Text(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Cell::Bool(true)),
            "false" => Ok(Cell::Bool(false)),
            _ => Err(format!("`{s}` is not true or false")),
        },
        (FieldType::Bool, Raw::Json(v)) => v.as_bool().map(Cell::Bool).ok_or_else(want),
        (FieldType::Timestamp, Raw::Text(s) | Raw::Json(Value::String(s))) => parse_rfc3339(&s)
            .map(Cell::Time)
            .ok_or_else(|| format!("`{s}` is not an RFC 3339 time")),
        _ => Err(want()),
    }
}

/// The rows as one batch of the table's schema.
fn batch(
    schema: &SchemaRef,
    def: &TableDef,
    rows: &[Vec<Option<Cell>>],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns: Vec<ArrayRef> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| -> ArrayRef {
            let cells = rows.iter().map(|r| r[i].as_ref());
            match c.ty {
                FieldType::Int => Arc::new(Int64Array::from_iter(cells.map(|v| match v {
                    Some(Cell::Int(x)) => Some(*x),
                    _ => None,
                }))),
                FieldType::Float => Arc::new(Float64Array::from_iter(cells.map(|v| match v {
                    Some(Cell::Float(x)) => Some(*x),
                    _ => None,
                }))),
                FieldType::Bool => Arc::new(BooleanArray::from_iter(cells.map(|v| match v {
                    Some(Cell::Bool(x)) => Some(*x),
                    _ => None,
                }))),
                FieldType::Timestamp => Arc::new(
                    TimestampMillisecondArray::from_iter(cells.map(|v| match v {
                        Some(Cell::Time(x)) => Some(*x),
                        _ => None,
                    }))
                    .with_timezone("UTC"),
                ),
                FieldType::String | FieldType::StringList => {
                    Arc::new(StringArray::from_iter(cells.map(|v| match v {
                        Some(Cell::Text(x)) => Some(x.as_str()),
                        _ => None,
                    })))
                }
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

/// Row of each key value (the key as text).
fn key_index(def: &TableDef, rows: &[Vec<Option<Cell>>]) -> HashMap<String, usize> {
    let Some(k) = key_position(def) else {
        return HashMap::new();
    };
    rows.iter()
        .enumerate()
        .filter_map(|(row, cells)| Some((key_text(&cells[k])?, row)))
        .collect()
}

/// Where the key column is among the declared columns.
fn key_position(def: &TableDef) -> Option<usize> {
    let key = def.key.as_ref()?;
    def.columns.iter().position(|c| &c.name == key)
}

/// A key cell as the text an alert's key is looked up by.
fn key_text(cell: &Option<Cell>) -> Option<String> {
    match cell {
        Some(Cell::Text(s)) => Some(s.clone()),
        Some(Cell::Int(i)) => Some(i.to_string()),
        _ => None,
    }
}
