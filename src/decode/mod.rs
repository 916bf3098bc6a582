//! Decoding: raw JSON lines of one feed into an Arrow [`RecordBatch`] typed by the
//! feed's schema. Each line is parsed straight into the column builders' inputs
//! (strings are borrowed from the line when they need no unescaping) — by a
//! hand-written fast path for the common flat record, else by serde_json — validated
//! against the schema, and either appended as a row or turned into a
//! [`DeadLetter`] with its reason. PII fields are replaced by a keyed hash here,
//! so personal data never reaches windows, alerts, logs or metrics.

use std::fmt;
use std::sync::Arc;

use arrayvec::ArrayVec;
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;

use crate::core::chunk::Chunk;
use crate::core::deadletter::{DeadLetter, Reason};
use crate::core::time::{Clock, MINUTE, Millis, format_rfc3339, parse_rfc3339};
use crate::schema::{FeedSchema, FieldDef, FieldType, MAX_FIELDS};

mod json;
mod pool;
mod redact;
mod scan;
#[cfg(test)]
mod scan_tests;

pub use crate::core::pseudonym::pseudonym;
pub use pool::{DecodePool, DecodeSpec, Pending};
pub use redact::{Redactor, WITHHELD_FIELDS, key_fingerprint, redacted_command, withheld};

use json::{Slot, TopLevel};

/// Default limit on one record's size.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Default limit on one string value: a longer one would reach alert labels and
/// outputs, and no field of the feeds needs more.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 64 << 10;

/// Default for how far ahead of the processing clock an event may be dated: clocks
/// of the sending systems drift by seconds, not by minutes.
pub const DEFAULT_MAX_FUTURE: Millis = 5 * MINUTE;

/// Most bytes of a dead letter's `raw`: enough to find the record, never enough to
/// make an output too large.
pub const MAX_RAW_BYTES: usize = 4096;

/// Most bytes of an event id a dead letter repeats.
const MAX_EVENT_ID_BYTES: usize = 128;

/// Decoder settings shared by all feeds.
#[derive(Clone)]
pub struct DecodeOptions {
    pub max_record_bytes: usize,
    /// Longest string value accepted, in bytes.
    pub max_field_bytes: usize,
    /// Key of the keyed hash (BLAKE3) that replaces PII values.
    pub pii_key: [u8; 32],
    /// Events dated more than `max_future` after `clock.now()` are dead letters.
    pub clock: Clock,
    pub max_future: Millis,
}

impl fmt::Debug for DecodeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("DecodeOptions")
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("clock", &self.clock)
            .field("max_future", &self.max_future)
            .finish_non_exhaustive()
    }
}

impl DecodeOptions {
    /// Derives the PII key from a secret (config or `YUJING_PII_KEY`).
    pub fn with_secret(secret: &str) -> Self {
        DecodeOptions {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            pii_key: blake3::derive_key("yujing 2026 pii pseudonym key", secret.as_bytes()),
            clock: Clock::Wall,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }

    /// The same limits for task commands, read against the clock now.
    pub fn command_limits(&self) -> crate::task::command::Limits {
        crate::task::command::Limits {
            max_bytes: self.max_record_bytes,
            max_text_bytes: self.max_field_bytes,
            latest: self.clock.now().saturating_add(self.max_future),
        }
    }
}

/// A decoded chunk: the rows that passed, and for each row the chunk line it came from.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub rows: Vec<u32>,
    pub dead: Vec<DeadLetter>,
    /// For dead letters of rows refused later.
    pub redactor: Redactor,
}

