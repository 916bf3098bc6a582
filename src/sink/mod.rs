//! Sinks: where results go. Window rows and dead letters are written as JSON
//! lines (`windows.jsonl`, `dead_letters.jsonl`) in replay; the demo keeps them in
//! memory to summarise. Output is deterministic: rows of a window are sorted unless
//! the query orders them itself.

pub mod alertmanager;
pub mod kafka;
pub mod observe;
pub mod view;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::Array;
use serde_json::{Map, Value};

use crate::alert::Alert;
use crate::core::deadletter::DeadLetter;
use crate::core::key::Cell;
use crate::core::time::format_rfc3339;
use crate::error::{Error, Result};
use crate::query::tables::{WINDOW_END, WINDOW_START};
use crate::task::TaskEvent;
use crate::window::WindowResult;

/// Receives what the engine produces.
pub trait Sink {
    /// One closed window's rows; `ordered` says the query ordered them itself.
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()>;
    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()>;
    /// An alert raised by a pipeline's detector or rules.
    fn alert(&mut self, alert: &Alert) -> Result<()>;
    /// A change to a response task.
    fn task(&mut self, event: &TaskEvent) -> Result<()>;
    /// Records of `feed` decoded into events; for metrics, so ignored by default.
    /// The detector's judgement of each key in a window (for the console's plots).
    fn points(&mut self, _pipeline: &str, _findings: &[crate::alert::Finding]) -> Result<()> {
        Ok(())
    }

    fn ingested(&mut self, _feed: &str, _events: u64) -> Result<()> {
        Ok(())
    }
    /// The pipelines now running (name, definition fingerprint), at the start
    /// and after a redeploy (`result`: applied or refused); for metrics.
    fn definitions(&mut self, _running: &[(String, String)], _result: Option<&str>) {}
    /// How a pipeline moved in one step; for metrics, so ignored by default.
    fn progress(&mut self, _progress: &Progress) -> Result<()> {
        Ok(())
    }
}

/// Default bound on one output record (alert, task event, dead letter), in bytes:
/// well below Kafka's default `message.max.bytes` of 1,000,000.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 256 << 10;

/// Makes a JSON record fit in `max` bytes by cutting its longest string values,
/// each marked with how much was cut; ids and numbers stay as they are. Returns
/// the record's bytes and whether anything was cut, or `None` when even that
/// cannot make it fit.
pub fn fit(value: &mut Value, max: usize) -> Option<(Vec<u8>, bool)> {
    let bytes = serde_json::to_vec(value).ok()?;
    if bytes.len() <= max {
        return Some((bytes, false));
    }
    // Cut ever harder: long free text first, then anything longer than a label.
    for keep in [4096, 1024, 256, 64] {
        cut_strings(value, keep);
        let bytes = serde_json::to_vec(value).ok()?;
        if bytes.len() <= max {
            return Some((bytes, true));
        }
    }
    None
}

fn cut_strings(value: &mut Value, keep: usize) {
    match value {
        Value::String(s) if s.len() > keep => {
            let end = s.floor_char_boundary(keep);
            let cut = s.len() - end;
            s.truncate(end);
            s.push_str(&format!("…[{cut} bytes cut]"));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, keep)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, keep)),
        _ => {}
    }
}

/// One pipeline's step over a chunk of input (or an input going idle).
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub pipeline: &'a str,
    /// The watermark after the step, once every input has had an event and while some is open.
    pub watermark: Option<crate::core::time::Millis>,
    /// Windows the step closed.
    pub closed: usize,
    /// Wall time of the step, from the input that moved the watermark to the
    /// closed windows' alerts handed to the sink.
    pub latency: std::time::Duration,
    /// Series of the last closed window judged while warming up, if the pipeline detects.
    pub warming_up: Option<u64>,
}

/// The JSON objects of a window's rows: `pipeline`, `window_start`, `window_end`,
/// then the query's columns (its own window columns are not repeated).
pub fn window_rows(window: &WindowResult, ordered: bool) -> Vec<Map<String, Value>> {
    let mut rows = Vec::with_capacity(window.num_rows());
    for batch in &window.batches {
        let schema = batch.schema();
        let own = |name: &str| schema.index_of(name).ok().filter(|_| window.per_row);
        let (own_start, own_end) = (own(WINDOW_START), own(WINDOW_END));
        for r in 0..batch.num_rows() {
            let mut obj = Map::new();
            obj.insert(
                "pipeline".into(),
                Value::String(window.pipeline.to_string()),
            );
            let bound = |col: Option<usize>, default: i64| match col {
                Some(c) => json_value(batch.column(c).as_ref(), r),
                None => Value::String(format_rfc3339(default)),
            };
            obj.insert(WINDOW_START.into(), bound(own_start, window.start));
            obj.insert(WINDOW_END.into(), bound(own_end, window.end));
            for (c, field) in schema.fields().iter().enumerate() {
                if field.name() == WINDOW_START || field.name() == WINDOW_END {
                    continue;
                }
                obj.insert(
                    field.name().clone(),
                    json_value(batch.column(c).as_ref(), r),
                );
            }
            rows.push(obj);
        }
    }
    if !ordered {
        rows.sort_by_cached_key(|o| Value::Object(o.clone()).to_string());
    }
    rows
}

