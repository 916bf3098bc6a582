//! A window operator's state for checkpoints: its input clocks, how far it has
//! closed, and every open bin's partial aggregate states as Arrow IPC, so a
//! restart resumes from the offsets it had consumed and re-reads nothing older.
//!
//! Before a state is taken the operator is sealed: each bin's running segment
//! ends (its partial aggregates emit their states) and the bin's segments are
//! merged into one state row per key. Rows that arrive later start a new
//! segment, as they do after a window holding the bin closes.

use std::collections::BTreeMap;
use std::io::Cursor;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};

use super::{InputClock, StageBin, WindowOperator, bins};
use crate::core::stage::Stateful;
use crate::core::time::Millis;

/// See [`WindowOperator::state`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorState {
    inputs: BTreeMap<String, (Option<Millis>, bool)>,
    closed_upto: Millis,
    /// Open bins and their partial states. Checkpoints before format 4 have
    /// none: their resume offsets re-read the open bins' events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bins: Vec<SavedBin>,
    #[serde(default)]
    next_end: Option<Millis>,
    /// Session windows: the partial rows of sessions still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sessions: Option<ArrowBytes>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedBin {
    start: Millis,
    /// Hashes of the keys the bin holds (for the bound on keys per bin).
    #[serde(default)]
    keys: Vec<u64>,
    stages: Vec<SavedStage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SavedStage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    states: Option<ArrowBytes>,
}

/// Record batches as an Arrow IPC stream, base64 in the checkpoint's JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct ArrowBytes(String);

impl ArrowBytes {
    fn encode(batches: &[RecordBatch]) -> Result<Option<ArrowBytes>, DataFusionError> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &first.schema())?;
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
        drop(writer);
        Ok(Some(ArrowBytes(STANDARD.encode(bytes))))
    }

    fn decode(&self) -> Result<Vec<RecordBatch>, DataFusionError> {
        let bytes = STANDARD
            .decode(&self.0)
            .map_err(|e| DataFusionError::Internal(format!("window state: {e}")))?;
        let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    }
}

impl OperatorState {
    /// The latest event time this state has seen or closed windows up to.
    pub fn latest_time(&self) -> Option<Millis> {
        let seen = self.inputs.values().filter_map(|(t, _)| *t).max();
        let closed = (self.closed_upto != Millis::MIN).then_some(self.closed_upto);
        seen.max(closed)
    }

    /// Open bins held (for tests and benchmarks).
    pub fn open_bins(&self) -> usize {
        self.bins.len()
    }
}

impl WindowOperator {
    /// Ends every open bin's running segment and merges each bin's segments
    /// into one partial state per key, so [`Stateful::state`] holds them all.
    /// A bin whose states did not change since the last seal keeps its encoding:
    /// a checkpoint re-encodes only the bins that took rows.
    pub fn seal(&mut self) {
        for stages in self.bins.values_mut() {
            for (i, sb) in stages.iter_mut().enumerate() {
                seal_stage(&self.query.stages[i], sb, &self.pipeline);
            }
        }
    }
}

fn seal_stage(stage: &crate::query::PartialStage, sb: &mut StageBin, pipeline: &str) {
    if let Some(running) = sb.running.take() {
        sb.encoded = None;
        if let Err(e) = bins::finish_stage(running, &mut sb.states) {
            sb.failed = Some(e.to_string());
        }
    }
    if sb.failed.is_some() {
        return;
    }
    if sb.states.len() >= 2 {
        match stage.merge_states(&sb.states) {
            Ok(merged) => sb.states = merged.into_iter().collect(),
            // Unmerged segments are still right: the final aggregate merges them.
            Err(e) => tracing::warn!(error = %e, "merging a bin's partial states"),
        }
    }
    if sb.encoded.is_none() {
        sb.encoded = encode_or_fail(&sb.states, pipeline);
    }
}

impl Stateful for WindowOperator {
    type State = OperatorState;

    /// The input clocks, how far windows have closed and the open bins' states.
    /// A bin's running segment is not in it: [`WindowOperator::seal`] first.
    fn state(&self) -> OperatorState {
        let mut bins = Vec::with_capacity(self.bins.len());
        for (&start, stages) in &self.bins {
            debug_assert!(stages.iter().all(|s| s.running.is_none()), "seal first");
            let stages = stages
                .iter()
                .map(|sb| SavedStage {
                    failed: sb.failed.clone(),
                    states: match &sb.encoded {
                        Some(bytes) => Some(bytes.clone()),
                        None => encode_or_fail(&sb.states, &self.pipeline),
                    },
                })
                .collect();
            let keys = self
                .bin_keys
                .get(&start)
                .map(|k| k.iter().copied().collect())
                .unwrap_or_default();
            bins.push(SavedBin {
                start,
                keys,
                stages,
            });
        }
        OperatorState {
            inputs: self
                .inputs
                .iter()
                .map(|(k, c)| (k.clone(), (c.max_time, c.finished)))
                .collect(),
            closed_upto: self.closed_upto,
            bins,
            next_end: Some(self.next_end),
            sessions: encode_or_fail(&self.open_sessions, &self.pipeline),
        }
    }

    /// Restores clocks, progress and open bins. A bin whose states do not
    /// read fails its windows with the reason rather than closing them short.
    fn restore(&mut self, s: OperatorState) {
        self.inputs = s
            .inputs
            .into_iter()
            .map(|(k, (max_time, finished))| (k, InputClock { max_time, finished }))
            .collect();
        self.closed_upto = s.closed_upto;
        let stage_count = self.query.stages.len();
        for bin in s.bins {
            let mut stages: Vec<StageBin> = (0..stage_count).map(|_| StageBin::default()).collect();
            for (sb, saved) in stages.iter_mut().zip(bin.stages) {
                sb.failed = saved.failed;
                match saved.states.as_ref().map(ArrowBytes::decode).transpose() {
                    Ok(states) => sb.states = states.unwrap_or_default(),
                    Err(e) => sb.failed = Some(format!("its state did not restore: {e}")),
                }
                sb.encoded = saved.states;
            }
            self.bin_keys
                .insert(bin.start, bin.keys.into_iter().collect());
            self.bins.insert(bin.start, stages);
        }
        if let Some(sessions) = s.sessions {
            match sessions.decode() {
                Ok(rows) => self.open_sessions = rows,
                Err(e) => {
                    tracing::error!(pipeline = %self.pipeline, error = %e, "open sessions did not restore")
                }
            }
        }
        self.next_end = match s.next_end {
            Some(end) => end,
            // Older checkpoints: bins fill again as their events are re-read.
            None => Millis::MAX,
        };
    }
}

/// A bin's states as IPC; a state that cannot be written is logged and left
/// out (the restart then re-reads nothing for it, so say so loudly).
fn encode_or_fail(batches: &[RecordBatch], pipeline: &str) -> Option<ArrowBytes> {
    match ArrowBytes::encode(batches) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(pipeline, error = %e, "a window state could not be written to the checkpoint");
            None
        }
    }
}
