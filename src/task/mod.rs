//! Three-synchronous response tasks (三同步): an alert at or above a level opens
//! three linked tasks — `legal` (依法处理), `opinion` (舆论引导), `control`
//! (社会面管控) — routed to departments by the routing table, each with a deadline
//! to acknowledge by level. Tasks move open → acknowledged → done; past its
//! deadline a task is overdue and escalates to the next department. Every change is
//! a [`TaskEvent`] carrying the task's full state.
//!
//! Two clocks, one code path ([`TaskClock`]). In replay the clock is event time:
//! alerts, commands and deadlines are applied in the order of their times as the
//! engine's watermark passes them, so a replay is a deterministic backtest. In the
//! daemon it is the processing (wall) clock, as processing-time timers are in
//! stream processors: a task opens when its alert arrives, deadlines expire while
//! the feeds are quiet, and an acknowledgement is dated when it was made. Ids come
//! from the incident and the track, so replays and restarts never open a task twice.

pub mod assessment;
pub mod command;
mod model;
pub mod routing;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Status, stable_id};
use crate::core::key::Key;
use crate::core::level::Level;
use crate::core::stage::Stateful;
use crate::core::time::{Clock, Millis};
pub use command::{Action, Command};
pub use model::{Change, Rejected, Task, TaskEvent, TaskStatus, Track, wire_name};
use routing::RoutingTable;

/// Something waiting for the clock: an alert or a command.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Pending {
    Alert(Box<AlertSnapshot>),
    Command(Command),
}

/// What the task stage needs of an alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AlertSnapshot {
    alert_id: String,
    incident_id: String,
    firing: bool,
    level: Level,
    pipeline: String,
    key: Key,
    /// A department per track, routed when the alert arrived.
    departments: Vec<(Track, String)>,
}

/// Task state of a run. Serialisable for checkpoints (the routing table is config).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskState {
    tasks: BTreeMap<String, Task>,
    /// Dispatch id → its three task ids.
    dispatches: BTreeMap<String, Vec<String>>,
    /// Closed dispatch id → when it closed; forgotten after [`CLOSED_RETENTION`].
    #[serde(deserialize_with = "closed_ids::deserialize")]
    closed: BTreeMap<String, Millis>,
    /// (time, order, sequence) → what happens then.
    #[serde(with = "entries")]
    pending: BTreeMap<(Millis, u8, u64), Pending>,
    seq: u64,
    /// Time the state has been advanced to.
    clock: Option<Millis>,
}

/// Answers a task with the updates a department would send.
pub type Responder = Box<dyn FnMut(&Task) -> Vec<Command> + Send>;

/// What the task stage's time is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskClock {
    /// The engine's watermark: alerts take effect at their window's end.
    EventTime,
    /// The processing clock: alerts take effect when they arrive.
    Processing(Clock),
}

/// The task stage: routing, deadlines and lifecycle over [`TaskState`].
pub struct TaskManager {
    routing: RoutingTable,
    clock: TaskClock,
    /// A simulated department (the demo's duty desk): its answers to each task
    /// as it opens, queued at once so they apply in time order.
    responder: Option<Responder>,
    /// Per pipeline, the lowest level that opens tasks, where it differs from the table's.
    levels: BTreeMap<String, Level>,
    pub state: TaskState,
}

/// The two deadlines of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Acknowledge,
    Complete,
}

/// Order of things due at the same instant: alerts, then commands, then deadlines.
const ALERT: u8 = 0;
const COMMAND: u8 = 1;

impl TaskManager {
    pub fn new(routing: RoutingTable, levels: BTreeMap<String, Level>) -> Self {
        TaskManager {
            routing,
            clock: TaskClock::EventTime,
            responder: None,
            levels,
            state: TaskState::default(),
        }
    }

    /// Routes tasks opened from now on by `routing` and `levels` (a redeploy);
    /// open tasks keep their departments and deadlines.
    pub fn reroute(&mut self, routing: RoutingTable, levels: BTreeMap<String, Level>) {
        self.routing = routing;
        self.levels = levels;
    }

    /// Runs the stage on `clock`.
    pub fn with_clock(mut self, clock: TaskClock) -> Self {
        self.clock = clock;
        self
    }

    /// Lets `responder` answer every task as it opens.
    pub fn set_responder(&mut self, responder: Responder) {
        self.responder = Some(responder);
    }

    /// The processing clock's time now, when the stage runs on one.
    pub fn processing_now(&self) -> Option<Millis> {
        match &self.clock {
            TaskClock::EventTime => None,
            TaskClock::Processing(c) => Some(c.now()),
        }
    }

