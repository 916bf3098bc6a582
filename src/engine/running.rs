//! One pipeline as the engine runs it: its window operator and detector, and
//! what it emits — closed windows, their alerts (and the compounds' and tasks'
//! share of them), failed windows and refused rows as dead letters.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{StringArray, TimestampMillisecondArray};

use super::EngineStats;
use crate::core::deadletter::{DeadLetter, Origin, Reason};
use crate::core::time::{Millis, format_duration, format_rfc3339};
use crate::decode::Decoded;
use crate::detect::compound::CompoundDetector;
use crate::detect::runner::PipelineDetector;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::schema::EVENT_TIME;
use crate::sink::{Progress, Sink};
use crate::source::Chunk;
use crate::task::TaskManager;
use crate::window::{Emitted, WindowOperator, WindowResult};

pub(super) struct RunningPipeline {
    pub(super) pipeline: Pipeline,
    pub(super) name: Arc<str>,
    pub(super) operator: WindowOperator,
    pub(super) detector: Option<PipelineDetector>,
}

impl RunningPipeline {
    /// Windows whose SQL failed at run time become dead letters naming the
    /// pipeline; the pipeline and the others go on.
    pub(super) fn report_failures(
        &mut self,
        stats: &mut EngineStats,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let failures = self.operator.take_failures();
        if failures.is_empty() {
            return Ok(());
        }
        let feeds: Vec<&str> = self
            .pipeline
            .query
            .feeds
            .iter()
            .map(String::as_str)
            .collect();
        let feed = feeds.join("+");
        for f in failures {
            tracing::warn!(pipeline = %self.name, error = %f.error, "a window failed");
            let error = crate::decode::truncate(&f.error, 1024);
            let detail = format!(
                "the pipeline's SQL failed on the window {} – {}: {error}",
                format_rfc3339(f.start),
                format_rfc3339(f.end)
            );
            let window = Origin::Window {
                window_start: f.start,
                window_end: f.end,
            };
            sink.dead_letter(
                &DeadLetter::new(&feed, Reason::PipelineError, detail, String::new(), window)
                    .pipeline(&self.name),
            )?;
            stats.dead_letters += 1;
        }
        Ok(())
    }

    /// Writes closed windows and runs the pipeline's detector over them, then
    /// reports the step's progress (`started`: when its input arrived).
    pub(super) fn emit(
        &mut self,
        stats: &mut EngineStats,
        sink: &mut dyn Sink,
        windows: &[WindowResult],
        compounds: &mut [CompoundDetector],
        tasks: &mut Option<TaskManager>,
        started: Instant,
    ) -> Result<()> {
        self.report_failures(stats, sink)?;
        let mut warming_up = None;
        for w in windows {
            let _span = tracing::debug_span!(
                "window",
                start = %format_rfc3339(w.start),
                end = %format_rfc3339(w.end),
                rows = w.num_rows()
            )
            .entered();
            // A window whose rows were all filtered out has nothing to show, but its
            // keys were quiet in it.
            if w.num_rows() > 0 {
                stats.windows += 1;
                stats.window_rows += w.num_rows() as u64;
                sink.window(w, self.pipeline.query.ordered)?;
            }
            if let Some(d) = &mut self.detector {
                let before = d.warming_up;
                let alerts = d.on_window(w).map_err(|source| Error::Query {
                    pipeline: self.name.to_string(),
                    source,
                })?;
                warming_up = Some(d.warming_up - before);
                sink.points(&self.name, d.last_findings())?;
                for a in &alerts {
                    tracing::info!(
                        pipeline = %a.pipeline,
                        level = a.level.as_str(),
                        status = ?a.status,
                        incident = %a.incident_id,
                        "alert"
                    );
                    stats.alerts += 1;
                    sink.alert(a)?;
                    if let Some(t) = tasks.as_mut() {
                        t.alert(a);
                    }
                    for c in compounds.iter_mut() {
                        for combined in c.on_alert(a) {
                            stats.alerts += 1;
                            sink.alert(&combined)?;
                            if let Some(t) = tasks.as_mut() {
                                t.alert(&combined);
                            }
                        }
                    }
                }
            }
        }
        let watermark = self.operator.watermark();
        sink.progress(&Progress {
            pipeline: &self.name,
            watermark: (watermark > Millis::MIN && watermark < Millis::MAX).then_some(watermark),
            closed: windows.len(),
            latency: started.elapsed(),
            warming_up,
        })
    }

    /// Dead letters for the rows of `decoded` this pipeline refused: late for
    /// every window (judged against `wm_before`), or a key too many.
    pub(super) fn refused(
        &self,
        emitted: &Emitted,
        decoded: &Decoded,
        chunk: &Chunk,
        wm_before: Millis,
    ) -> Vec<DeadLetter> {
        let schema = decoded.redactor.schema();
        let (time_col, event_id_col) = (schema.event_time_index, schema.event_id_index);
        let refused = emitted.late.iter().map(|r| (*r, Reason::Late)).chain(
            emitted
                .too_many_keys
                .iter()
                .map(|r| (*r, Reason::TooManyKeys)),
        );
        let mut letters = Vec::new();
        for (row, reason) in refused {
            let line = decoded.rows[row] as usize;
            let event_id = decoded
                .batch
                .column(event_id_col)
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(row).to_string());
            let t = decoded
                .batch
                .column(time_col)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .map(|a| a.value(row))
                .unwrap_or_default();
            let (field, detail) = match reason {
                Reason::Late => (
                    Some(EVENT_TIME.into()),
                    format!(
                        "event at {} is later than the allowed lateness of {}: every window it belongs to had closed (watermark {})",
                        format_rfc3339(t),
                        format_duration(self.pipeline.def.lateness),
                        format_rfc3339(wm_before.max(t)),
                    ),
                ),
                _ => (
                    None,
                    format!(
                        "its window already holds max_keys = {} keys; this event would open another",
                        self.pipeline.def.max_keys
                    ),
                ),
            };
            let raw = decoded.redactor.redacted_raw(chunk.raw(line));
            letters.push(
                DeadLetter::new(chunk.feed.as_ref(), reason, detail, raw, chunk.origin(line))
                    .field(field)
                    .event_id(event_id)
                    .pipeline(&self.name)
                    .pii_key(decoded.redactor.fingerprint.clone()),
            );
        }
        letters
    }
}
