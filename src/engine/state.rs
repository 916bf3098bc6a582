//! What the engine checkpoints: everything but its open bins, which a restart
//! rebuilds by re-reading their events ([`Engine::earliest_open`]).

use std::collections::BTreeMap;

use super::Engine;
use crate::core::time::Millis;
use crate::detect::compound::CompoundState;
use crate::detect::runner::DetectorState;
use crate::window::OperatorState;

/// Everything the engine remembers but its open bins, for checkpoints: per
/// pipeline the window clocks and detector state, compound and task state. Open
/// bins are rebuilt by re-reading their events (see [`Engine::earliest_open`]).
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

impl Engine {
    /// The state to checkpoint.
    pub fn state(&self) -> EngineState {
        EngineState {
            pipelines: self
                .pipelines
                .iter()
                .map(|p| {
                    (
                        p.name.to_string(),
                        (p.operator.state(), p.detector.as_ref().map(|d| d.state())),
                    )
                })
                .collect(),
            compounds: self
                .compounds
                .iter()
                .map(|c| (c.name().to_string(), c.state()))
                .collect(),
            tasks: self.tasks.as_ref().map(|t| t.state.clone()),
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
        let by_name_only = s.definitions.is_empty();
        for p in &mut self.pipelines {
            let saved = s.definitions.get(p.name.as_ref());
            if !by_name_only
                && s.pipelines.contains_key(p.name.as_ref())
                && saved != Some(&p.pipeline.def.fingerprint())
            {
                s.pipelines.remove(p.name.as_ref());
                discarded.push(p.name.to_string());
                continue;
            }
            if let Some((op, det)) = s.pipelines.remove(p.name.as_ref()) {
                p.operator.restore(op);
                if let (Some(d), Some(state)) = (p.detector.as_mut(), det) {
                    d.restore(state);
                }
            }
        }
        for c in &mut self.compounds {
            if let Some(state) = s.compounds.remove(c.name()) {
                c.restore(state);
            }
        }
        if let (Some(t), Some(state)) = (self.tasks.as_mut(), s.tasks) {
            t.state = state;
        }
        self.max_time = s.max_time;
        discarded
    }

    /// The earliest event time whose events a restart must re-read: the start of
    /// the earliest open bin of any pipeline (`None`: nothing open).
    pub fn earliest_open(&self) -> Option<Millis> {
        self.pipelines
            .iter()
            .filter_map(|p| p.operator.earliest_open())
            .min()
    }
}
