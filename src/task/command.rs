//! Task updates as JSON commands — one per line in replay (`--task-updates`), a
//! Kafka topic and the HTTP API in the daemon:
//!
//! ```json
//! {"time": "2026-03-14T10:20:00+08:00", "task_id": "…", "action": "acknowledge", "actor": "西湖公安分局值班室"}
//! ```
//!
//! `action` is `acknowledge`, `done`, `reassign` (with `department`) or `note`;
//! `note` is optional text. A line that is not a valid command becomes a dead letter
//! of the `task_updates` input with its reason.

use serde::{Deserialize, Serialize};

use crate::core::deadletter::Reason;
use crate::core::time::{Millis, parse_rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Acknowledge,
    Done,
    Reassign,
    Note,
}

/// The input name task updates' dead letters carry.
pub const INPUT: &str = "task_updates";

/// One task update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    #[serde(with = "crate::core::time::rfc3339")]
    pub time: Millis,
    pub task_id: String,
    pub action: Action,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where it came from (file and line, Kafka offset), for dead letters.
    #[serde(skip)]
    pub origin: Option<crate::core::deadletter::Origin>,
}

/// A task update without a time (from the HTTP API): the driver dates it with
/// the task stage's current time.
#[derive(Debug, Clone)]
pub struct Update {
    pub task_id: String,
    pub action: Action,
    pub actor: String,
    pub department: Option<String>,
    pub note: Option<String>,
}

impl Update {
    pub fn at(self, time: Millis) -> Command {
        Command {
            time,
            task_id: self.task_id,
            action: self.action,
            actor: self.actor,
            department: self.department,
            note: self.note,
            origin: None,
        }
    }
}

/// Why a line is not a command: a dead-letter reason, the field, and words.
pub type Invalid = (Reason, Option<String>, String);

/// What a command may be: as large as a record, its texts as long as a field, and
/// dated no later than the processing clock allows events to be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_text_bytes: usize,
    pub latest: Millis,
}

impl Command {
    /// [`Command::parse`] within `limits`: a far-future command would wait in the
    /// queue forever, a huge note would make every task event of its task huge.
    pub fn parse_within(line: &str, limits: Limits) -> Result<Command, Invalid> {
        if line.len() > limits.max_bytes {
            return Err((
                Reason::TooLarge,
                None,
                format!(
                    "command is {} bytes; the limit is {}",
                    line.len(),
                    limits.max_bytes
                ),
            ));
        }
        let c = Command::parse(line)?;
        let texts = [
            ("task_id", Some(&c.task_id)),
            ("actor", Some(&c.actor)),
            ("department", c.department.as_ref()),
            ("note", c.note.as_ref()),
        ];
        for (name, value) in texts {
            if let Some(v) = value
                && v.len() > limits.max_text_bytes
            {
                return Err((
                    Reason::TooLarge,
                    Some(name.to_string()),
                    format!(
                        "`{name}` is {} bytes; the limit is {}",
                        v.len(),
                        limits.max_text_bytes
                    ),
                ));
            }
        }
        if c.time > limits.latest {
            return Err((
                Reason::Future,
                Some("time".to_string()),
                format!(
                    "`time` {} is ahead of the processing clock",
                    crate::core::time::format_rfc3339(c.time)
                ),
            ));
        }
        Ok(c)
    }

    /// Parses one line, saying precisely what is wrong with a bad one.
    pub fn parse(line: &str) -> Result<Command, Invalid> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| (Reason::InvalidJson, None, e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| {
            (
                Reason::NotObject,
                None,
                "a command is a JSON object".to_string(),
            )
        })?;
        let text = |name: &str, required: bool| -> Result<Option<String>, Invalid> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) if required => Err((
                    Reason::MissingField,
                    Some(name.to_string()),
                    format!("`{name}` is required"),
                )),
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err((
                    Reason::BadType,
                    Some(name.to_string()),
                    format!("`{name}` must be a string"),
                )),
            }
        };
        let time_text = text("time", true)?.unwrap_or_default();
        let time = parse_rfc3339(&time_text).ok_or_else(|| {
            (
                Reason::BadTime,
                Some("time".to_string()),
                format!("`{time_text}` is not an RFC 3339 time"),
            )
        })?;
        let action_text = text("action", true)?.unwrap_or_default();
        let action = match action_text.as_str() {
            "acknowledge" => Action::Acknowledge,
            "done" => Action::Done,
            "reassign" => Action::Reassign,
            "note" => Action::Note,
            other => {
                return Err((
                    Reason::OutOfRange,
                    Some("action".to_string()),
                    format!("unknown action `{other}` (acknowledge, done, reassign, note)"),
                ));
            }
        };
        let department = text("department", false)?;
        if action == Action::Reassign && department.is_none() {
            return Err((
                Reason::MissingField,
                Some("department".to_string()),
                "reassign needs the new `department`".to_string(),
            ));
        }
        Ok(Command {
            time,
            task_id: text("task_id", true)?.unwrap_or_default(),
            action,
            actor: text("actor", true)?.unwrap_or_default(),
            department,
            note: text("note", false)?,
            origin: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let ok = Command::parse(
            r#"{"time":"2026-03-14T10:00:00Z","task_id":"t","action":"reassign","actor":"a","department":"d"}"#,
        )
        .unwrap();
        assert_eq!(ok.action, Action::Reassign);
        let reason = |line: &str| Command::parse(line).unwrap_err().0;
        assert_eq!(reason("{"), Reason::InvalidJson);
        assert_eq!(reason("[1]"), Reason::NotObject);
        assert_eq!(
            reason(r#"{"time":"2026-03-14T10:00:00Z","action":"done","actor":"a"}"#),
            Reason::MissingField
        );
        assert_eq!(
            reason(r#"{"time":"noon","task_id":"t","action":"done","actor":"a"}"#),
            Reason::BadTime
        );
        assert_eq!(
            reason(r#"{"time":"2026-03-14T10:00:00Z","task_id":"t","action":"shred","actor":"a"}"#),
            Reason::OutOfRange
        );
        assert_eq!(
            reason(
                r#"{"time":"2026-03-14T10:00:00Z","task_id":"t","action":"reassign","actor":"a"}"#
            ),
            Reason::MissingField
        );
    }

    #[test]
    fn commands_beyond_the_limits_are_refused() {
        let limits = Limits {
            max_bytes: 300,
            max_text_bytes: 20,
            latest: parse_rfc3339("2026-03-15T00:00:00Z").unwrap(),
        };
        let reason = |line: &str| Command::parse_within(line, limits).unwrap_err();
        let ok = r#"{"time":"2026-03-14T10:00:00Z","task_id":"t","action":"done","actor":"a"}"#;
        assert!(Command::parse_within(ok, limits).is_ok());
        let future = ok.replace("2026-03-14", "2099-03-14");
        assert_eq!(reason(&future).0, Reason::Future);
        let note = r#"{"time":"2026-03-14T10:00:00Z","task_id":"t","action":"note","actor":"a","note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        assert_eq!(reason(note).0, Reason::TooLarge);
        assert_eq!(reason(note).1.as_deref(), Some("note"));
        let long = format!("{} {}", ok, " ".repeat(300));
        assert_eq!(reason(&long).0, Reason::TooLarge);
    }
}
