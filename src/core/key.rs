//! Cells and keys: one value of a result column, typed as Arrow holds it, and a
//! key — the values of a pipeline's key columns for one row, in column order.
//! Detectors, alerts and tasks keep them typed; they become JSON only where a
//! sink writes them. A key's identity ([`Key::id`]) is its values as a JSON
//! array: series, alert lifecycles and ids are keyed by it, so it never changes.

use std::fmt;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::time::format_rfc3339;

/// One value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null, and floats that are not finite.
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// Text; times as RFC 3339, other types in their display form.
    Text(String),
    List(Vec<Cell>),
}

impl Cell {
    /// The value of `array` at `row`.
    pub fn from_arrow(array: &dyn Array, row: usize) -> Cell {
        use arrow::datatypes as t;
        if array.is_null(row) {
            return Cell::Null;
        }
        // The value of a primitive array at `row`.
        macro_rules! value {
            ($ty:ty) => {
                array.as_primitive::<$ty>().value(row)
            };
        }
        match array.data_type() {
            DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
            DataType::Int8 => Cell::Int(value!(t::Int8Type).into()),
            DataType::Int16 => Cell::Int(value!(t::Int16Type).into()),
            DataType::Int32 => Cell::Int(value!(t::Int32Type).into()),
            DataType::Int64 => Cell::Int(value!(t::Int64Type)),
            DataType::UInt8 => Cell::UInt(value!(t::UInt8Type).into()),
            DataType::UInt16 => Cell::UInt(value!(t::UInt16Type).into()),
            DataType::UInt32 => Cell::UInt(value!(t::UInt32Type).into()),
            DataType::UInt64 => Cell::UInt(value!(t::UInt64Type)),
            DataType::Float32 => Cell::float(value!(t::Float32Type).into()),
            DataType::Float64 => Cell::float(value!(t::Float64Type)),
            DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(row).to_string()),
            DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(row).to_string()),
            DataType::Utf8View => Cell::Text(array.as_string_view().value(row).to_string()),
            DataType::Timestamp(unit, _) => {
                let ms = match unit {
                    TimeUnit::Second => value!(t::TimestampSecondType) * 1000,
                    TimeUnit::Millisecond => value!(t::TimestampMillisecondType),
                    TimeUnit::Microsecond => value!(t::TimestampMicrosecondType) / 1000,
                    TimeUnit::Nanosecond => value!(t::TimestampNanosecondType) / 1_000_000,
                };
                Cell::Text(format_rfc3339(ms))
            }
            DataType::List(_) => {
                let list = array.as_list::<i32>().value(row);
                Cell::List(
                    (0..list.len())
                        .map(|i| Cell::from_arrow(list.as_ref(), i))
                        .collect(),
                )
            }
            // Decimals, dates, intervals…: their display form.
            _ => match ArrayFormatter::try_new(array, &FormatOptions::default()) {
                Ok(f) => Cell::Text(f.value(row).to_string()),
                Err(_) => Cell::Null,
            },
        }
    }

    fn float(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Float(v)
        } else {
            Cell::Null
        }
    }

    /// A number as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Int(v) => Some(v as f64),
            Cell::UInt(v) => Some(v as f64),
            Cell::Float(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// From JSON (a checkpoint, an API body): numbers as the narrowest that holds them.
    pub fn from_json(v: serde_json::Value) -> Cell {
        use serde_json::Value;
        match v {
            Value::Null | Value::Object(_) => Cell::Null,
            Value::Bool(b) => Cell::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Cell::Int(i),
                (None, Some(u)) => Cell::UInt(u),
                _ => Cell::float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Cell::Text(s),
            Value::Array(items) => Cell::List(items.into_iter().map(Cell::from_json).collect()),
        }
    }
}

/// Its JSON text (a string in quotes).
impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl From<Cell> for serde_json::Value {
    fn from(c: Cell) -> Self {
        use serde_json::Value;
        match c {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(b),
            Cell::Int(v) => Value::from(v),
            Cell::UInt(v) => Value::from(v),
            Cell::Float(v) => serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
            Cell::Text(s) => Value::String(s),
            Cell::List(items) => Value::Array(items.into_iter().map(Value::from).collect()),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => s.serialize_unit(),
            Cell::Bool(b) => s.serialize_bool(*b),
            Cell::Int(v) => s.serialize_i64(*v),
            Cell::UInt(v) => s.serialize_u64(*v),
            Cell::Float(v) => s.serialize_f64(*v),
            Cell::Text(t) => s.serialize_str(t),
            Cell::List(items) => items.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(Cell::from_json)
    }
}

/// The values of a pipeline's key columns for one row, in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Key {
    columns: Vec<(String, Cell)>,
}

impl Key {
    pub fn new(columns: Vec<(String, Cell)>) -> Self {
        Key { columns }
    }

    /// The key whose [`Key::id`] is `id`, over `columns` (a key remembered only
    /// by its id, such as one that went quiet).
    pub fn from_id(id: &str, columns: &[String]) -> Key {
        let values: Vec<Cell> = serde_json::from_str(id).unwrap_or_default();
        Key::new(columns.iter().cloned().zip(values).collect())
    }

    /// Its identity: its values as a JSON array.
    pub fn id(&self) -> String {
        let values: Vec<&Cell> = self.values().collect();
        serde_json::to_string(&values).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Cell)> {
        self.columns.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn values(&self) -> impl Iterator<Item = &Cell> {
        self.columns.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl FromIterator<(String, Cell)> for Key {
    fn from_iter<I: IntoIterator<Item = (String, Cell)>>(iter: I) -> Self {
        Key::new(iter.into_iter().collect())
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.columns.len()))?;
        for (name, value) in &self.columns {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of key columns to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                let mut columns = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Cell>()? {
                    columns.push((name, value));
                }
                Ok(Key::new(columns))
            }
        }
        d.deserialize_map(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_writes_as_the_json_it_was_and_reads_back() {
        let key = Key::new(vec![
            ("district".into(), Cell::Text("西湖区".into())),
            ("n".into(), Cell::Int(3)),
            ("r".into(), Cell::Float(0.5)),
            ("none".into(), Cell::Null),
        ]);
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(text, r#"{"district":"西湖区","n":3,"r":0.5,"none":null}"#);
        assert_eq!(key.id(), r#"["西湖区",3,0.5,null]"#);
        let back: Key = serde_json::from_str(&text).unwrap();
        assert_eq!(back, key);
        let columns = ["district", "n", "r", "none"].map(String::from);
        assert_eq!(Key::from_id(&key.id(), &columns), key);
        assert_eq!(key.get("district").and_then(Cell::as_str), Some("西湖区"));
    }
}
