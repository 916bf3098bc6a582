//! The value types of feed fields and reference-table columns, and the Arrow
//! type each is held in: the one vocabulary decoding, reference tables and SQL
//! share.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use serde::Deserialize;

/// Value type of a feed field and the Arrow type it decodes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Float,
    Bool,
    Timestamp,
    StringList,
}

impl FieldType {
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Int => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::Bool => DataType::Boolean,
            FieldType::Timestamp => timestamp_type(),
            FieldType::StringList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        }
    }

    /// How the type is named in JSON terms, for error messages.
    pub fn json_name(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Int => "an integer",
            FieldType::Float => "a number",
            FieldType::Bool => "true or false",
            FieldType::Timestamp => "an RFC 3339 time string",
            FieldType::StringList => "an array of strings",
        }
    }
}

/// The Arrow type of event times and window bounds: UTC milliseconds.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