enum Builder {
    String(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(ty: FieldType, cap: usize) -> Self {
        match ty {
            FieldType::String => Builder::String(StringBuilder::with_capacity(cap, cap * 12)),
            FieldType::Int => Builder::Int(Int64Builder::with_capacity(cap)),
            FieldType::Float => Builder::Float(Float64Builder::with_capacity(cap)),
            FieldType::Bool => Builder::Bool(BooleanBuilder::with_capacity(cap)),
            FieldType::Timestamp => {
                Builder::Time(TimestampMillisecondBuilder::with_capacity(cap).with_timezone("UTC"))
            }
            FieldType::StringList => Builder::List(ListBuilder::new(StringBuilder::new())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::String(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }
}

/// Turns raw lines of one feed into Arrow rows and dead letters.
pub struct Decoder {
    schema: Arc<FeedSchema>,
    options: DecodeOptions,
    builders: Vec<Builder>,
    /// The fields whose column is built; the others are validated like every
    /// field but come out as nulls, because no pipeline reads them.
    build: Arc<[bool]>,
    rows: Vec<u32>,
    /// Latest event time accepted in the chunk being decoded.
    future_limit: Millis,
    redactor: Redactor,
}

struct Rejection {
    reason: Reason,
    field: Option<String>,
    detail: String,
}

fn reject(reason: Reason, field: Option<&str>, detail: String) -> Rejection {
    Rejection {
        reason,
        field: field.map(str::to_string),
        detail,
    }
}

impl Decoder {
    pub fn new(schema: Arc<FeedSchema>, options: DecodeOptions) -> Self {
        // Schemas with more fields are refused when they are loaded.
        debug_assert!(schema.fields.len() <= MAX_FIELDS);
        let redactor = Redactor {
            schema: schema.clone(),
            pii_key: options.pii_key,
            fingerprint: key_fingerprint(&options.pii_key).into(),
            max_record_bytes: options.max_record_bytes,
        };
        let builders = schema
            .fields
            .iter()
            .map(|f| Builder::new(f.ty, 8192))
            .collect();
        Decoder {
            build: schema.fields.iter().map(|_| true).collect(),
            schema,
            options,
            builders,
            rows: Vec::new(),
            future_limit: Millis::MAX,
            redactor,
        }
    }

    pub fn schema(&self) -> &Arc<FeedSchema> {
        &self.schema
    }

    /// What a worker thread needs to decode as this decoder does.
    pub fn spec(&self) -> DecodeSpec {
        DecodeSpec {
            schema: self.schema.clone(),
            options: self.options.clone(),
            build: self.build.clone(),
        }
    }

    /// Builds only the columns `read` marks (see [`columns_to_build`]).
    pub fn building(mut self, read: Arc<[bool]>) -> Self {
        if read.len() == self.schema.fields.len() {
            self.build = read;
        }
        self
    }

    /// Decodes every line of the chunk.
    pub fn decode(&mut self, chunk: &Chunk) -> Decoded {
        // One reading of the clock per chunk: cheap, and a chunk is milliseconds of input.
        self.future_limit = self
            .options
            .clock
            .now()
            .saturating_add(self.options.max_future);
        let mut dead = Vec::new();
        for i in 0..chunk.len() {
            let raw = chunk.raw(i);
            if let Err((rejection, event_id)) = self.decode_line(raw) {
                dead.push(DeadLetter {
                    feed: self.schema.feed.clone(),
                    reason: rejection.reason,
                    field: rejection.field,
                    detail: rejection.detail,
                    raw: self.redactor.redacted_raw(raw),
                    source: chunk.origin(i),
                    event_id,
                    pipeline: None,
                    pii_key: Some(self.redactor.fingerprint.clone()),
                });
            } else {
                self.rows.push(i as u32);
            }
        }
        let rows = self.rows.len();
        let columns = self
            .builders
            .iter_mut()
            .zip(self.schema.arrow.fields())
            .zip(self.build.iter())
            .map(|((b, f), build)| match build {
                true => b.finish(),
                false => arrow::array::new_null_array(f.data_type(), rows),
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.arrow.clone(), columns)
            .expect("decoder builds columns of the schema's types");
        Decoded {
            batch,
            rows: std::mem::take(&mut self.rows),
            dead,
            redactor: self.redactor.clone(),
        }
    }

    fn decode_line(&mut self, raw: &[u8]) -> Result<(), (Rejection, Option<String>)> {
        let text = self.admit(raw).map_err(|r| (r, None))?;
        // One slot per schema field, on the stack: nothing to allocate or free per record.
        let mut slots: ArrayVec<Slot<'_>, MAX_FIELDS> =
            self.schema.fields.iter().map(|_| Slot::Missing).collect();
        self.parse(text, &mut slots).map_err(|r| (r, None))?;
        // Validate everything before appending anything, so a bad record leaves no trace in the batch.
        for (i, f) in self.schema.fields.iter().enumerate() {
            if let Err(r) = self.check_field(i, f, &mut slots[i]) {
                // The id is copied only for a dead letter, and cut: it is for
                // finding the record, and a long one would fill the dead letter.
                let event_id = match &slots[self.schema.event_id_index] {
                    Slot::Str(s) => Some(truncate(s, MAX_EVENT_ID_BYTES).to_string()),
                    _ => None,
                };
                return Err((r, event_id));
            }
        }
        self.append(&mut slots);
        Ok(())
    }

    /// The line as text, if it is within the size limit, not blank and UTF-8.
    fn admit<'a>(&self, raw: &'a [u8]) -> Result<&'a str, Rejection> {
        if raw.len() > self.options.max_record_bytes {
            let detail = format!(
                "record is {} bytes; the limit is {}",
                raw.len(),
                self.options.max_record_bytes
            );
            return Err(reject(Reason::TooLarge, None, detail));
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(reject(Reason::InvalidJson, None, "empty line".into()));
        }
        // Validate UTF-8 once for the whole line; the parser then need not per string.
        simdutf8::basic::from_utf8(raw)
            .map_err(|_| reject(Reason::InvalidJson, None, "not UTF-8".into()))
    }

    /// Parses a JSON object into the schema's slots.
    fn parse<'de>(
        &self,
        text: &'de str,
        slots: &mut ArrayVec<Slot<'de>, MAX_FIELDS>,
    ) -> Result<(), Rejection> {
        if scan::scan(text, &self.schema, &self.build, slots).is_some() {
            return Ok(());
        }
        // Not the common shape, or not valid: serde_json reads it again from
        // clean slots, and words the error if there is one.
        slots.iter_mut().for_each(|s| *s = Slot::Missing);
        match json::read(text, &self.schema, &self.build, slots) {
            Err(e) => Err(reject(Reason::InvalidJson, None, e.to_string())),
            Ok(TopLevel::NotObject(kind)) => Err(reject(
                Reason::NotObject,
                None,
                format!("expected a JSON object, found {kind}"),
            )),
            Ok(TopLevel::Object) => Ok(()),
        }
    }

    /// Checks one field's slot against its definition: present if required,
    /// within the size limit, of its type and range; times parsed and not too
    /// far in the future.
    fn check_field(&self, i: usize, f: &FieldDef, slot: &mut Slot<'_>) -> Result<(), Rejection> {
        match slot {
            Slot::Missing | Slot::Null => {
                if f.required {
                    let what = if matches!(slot, Slot::Null) {
                        "null"
                    } else {
                        "absent"
                    };
                    return Err(reject(
                        Reason::MissingField,
                        Some(&f.name),
                        format!("required field `{}` is {what}", f.name),
                    ));
                }
                return Ok(());
            }
            _ => {}
        }
        let bytes = match &*slot {
            Slot::Str(v) => v.len(),
            Slot::List(items) => items.iter().map(|v| v.len()).sum(),
            Slot::CheckedList(bytes) => *bytes,
            _ => 0,
        };
        if bytes > self.options.max_field_bytes {
            return Err(reject(
                Reason::TooLarge,
                Some(&f.name),
                format!(
                    "`{}` is {} bytes; the limit is {}",
                    f.name, bytes, self.options.max_field_bytes
                ),
            ));
        }
        self.check_type(i, f, slot)
    }

    /// The slot is of the field's type and within its range.
    fn check_type(&self, i: usize, f: &FieldDef, slot: &mut Slot<'_>) -> Result<(), Rejection> {
        let bad_type = |slot: &Slot| {
            reject(
                Reason::BadType,
                Some(&f.name),
                format!(
                    "`{}` must be {}, found {}",
                    f.name,
                    f.ty.json_name(),
                    slot.json_kind()
                ),
            )
        };
        let ok = match (f.ty, &*slot) {
            (FieldType::String, Slot::Str(_)) => true,
            (FieldType::Bool, Slot::Bool(_)) => true,
            (FieldType::StringList, Slot::List(_) | Slot::CheckedList(_)) => true,
            (FieldType::Int, Slot::Int(v)) => {
                self.check_range(f, *v as f64)?;
                true
            }
            (FieldType::Float, Slot::Int(v)) => {
                let v = *v as f64;
                self.check_range(f, v)?;
                *slot = Slot::Float(v);
                true
            }
            (FieldType::Float, Slot::Float(v)) => {
                self.check_range(f, *v)?;
                true
            }
            (FieldType::Int, Slot::BigInt) => {
                return Err(reject(
                    Reason::OutOfRange,
                    Some(&f.name),
                    format!("`{}` does not fit in 64 bits", f.name),
                ));
            }
            (FieldType::Timestamp, Slot::Str(s)) => {
                *slot = Slot::Time(self.check_time(i, f, s)?);
                true
            }
            _ => false,
        };
        if !ok {
            return Err(bad_type(slot));
        }
        Ok(())
    }

    /// A time field's value, if RFC 3339 and, for the event time, not too far ahead.
    fn check_time(&self, i: usize, f: &FieldDef, s: &str) -> Result<Millis, Rejection> {
        match parse_rfc3339(s) {
            Some(t) if i == self.schema.event_time_index && t > self.future_limit => Err(reject(
                Reason::Future,
                Some(&f.name),
                // No clock reading in the text: a replay's output stays the
                // same from one run to the next.
                format!(
                    "`{}` {} is more than {} ahead of the processing clock",
                    f.name,
                    format_rfc3339(t),
                    crate::core::time::format_duration(self.options.max_future),
                ),
            )),
            Some(t) => Ok(t),
            None => Err(reject(
                Reason::BadTime,
                Some(&f.name),
                format!(
                    "`{}` is not an RFC 3339 time: {:?}",
                    f.name,
                    truncate(s, 64)
                ),
            )),
        }
    }

    /// Appends a checked record's slots to the column builders (PII fields as
    /// keyed hashes).
    fn append(&mut self, slots: &mut ArrayVec<Slot<'_>, MAX_FIELDS>) {
        let fields = &self.schema.fields;
        for (i, f) in fields.iter().enumerate() {
            if !self.build[i] {
                continue;
            }
            let slot = std::mem::take(&mut slots[i]);
            match (&mut self.builders[i], slot) {
                (Builder::String(b), Slot::Str(s)) if f.pii => {
                    b.append_value(&*pseudonym(&self.options.pii_key, &s));
                }
                (Builder::List(b), Slot::List(items)) if f.pii => {
                    for item in items {
                        b.values()
                            .append_value(&*pseudonym(&self.options.pii_key, &item));
                    }
                    b.append(true);
                }
                (Builder::String(b), Slot::Str(s)) => b.append_value(s),
                (Builder::String(b), _) => b.append_null(),
                (Builder::Int(b), Slot::Int(v)) => b.append_value(v),
                (Builder::Int(b), _) => b.append_null(),
                (Builder::Float(b), Slot::Float(v)) => b.append_value(v),
                (Builder::Float(b), _) => b.append_null(),
                (Builder::Bool(b), Slot::Bool(v)) => b.append_value(v),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Time(b), Slot::Time(v)) => b.append_value(v),
                (Builder::Time(b), _) => b.append_null(),
                (Builder::List(b), Slot::List(items)) => {
                    for item in items {
                        b.values().append_value(item);
                    }
                    b.append(true);
                }
                (Builder::List(b), _) => b.append_null(),
            }
        }
    }

    fn check_range(&self, f: &FieldDef, v: f64) -> Result<(), Rejection> {
        let below = f.min.is_some_and(|m| v < m);
        let above = f.max.is_some_and(|m| v > m);
        if below || above || v.is_nan() {
            let range = match (f.min, f.max) {
                (Some(a), Some(b)) => format!("between {a} and {b}"),
                (Some(a), None) => format!("at least {a}"),
                (None, Some(b)) => format!("at most {b}"),
                (None, None) => "a number".into(),
            };
            return Err(Rejection {
                reason: Reason::OutOfRange,
                field: Some(f.name.clone()),
                detail: format!("`{}` is {v}; it must be {range}", f.name),
            });
        }
        Ok(())
    }
}

/// Which of a feed's fields must be built as columns, given the columns each
/// pipeline reading the feed reads (`None`: all): those, plus the event id and
/// time (dead letters of refused rows name them) and the required fields
/// (their columns may not hold nulls).
pub fn columns_to_build<'a>(
    schema: &FeedSchema,
    reads: impl IntoIterator<Item = &'a Option<std::collections::BTreeSet<usize>>>,
) -> Arc<[bool]> {
    let mut build: Vec<bool> = schema.fields.iter().map(|f| f.required).collect();
    build[schema.event_id_index] = true;
    build[schema.event_time_index] = true;
    for read in reads {
        match read {
            Some(columns) => {
                for &c in columns {
                    if let Some(b) = build.get_mut(c) {
                        *b = true;
                    }
                }
            }
            None => build.iter_mut().for_each(|b| *b = true),
        }
    }
    build.into()
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

#[cfg(test)]
mod tests;
