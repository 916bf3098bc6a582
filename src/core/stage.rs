//! What every stateful stage — window operators, detectors, compound pipelines,
//! the task manager — has in common: its state is taken at a checkpoint and
//! put back at a restart. The engine saves and restores them all through this
//! one trait, by name where there are several.

use std::collections::BTreeMap;

/// A stage whose state outlives the process.
pub trait Stateful {
    /// What a checkpoint keeps of it.
    type State;
    fn state(&self) -> Self::State;
    fn restore(&mut self, state: Self::State);
}

/// A stage that is one of several: its state is kept under its name.
pub trait Named {
    fn name(&self) -> &str;
}

/// An optional stage (no detector, no routing table): its state if present.
impl<T: Stateful> Stateful for Option<T> {
    type State = Option<T::State>;

    fn state(&self) -> Self::State {
        self.as_ref().map(Stateful::state)
    }

    fn restore(&mut self, state: Self::State) {
        if let (Some(stage), Some(state)) = (self.as_mut(), state) {
            stage.restore(state);
        }
    }
}

/// The state of each stage, by name.
pub fn save_all<T: Stateful + Named>(stages: &[T]) -> BTreeMap<String, T::State> {
    stages
        .iter()
        .map(|s| (s.name().to_string(), s.state()))
        .collect()
}

/// Puts back each stage's state that `saved` holds under its name, taking it
/// out of `saved`; stages it does not name start afresh.
pub fn restore_all<T: Stateful + Named>(stages: &mut [T], saved: &mut BTreeMap<String, T::State>) {
    for s in stages {
        if let Some(state) = saved.remove(s.name()) {
            s.restore(state);
        }
    }
}