/// One Arrow value as JSON. Times become RFC 3339 strings; non-finite floats become null.
pub fn json_value(array: &dyn Array, row: usize) -> Value {
    Cell::from_arrow(array, row).into()
}

/// Writes `windows.jsonl` and `dead_letters.jsonl` into a directory.
pub struct JsonlSink {
    dir: PathBuf,
    windows: BufWriter<File>,
    dead: BufWriter<File>,
    alerts: BufWriter<File>,
    tasks: BufWriter<File>,
    pub window_rows: u64,
    pub dead_letters: u64,
}

impl JsonlSink {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let open = |name: &str| {
            let p = dir.join(name);
            File::create(&p)
                .map(BufWriter::new)
                .map_err(|e| Error::io(p, e))
        };
        Ok(JsonlSink {
            dir: dir.to_path_buf(),
            windows: open("windows.jsonl")?,
            dead: open("dead_letters.jsonl")?,
            alerts: open("alerts.jsonl")?,
            tasks: open("tasks.jsonl")?,
            window_rows: 0,
            dead_letters: 0,
        })
    }

    pub fn flush(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        self.windows.flush().map_err(|e| Error::io(&dir, e))?;
        self.alerts.flush().map_err(|e| Error::io(&dir, e))?;
        self.tasks.flush().map_err(|e| Error::io(&dir, e))?;
        self.dead.flush().map_err(|e| Error::io(&dir, e))
    }
}

impl Sink for JsonlSink {
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()> {
        for row in window_rows(window, ordered) {
            serde_json::to_writer(&mut self.windows, &row)
                .map_err(|e| Error::Other(e.to_string()))?;
            self.windows
                .write_all(b"\n")
                .map_err(|e| Error::io(&self.dir, e))?;
            self.window_rows += 1;
        }
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        serde_json::to_writer(&mut self.dead, dead).map_err(|e| Error::Other(e.to_string()))?;
        self.dead
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.dir, e))?;
        self.dead_letters += 1;
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        serde_json::to_writer(&mut self.alerts, alert).map_err(|e| Error::Other(e.to_string()))?;
        self.alerts
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.dir, e))
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        serde_json::to_writer(&mut self.tasks, event).map_err(|e| Error::Other(e.to_string()))?;
        self.tasks
            .write_all(b"\n")
            .map_err(|e| Error::io(&self.dir, e))
    }
}

/// Keeps everything in memory (demo, tests).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub windows: Vec<(WindowResult, bool)>,
    pub dead: Vec<DeadLetter>,
    pub alerts: Vec<Alert>,
    pub tasks: Vec<TaskEvent>,
}

impl Sink for MemorySink {
    fn window(&mut self, window: &WindowResult, ordered: bool) -> Result<()> {
        self.windows.push((window.clone(), ordered));
        Ok(())
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        self.dead.push(dead.clone());
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> Result<()> {
        self.alerts.push(alert.clone());
        Ok(())
    }

    fn task(&mut self, event: &TaskEvent) -> Result<()> {
        self.tasks.push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_too_large_is_cut_to_fit_and_says_so() {
        let big = "街".repeat(200_000);
        let mut v = serde_json::json!({"alert_id": "a1", "labels": {"street": big}, "value": 3});
        let (bytes, cut) = fit(&mut v, 10_000).expect("fits");
        assert!(cut);
        assert_eq!(bytes, v.to_string().into_bytes());
        assert!(bytes.len() <= 10_000, "{}", bytes.len());
        assert_eq!(v["alert_id"], "a1");
        assert_eq!(v["value"], 3);
        assert!(
            v["labels"]["street"]
                .as_str()
                .unwrap()
                .ends_with("bytes cut]")
        );
        let mut small = serde_json::json!({"a": "b"});
        assert_eq!(
            fit(&mut small, 100),
            Some((br#"{"a":"b"}"#.to_vec(), false))
        );
        // Thousands of short values cannot be cut enough.
        let mut many = Value::Array((0..10_000).map(|i| Value::from(i.to_string())).collect());
        assert_eq!(fit(&mut many, 1000), None);
    }
}
