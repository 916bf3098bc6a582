//! What a task is: its track, status and the changes it goes through, and the
//! events that carry its full state to the sinks.

use serde::{Deserialize, Serialize};

use crate::core::key::Key;
use crate::core::level::Level;
use crate::core::time::{Millis, format_rfc3339};

/// The name a status or change has in JSON and on the topics (`acknowledged`,
/// `level_raised`), for metric labels, annotations and reports.
pub fn wire_name(v: impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The three tracks of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Legal,
    Opinion,
    Control,
}

impl Track {
    pub const ALL: [Track; 3] = [Track::Legal, Track::Opinion, Track::Control];

    pub fn as_str(self) -> &'static str {
        match self {
            Track::Legal => "legal",
            Track::Opinion => "opinion",
            Track::Control => "control",
        }
    }

    /// 依法处理, 舆论引导, 社会面管控.
    pub fn zh(self) -> &'static str {
        match self {
            Track::Legal => "依法处理",
            Track::Opinion => "舆论引导",
            Track::Control => "社会面管控",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Acknowledged,
    Done,
    /// Past its deadline where there is nobody further to escalate to.
    Overdue,
    /// Moved to the next department after its deadline passed; awaiting acknowledgement.
    Escalated,
}

impl TaskStatus {
    /// Waiting to be acknowledged, so its deadline runs.
    pub fn awaiting(self) -> bool {
        matches!(self, TaskStatus::Open | TaskStatus::Escalated)
    }
}

/// What a task event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Opened,
    LevelRaised,
    Acknowledged,
    Done,
    Overdue,
    Escalated,
    Reassigned,
    Noted,
    /// Not done by its time to complete (处置时限); it stays with its department.
    CompletionOverdue,
    /// The incident resolved while the task was open; it stays open.
    IncidentResolved,
    /// All three tasks of the dispatch are done.
    DispatchClosed,
}

/// One task, in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub dispatch_id: String,
    pub incident_id: String,
    pub track: Track,
    pub department: String,
    /// The department it was first given to (or reassigned to): whose
    /// escalation chain it follows.
    #[serde(default)]
    pub owner: String,
    pub level: Level,
    pub status: TaskStatus,
    pub pipeline: String,
    pub key: Key,
    /// The latest alert of the incident.
    pub alert_id: String,
    #[serde(with = "crate::core::time::rfc3339")]
    pub opened_at: Millis,
    /// When it must be acknowledged by.
    #[serde(with = "crate::core::time::rfc3339")]
    pub deadline: Millis,
    /// When it must be done by (处置时限); the epoch for tasks of checkpoints
    /// written before completion deadlines existed, which have none.
    #[serde(default, with = "crate::core::time::rfc3339")]
    pub complete_by: Millis,
    /// Past `complete_by` before it was done.
    #[serde(default)]
    pub completion_overdue: bool,
    /// Escalation steps taken.
    pub escalations: u32,
    /// Whether the incident that opened it is still firing.
    pub incident_firing: bool,
    /// Changes so far; the event ids count them.
    pub version: u32,
}

impl Task {
    /// The department whose escalation chain the task follows.
    pub fn owner(&self) -> &str {
        if self.owner.is_empty() {
            &self.department
        } else {
            &self.owner
        }
    }

    /// Waiting to be done past its time to complete.
    pub fn completion_due(&self, now: Millis) -> bool {
        self.status != TaskStatus::Done
            && !self.completion_overdue
            && self.complete_by > 0
            && self.complete_by <= now
    }
}

/// One change to a task, with the task's state after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskEvent {
    pub event_id: String,
    pub change: Change,
    #[serde(with = "crate::core::time::rfc3339")]
    pub time: Millis,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub task: Task,
}

/// Why a command could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("no task `{0}` (tasks open only once their alert's window has closed)")]
    UnknownTask(String),
    #[error("task `{task}` is {status:?}: it cannot be {action}")]
    NotAllowed {
        task: String,
        status: TaskStatus,
        action: &'static str,
    },
    #[error("reassign needs a `department`")]
    NoDepartment,
}

impl TaskEvent {
    /// A one-line account for the demo, with Chinese department and track names.
    pub fn describe(&self) -> String {
        let t = &self.task;
        format!(
            "{} {} {} → {}（{}，{}级，时限 {}）",
            format_rfc3339(self.time),
            wire_name(self.change),
            t.track.zh(),
            t.department,
            t.track.as_str(),
            t.level.as_str(),
            format_rfc3339(t.deadline),
        )
    }
}