    /// Queues an alert; it takes effect at its window's end (event time) or
    /// now (processing time).
    pub fn alert(&mut self, a: &Alert) {
        let t = self.processing_now().unwrap_or(a.window_end);
        let snapshot = AlertSnapshot {
            alert_id: a.alert_id.clone(),
            incident_id: a.incident_id.clone(),
            firing: a.status == Status::Firing,
            level: a.level,
            pipeline: a.pipeline.clone(),
            key: a.key.clone(),
            departments: Track::ALL
                .into_iter()
                .map(|tr| (tr, self.routing.department(a, tr)))
                .collect(),
        };
        self.push(t, ALERT, Pending::Alert(Box::new(snapshot)));
    }

    /// Queues a command; it takes effect at its time.
    pub fn command(&mut self, c: Command) {
        self.push(c.time, COMMAND, Pending::Command(c));
    }

    fn push(&mut self, t: Millis, order: u8, p: Pending) {
        self.state.seq += 1;
        self.state.pending.insert((t, order, self.state.seq), p);
    }

    /// The time the state has been advanced to.
    pub fn now(&self) -> Option<Millis> {
        self.state.clock
    }

    /// The time of the latest queued alert or command.
    pub fn last_pending(&self) -> Option<Millis> {
        self.state.pending.keys().next_back().map(|k| k.0)
    }

    /// Whether task `id` is one of these (open or closed).
    pub fn holds(&self, id: &str) -> bool {
        self.state.tasks.contains_key(id)
    }

