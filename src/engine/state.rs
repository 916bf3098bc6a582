//! What the engine checkpoints: every pipeline's window clocks and open bins'
//! partial states, detector series, compound spans and tasks, so a restart
//! resumes from the offsets it had consumed.

use std::collections::BTreeMap;

use super::Engine;
use super::running::RunningPipeline;
use crate::core::stage::{Named, Stateful, restore_all, save_all};
use crate::core::time::Millis;
use crate::detect::compound::CompoundState;
use crate::detect::runner::DetectorState;
use crate::window::OperatorState;

/// Everything the engine remembers, for checkpoints: per pipeline the window
/// clocks, open bins and detector state; compound and task state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EngineState {
    pipelines: BTreeMap<String, (OperatorState, Option<DetectorState>)>,
    compounds: BTreeMap<String, CompoundState>,
    tasks: Option<crate::task::TaskState>,
    max_time: Option<Millis>,
    /// Per pipeline, the fingerprint of the definition the state belongs to.
    #[serde(default)]
    definitions: BTreeMap<String, String>,
}

impl EngineState {
    /// The detector state of pipeline `name` if it was saved for the same
    /// definition (`fingerprint`).
    pub fn detector(&self, name: &str, fingerprint: &str) -> Option<DetectorState> {
        if self.definitions.get(name).map(String::as_str) != Some(fingerprint) {
            return None;
        }
        self.pipelines.get(name).and_then(|(_, d)| d.clone())
    }

    /// Open window bins held, over all pipelines.
    pub fn open_bins(&self) -> usize {
        self.pipelines.values().map(|(op, _)| op.open_bins()).sum()
    }

    /// Removes the state of pipelines whose clocks are past `latest` (written by
    /// a build that let a far-future record move them: every later event would be
    /// late) and returns their names; they start afresh.
    pub fn drop_clocks_after(&mut self, latest: Millis) -> Vec<String> {
        let poisoned: Vec<String> = self
            .pipelines
            .iter()
            .filter(|(_, (op, _))| op.latest_time().is_some_and(|t| t > latest))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &poisoned {
            self.pipelines.remove(name);
        }
        if self.max_time.is_some_and(|t| t > latest) {
            self.max_time = None;
        }
        poisoned
    }
}

/// A pipeline's state: its window clocks and its detector's.
impl Stateful for RunningPipeline {
    type State = (OperatorState, Option<DetectorState>);

    fn state(&self) -> Self::State {
        (self.operator.state(), self.detector.state())
    }

    fn restore(&mut self, (operator, detector): Self::State) {
        self.operator.restore(operator);
        self.detector.restore(detector);
    }
}

impl Named for RunningPipeline {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Engine {
    /// The state to checkpoint; open bins are sealed first (see [`Engine::seal`]).
    pub fn state(&mut self) -> EngineState {
        self.seal();
        EngineState {
            pipelines: save_all(&self.pipelines),
            compounds: save_all(&self.compounds),
            tasks: self.tasks.state(),
            max_time: self.max_time,
            definitions: self
                .pipelines
                .iter()
                .map(|p| (p.name.to_string(), p.pipeline.def.fingerprint()))
                .collect(),
        }
    }

    /// Restores a checkpoint taken by [`Engine::state`]; pipelines it does not
    /// know start afresh, and so do pipelines whose definition changed since (a
    /// new SQL or detector on old state would mix two series). Returns those.
    pub fn restore(&mut self, mut s: EngineState) -> Vec<String> {
        let mut discarded = Vec::new();
        // Checkpoints of format 1 recorded no definitions: restored by name.
        if !s.definitions.is_empty() {
            for p in &self.pipelines {
                let saved = s.definitions.get(p.name.as_ref());
                if s.pipelines.contains_key(p.name.as_ref())
                    && saved != Some(&p.pipeline.def.fingerprint())
                {
                    s.pipelines.remove(p.name.as_ref());
                    discarded.push(p.name.to_string());
                }
            }
        }
        restore_all(&mut self.pipelines, &mut s.pipelines);
        restore_all(&mut self.compounds, &mut s.compounds);
        self.tasks.restore(s.tasks);
        self.max_time = s.max_time;
        discarded
    }

    /// Ends the open bins' running segments and merges their partial states
    /// (see [`crate::window::WindowOperator::seal`]).
    pub fn seal(&mut self) {
        for p in &mut self.pipelines {
            p.operator.seal();
        }
    }
}
