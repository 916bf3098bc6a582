//! What a dead letter may show of a raw line: the rule that keeps personal
//! data out of dead letters, for feed records and for task commands alike
//! (docs/security.md), and the pseudonyms and key fingerprint it uses.

use std::fmt;
use std::sync::Arc;

use super::{MAX_RAW_BYTES, truncate};
use crate::core::pseudonym::pseudonym;
use crate::schema::FeedSchema;

/// The `raw` of a task command's dead letter, by the same rule as the feeds'
/// (see [`Redactor`]): the object it parsed to with its free-text `note`
/// withheld, or only the length of a line that is not an object; cut to
/// [`MAX_RAW_BYTES`].
pub fn redacted_command(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut map)) => {
            if let Some(note) = map.get_mut("note") {
                *note = serde_json::Value::String(withheld(note.to_string().len()));
            }
            let text = serde_json::Value::Object(map).to_string();
            truncate(&text, MAX_RAW_BYTES).to_string()
        }
        _ => withheld(text.len()),
    }
}

/// Makes raw lines safe for dead letters. Decoded batches carry one, so a stage
/// that refuses a row later (late, a key too many) can describe it without
/// going back to the decoder.
///
/// The rule (docs/security.md): a dead letter shows a raw line only as the
/// JSON object it parsed to, holding the schema's fields alone — every `pii`
/// field's value, whatever its JSON type, replaced by its keyed hash, every
/// `personal` free-text field by its length, and fields the schema does not
/// know by their count. A line that does not parse as a JSON object (cut
/// short, not UTF-8, too large, an array or a number) shows nothing of its
/// text: a value in it cannot be told from a key.
#[derive(Clone)]
pub struct Redactor {
    pub(super) schema: Arc<FeedSchema>,
    pub(super) pii_key: [u8; 32],
    /// [`key_fingerprint`] of the key, for the dead letters it redacts.
    pub fingerprint: Arc<str>,
    pub(super) max_record_bytes: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Redactor")
            .field("feed", &self.schema.feed)
            .finish_non_exhaustive()
    }
}

/// The key under which a redacted raw line counts the fields the schema does not know.
pub const WITHHELD_FIELDS: &str = "_withheld_fields";

impl Redactor {
    /// The schema of the rows it describes.
    pub fn schema(&self) -> &FeedSchema {
        &self.schema
    }

    /// The raw text for a dead letter, by the rule above, cut to [`MAX_RAW_BYTES`].
    pub fn redacted_raw(&self, raw: &[u8]) -> String {
        let parsed = (raw.len() <= self.max_record_bytes)
            .then(|| serde_json::from_slice::<serde_json::Value>(raw).ok())
            .flatten();
        let Some(serde_json::Value::Object(map)) = parsed else {
            return withheld(raw.len());
        };
        let mut kept = serde_json::Map::new();
        let mut unknown = 0usize;
        for (name, value) in map {
            let Some(f) = self.schema.index_of(&name).map(|i| &self.schema.fields[i]) else {
                unknown += 1;
                continue;
            };
            let value = if f.pii {
                pseudonym_value(&self.pii_key, &value)
            } else if f.personal {
                serde_json::Value::String(withheld(value.to_string().len()))
            } else {
                value
            };
            kept.insert(name, value);
        }
        if unknown > 0 {
            kept.insert(WITHHELD_FIELDS.into(), unknown.into());
        }
        let text = serde_json::Value::Object(kept).to_string();
        truncate(&text, MAX_RAW_BYTES).to_string()
    }
}

/// What a dead letter shows in place of text it may not: its length only.
pub fn withheld(bytes: usize) -> String {
    format!("[withheld: {bytes} bytes]")
}

/// A PII field's JSON value with every string, number and boolean in it
/// replaced by its pseudonym (a string the decoder would have hashed hashes
/// the same), so no part of the value survives.
fn pseudonym_value(key: &[u8; 32], value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(pseudonym(key, s).to_string()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| pseudonym_value(key, v)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (pseudonym(key, k).to_string(), pseudonym_value(key, v)))
                .collect(),
        ),
        other => Value::String(pseudonym(key, &other.to_string()).to_string()),
    }
}

/// The fingerprint of a PII key: 8 hex digits that change when the key does,
/// so outputs say which key made their pseudonyms, and tell nothing of it.
pub fn key_fingerprint(key: &[u8; 32]) -> String {
    blake3::keyed_hash(key, b"yujing pii key fingerprint").to_hex()[..8].to_string()
}