    /// The tasks (open and closed) by id.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.state.tasks.values()
    }

    /// Advances the clock to `now`: applies, in time order, every queued alert and
    /// command and every deadline up to it. Returns the task events and the
    /// commands that could not be applied, with why.
    pub fn advance(&mut self, now: Millis) -> (Vec<TaskEvent>, Vec<(Command, Rejected)>) {
        let mut events = Vec::new();
        let mut rejected = Vec::new();
        loop {
            let next_pending = self
                .state
                .pending
                .keys()
                .next()
                .copied()
                .filter(|k| k.0 <= now);
            let next_deadline = self.next_timer(now);
            match (next_pending, next_deadline) {
                (Some(k), Some((d, _, _))) if k.0 <= d => {
                    self.apply_pending(k, &mut events, &mut rejected)
                }
                (_, Some((d, Timer::Acknowledge, id))) => self.overdue(&id, d, &mut events),
                (_, Some((d, Timer::Complete, id))) => self.completion_overdue(&id, d, &mut events),
                (Some(k), None) => self.apply_pending(k, &mut events, &mut rejected),
                (None, None) => break,
            }
        }
        self.state.clock = Some(self.state.clock.map_or(now, |c| c.max(now)));
        // Closed dispatches are remembered long enough for their incident's last
        // alerts, not forever. Ids from checkpoints that kept no time start now.
        for t in self.state.closed.values_mut() {
            if *t == Millis::MIN {
                *t = now;
            }
        }
        self.state
            .closed
            .retain(|_, t| t.saturating_add(CLOSED_RETENTION) >= now);
        (events, rejected)
    }

    /// The earliest deadline due by `now`: to acknowledge (of a task awaiting
    /// it) or to complete (of a task not done), in a stable order.
    fn next_timer(&self, now: Millis) -> Option<(Millis, Timer, String)> {
        self.state
            .tasks
            .values()
            .flat_map(|t| {
                let ack = (t.status.awaiting() && t.deadline <= now)
                    .then_some((t.deadline, Timer::Acknowledge));
                let complete = t
                    .completion_due(now)
                    .then_some((t.complete_by, Timer::Complete));
                [ack, complete]
                    .into_iter()
                    .flatten()
                    .map(move |(d, timer)| ((d, t.dispatch_id.as_str(), t.track, timer), t))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|((d, _, _, timer), t)| (d, timer, t.task_id.clone()))
    }

    fn apply_pending(
        &mut self,
        key: (Millis, u8, u64),
        events: &mut Vec<TaskEvent>,
        rejected: &mut Vec<(Command, Rejected)>,
    ) {
        let Some(p) = self.state.pending.remove(&key) else {
            return;
        };
        match p {
            Pending::Alert(a) => self.on_alert(&a, key.0, events),
            Pending::Command(c) => {
                if let Err(e) = self.on_command(&c, events) {
                    rejected.push((c, e));
                }
            }
        }
    }

    /// The ids of a dispatch's tasks (none for an unknown dispatch).
    fn dispatch_tasks(&self, dispatch_id: &str) -> Vec<String> {
        self.state
            .dispatches
            .get(dispatch_id)
            .cloned()
            .unwrap_or_default()
    }

    fn on_alert(&mut self, a: &AlertSnapshot, t: Millis, events: &mut Vec<TaskEvent>) {
        let dispatch_id = stable_id(&["dispatch", &a.incident_id]);
        if self.state.closed.contains_key(&dispatch_id) {
            return;
        }
        let open_at = self
            .levels
            .get(&a.pipeline)
            .copied()
            .unwrap_or(self.routing.open_at);
        let exists = self.state.dispatches.contains_key(&dispatch_id);
        if !a.firing {
            for id in self.dispatch_tasks(&dispatch_id) {
                let Some(task) = self.state.tasks.get_mut(&id) else {
                    continue;
                };
                task.incident_firing = false;
                if task.status != TaskStatus::Done {
                    events.push(emit(
                        task,
                        Change::IncidentResolved,
                        t,
                        "yujing",
                        Some("the incident resolved; the task stays open until it is done".into()),
                    ));
                }
            }
            return;
        }
        if !exists {
            if a.level >= open_at {
                self.open_dispatch(a, dispatch_id, t, events);
            }
            return;
        }
        for id in self.dispatch_tasks(&dispatch_id) {
            let Some(task) = self.state.tasks.get_mut(&id) else {
                continue;
            };
            task.incident_firing = true;
            task.alert_id = a.alert_id.clone();
            if a.level > task.level && task.status != TaskStatus::Done {
                let from = task.level;
                task.level = a.level;
                if task.status.awaiting() {
                    task.deadline = task.deadline.min(t + self.routing.deadline(a.level));
                }
                if task.complete_by > 0 && !task.completion_overdue {
                    task.complete_by = task.complete_by.min(t + self.routing.completion(a.level));
                }
                events.push(emit(
                    task,
                    Change::LevelRaised,
                    t,
                    "yujing",
                    Some(format!("{} → {}", from.as_str(), a.level.as_str())),
                ));
            }
        }
    }

    /// Opens the three-synchronous tasks of a new dispatch, one per track and
    /// department the routing table names.
    fn open_dispatch(
        &mut self,
        a: &AlertSnapshot,
        dispatch_id: String,
        t: Millis,
        events: &mut Vec<TaskEvent>,
    ) {
        let mut ids = Vec::new();
        for (track, department) in &a.departments {
            let task_id = stable_id(&["task", &a.incident_id, track.as_str()]);
            let mut task = Task {
                task_id: task_id.clone(),
                dispatch_id: dispatch_id.clone(),
                incident_id: a.incident_id.clone(),
                track: *track,
                department: department.clone(),
                level: a.level,
                status: TaskStatus::Open,
                pipeline: a.pipeline.clone(),
                key: a.key.clone(),
                alert_id: a.alert_id.clone(),
                owner: department.clone(),
                opened_at: t,
                deadline: t + self.routing.deadline(a.level),
                complete_by: t + self.routing.completion(a.level),
                completion_overdue: false,
                escalations: 0,
                incident_firing: true,
                version: 0,
            };
            events.push(emit(&mut task, Change::Opened, t, "yujing", None));
            let answers = self
                .responder
                .as_mut()
                .map(|r| r(&task))
                .unwrap_or_default();
            for c in answers {
                self.command(c);
            }
            self.state.tasks.insert(task_id.clone(), task);
            ids.push(task_id);
        }
        self.state.dispatches.insert(dispatch_id, ids);
    }

    /// A deadline to acknowledge passed: the task is overdue, and takes the next
    /// step of its owner's escalation chain if there is one (that department
    /// has the step's wait to acknowledge).
    fn overdue(&mut self, id: &str, t: Millis, events: &mut Vec<TaskEvent>) {
        let Some(task) = self.state.tasks.get_mut(id) else {
            return;
        };
        task.status = TaskStatus::Overdue;
        let note = format!(
            "not acknowledged by {} within the deadline",
            task.department
        );
        events.push(emit(task, Change::Overdue, t, "yujing", Some(note)));
        let step = self
            .routing
            .step(task.owner(), task.escalations as usize, &task.key);
        if let Some(step) = step {
            if task.owner.is_empty() {
                task.owner = task.department.clone();
            }
            let from = std::mem::replace(&mut task.department, step.to);
            task.status = TaskStatus::Escalated;
            task.escalations += 1;
            task.deadline = t + step.wait;
            events.push(emit(
                task,
                Change::Escalated,
                t,
                "yujing",
                Some(format!("from {from}")),
            ));
        }
    }

    /// The time to complete passed before the task was done: marked and told;
    /// it stays with its department.
    fn completion_overdue(&mut self, id: &str, t: Millis, events: &mut Vec<TaskEvent>) {
        let Some(task) = self.state.tasks.get_mut(id) else {
            return;
        };
        task.completion_overdue = true;
        let note = format!(
            "not done by {} within the time to complete",
            task.department
        );
        events.push(emit(
            task,
            Change::CompletionOverdue,
            t,
            "yujing",
            Some(note),
        ));
    }

    fn on_command(&mut self, c: &Command, events: &mut Vec<TaskEvent>) -> Result<(), Rejected> {
        let task = self
            .state
            .tasks
            .get_mut(&c.task_id)
            .ok_or_else(|| Rejected::UnknownTask(c.task_id.clone()))?;
        let status = task.status;
        let not_allowed = |action| Rejected::NotAllowed {
            task: c.task_id.clone(),
            status,
            action,
        };
        let change = match c.action {
            Action::Acknowledge => {
                if !matches!(
                    task.status,
                    TaskStatus::Open | TaskStatus::Escalated | TaskStatus::Overdue
                ) {
                    return Err(not_allowed("acknowledged"));
                }
                task.status = TaskStatus::Acknowledged;
                Change::Acknowledged
            }
            Action::Done => {
                if task.status == TaskStatus::Done {
                    return Err(not_allowed("done again"));
                }
                task.status = TaskStatus::Done;
                Change::Done
            }
            Action::Reassign => {
                if task.status == TaskStatus::Done {
                    return Err(not_allowed("reassigned"));
                }
                task.department = c.department.clone().ok_or(Rejected::NoDepartment)?;
                // The new department owns it: escalation follows its chain.
                task.owner = task.department.clone();
                task.escalations = 0;
                Change::Reassigned
            }
            Action::Note => Change::Noted,
        };
        events.push(emit(task, change, c.time, &c.actor, c.note.clone()));
        let dispatch_id = task.dispatch_id.clone();
        if change == Change::Done {
            let ids = self.dispatch_tasks(&dispatch_id);
            let all_done = ids.iter().all(|id| {
                self.state
                    .tasks
                    .get(id)
                    .is_some_and(|t| t.status == TaskStatus::Done)
            });
            if all_done {
                if let Some(task) = self.state.tasks.get_mut(&c.task_id) {
                    events.push(emit(task, Change::DispatchClosed, c.time, &c.actor, None));
                }
                // A closed dispatch is forgotten but for its id, so later alerts of
                // the incident do not reopen it.
                for id in &ids {
                    self.state.tasks.remove(id);
                }
                self.state.dispatches.remove(&dispatch_id);
                self.state.closed.insert(dispatch_id, c.time);
            }
        }
        Ok(())
    }
}

