//! Dead letters: every record the engine cannot use, with the reason, the field
//! concerned, the raw text and where it came from. Nothing is dropped silently.

use serde::Serialize;

use crate::core::time::Millis;

/// Why a record went to the dead-letter output. The names are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not JSON (or not UTF-8, or an empty line).
    InvalidJson,
    /// JSON, but not an object.
    NotObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    BadType,
    /// A number outside the range the schema allows.
    OutOfRange,
    /// `event_time` (or another time field) is not RFC 3339.
    BadTime,
    /// The record is longer than the configured limit.
    TooLarge,
    /// Every window the event belongs to had already closed.
    Late,
    /// A well-formed task update the task's state does not allow (unknown task,
    /// acknowledging a done task).
    Rejected,
    /// Dated more than `max_future` ahead of the processing clock: it never moves
    /// a watermark or the task clock.
    Future,
    /// It would open a key past the pipeline's `max_keys` in its window.
    TooManyKeys,
    /// The pipeline's SQL failed at run time on the window it fell in; the other
    /// pipelines went on.
    PipelineError,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::InvalidJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::BadType,
        Reason::OutOfRange,
        Reason::BadTime,
        Reason::TooLarge,
        Reason::Late,
        Reason::Rejected,
        Reason::Future,
        Reason::TooManyKeys,
        Reason::PipelineError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::BadType => "bad_type",
            Reason::OutOfRange => "out_of_range",
            Reason::BadTime => "bad_time",
            Reason::TooLarge => "too_large",
            Reason::Late => "late",
            Reason::Rejected => "rejected",
            Reason::Future => "future",
            Reason::TooManyKeys => "too_many_keys",
            Reason::PipelineError => "pipeline_error",
        }
    }
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Origin {
    File {
        file: String,
        line: u64,
    },
    Kafka {
        topic: String,
        partition: i32,
        offset: i64,
    },
    Generated {
        generator: String,
        seq: u64,
    },
    /// A window of a pipeline, for errors that concern no single record.
    Window {
        #[serde(with = "crate::core::time::rfc3339")]
        window_start: Millis,
        #[serde(with = "crate::core::time::rfc3339")]
        window_end: Millis,
    },
}

/// One unusable record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub feed: String,
    pub reason: Reason,
    pub field: Option<String>,
    pub detail: String,
    pub raw: String,
    pub source: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The pipeline that found the record late; absent for decode errors, which concern every pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Fingerprint of the PII key that made the pseudonyms in `raw`, so a key
    /// rotation shows; absent for inputs that have no PII fields (task updates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pii_key: Option<std::sync::Arc<str>>,
}

impl DeadLetter {
    /// A dead letter of `feed` (or another input, such as task updates) that
    /// names no field, event or pipeline; the builders below add them.
    pub fn new(
        feed: impl Into<String>,
        reason: Reason,
        detail: impl Into<String>,
        raw: String,
        source: Origin,
    ) -> Self {
        DeadLetter {
            feed: feed.into(),
            reason,
            field: None,
            detail: detail.into(),
            raw,
            source,
            event_id: None,
            pipeline: None,
            pii_key: None,
        }
    }

    pub fn field(mut self, field: Option<String>) -> Self {
        self.field = field;
        self
    }

    pub fn event_id(mut self, event_id: Option<String>) -> Self {
        self.event_id = event_id;
        self
    }

    pub fn pii_key(mut self, fingerprint: std::sync::Arc<str>) -> Self {
        self.pii_key = Some(fingerprint);
        self
    }

    pub fn pipeline(mut self, pipeline: &str) -> Self {
        self.pipeline = Some(pipeline.to_string());
        self
    }
}