impl Stateful for TaskManager {
    type State = TaskState;

    fn state(&self) -> TaskState {
        self.state.clone()
    }

    fn restore(&mut self, state: TaskState) {
        self.state = state;
    }
}

fn emit(
    task: &mut Task,
    change: Change,
    time: Millis,
    actor: &str,
    note: Option<String>,
) -> TaskEvent {
    task.version += 1;
    TaskEvent {
        event_id: stable_id(&[&task.task_id, &task.version.to_string()]),
        change,
        time,
        actor: actor.to_string(),
        note,
        task: task.clone(),
    }
}

/// How long a closed dispatch's id is kept, so later alerts of its incident do
/// not open it again.
pub const CLOSED_RETENTION: Millis = 90 * crate::core::time::DAY;

/// Closed dispatch ids: a map of id → time, or (checkpoint formats 1 and 2) a
/// list of ids, whose times are then taken as unknown (`Millis::MIN`).
mod closed_ids {
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;

    use crate::core::time::Millis;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Closed {
        Timed(BTreeMap<String, Millis>),
        Ids(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Millis>, D::Error> {
        Ok(match Closed::deserialize(d)? {
            Closed::Timed(m) => m,
            Closed::Ids(ids) => ids.into_iter().map(|id| (id, Millis::MIN)).collect(),
        })
    }
}

/// A map with tuple keys as a list of entries (JSON keys must be strings).
mod entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize + Ord, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
