//! Task lifecycle on scripted alerts and commands, in event time.

use super::*;
use crate::alert::Measure;
use crate::core::key::Cell;
use crate::core::time::{DAY, HOUR, MINUTE};
use std::collections::BTreeSet;

const T0: Millis = 1_773_446_400_000; // 2026-03-14T00:00:00Z

/// The feeds of the shipped schemas.
fn feeds() -> BTreeSet<String> {
    let catalog = crate::schema::Catalog::embedded().expect("schemas");
    catalog.feeds.keys().cloned().collect()
}

fn manager() -> TaskManager {
    TaskManager::new(RoutingTable::embedded(&feeds()).unwrap(), BTreeMap::new())
}

fn alert(level: Level, status: Status, end: Millis) -> Alert {
    Alert {
        alert_id: format!("a-{end}-{}", level.as_str()),
        incident_id: "inc-1".into(),
        status,
        level,
        pipeline: "police_grid_hour".into(),
        feeds: vec!["police_incident".into()],
        key: [
            ("district".to_string(), Cell::Text("西湖区".into())),
            ("street".to_string(), Cell::Text("北山街道".into())),
        ]
        .into_iter()
        .collect(),
        window_start: end - HOUR,
        window_end: end,
        measure: Measure {
            value: 9.0,
            expected: Some(1.0),
            threshold: Some(4.0),
            score: None,
            p_value: None,
            method: "poisson".into(),
            explanation: None,
        },
        summary: String::new(),
        event_ids: vec![],
    }
}

fn command(at: Millis, task: &str, action: Action) -> Command {
    Command {
        time: at,
        task_id: task.to_string(),
        action,
        actor: "值班员".into(),
        department: None,
        note: None,
        origin: None,
    }
}

fn id(track: Track) -> String {
    stable_id(&["task", "inc-1", track.as_str()])
}

#[test]
fn an_orange_alert_opens_three_routed_tasks_and_red_updates_them() {
    let mut m = manager();
    m.alert(&alert(Level::Yellow, Status::Firing, T0));
    let (e, _) = m.advance(T0);
    assert!(e.is_empty(), "yellow is below the table's orange");
    m.alert(&alert(Level::Orange, Status::Firing, T0 + HOUR));
    m.alert(&alert(Level::Red, Status::Firing, T0 + 2 * HOUR));
    let (e, _) = m.advance(T0 + HOUR);
    assert_eq!(e.len(), 3);
    assert!(e.iter().all(|e| e.change == Change::Opened));
    let by_track: BTreeMap<Track, &Task> = e.iter().map(|e| (e.task.track, &e.task)).collect();
    assert_eq!(by_track[&Track::Legal].department, "西湖公安分局");
    assert_eq!(by_track[&Track::Opinion].department, "区委宣传部（网信办）");
    assert_eq!(
        by_track[&Track::Control].department,
        "北山街道、西湖公安分局"
    );
    assert_eq!(by_track[&Track::Legal].deadline, T0 + HOUR + 4 * HOUR);
    let dispatch = &e[0].task.dispatch_id;
    assert!(e.iter().all(|e| &e.task.dispatch_id == dispatch));
    // The red escalation of the same incident an hour later: same tasks, red, 1 h.
    let (e, _) = m.advance(T0 + 2 * HOUR);
    assert_eq!(e.len(), 3);
    for ev in &e {
        assert_eq!(ev.change, Change::LevelRaised);
        assert_eq!(ev.task.level, Level::Red);
        assert_eq!(ev.task.deadline, T0 + 3 * HOUR);
    }
    assert_eq!(m.tasks().count(), 3);
}

#[test]
fn overdue_and_escalation_at_the_deadline_in_event_time() {
    let mut m = manager();
    let opened = T0 + HOUR;
    m.alert(&alert(Level::Orange, Status::Firing, opened));
    // Legal is acknowledged in time; opinion only after its deadline; control never.
    m.command(command(
        opened + 3 * HOUR,
        &id(Track::Legal),
        Action::Acknowledge,
    ));
    m.command(command(
        opened + 5 * HOUR,
        &id(Track::Opinion),
        Action::Acknowledge,
    ));
    // The clock jumps past everything at once: order still follows event time.
    let (e, rejected) = m.advance(opened + 10 * HOUR);
    assert!(rejected.is_empty(), "{rejected:?}");
    let seen: Vec<(Track, Change, Millis, String)> = e
        .iter()
        .map(|e| (e.task.track, e.change, e.time, e.task.department.clone()))
        .collect();
    let deadline = opened + 4 * HOUR;
    let row = |track, change, t, department: &str| (track, change, t, department.to_string());
    let (police, opinion, zhengfa) = ("西湖公安分局", "区委宣传部（网信办）", "区委政法委");
    let (street, office) = ("北山街道、西湖公安分局", "区委办公室（区应急指挥中心）");
    use Change::{Acknowledged, Escalated, Overdue};
    use Track::{Control, Legal, Opinion};
    assert_eq!(
        seen[3..],
        [
            row(Legal, Acknowledged, opened + 3 * HOUR, police),
            row(Opinion, Overdue, deadline, opinion),
            row(Opinion, Escalated, deadline, zhengfa),
            row(Control, Overdue, deadline, street),
            row(Control, Escalated, deadline, zhengfa),
            row(Opinion, Acknowledged, opened + 5 * HOUR, zhengfa),
            // Control climbs the default chain, each step with its own wait
            // (2 h), and stays overdue at the last.
            row(Control, Overdue, deadline + 2 * HOUR, zhengfa),
            row(Control, Escalated, deadline + 2 * HOUR, office),
            row(Control, Overdue, deadline + 4 * HOUR, office),
        ]
    );
    let control = m.tasks().find(|t| t.track == Track::Control).unwrap();
    assert_eq!(
        (control.status, control.escalations),
        (TaskStatus::Overdue, 2)
    );
}

#[test]
fn a_dispatch_closes_when_all_three_are_done_and_a_resolved_incident_leaves_tasks_open() {
    let mut m = manager();
    m.alert(&alert(Level::Orange, Status::Firing, T0));
    m.alert(&alert(Level::Orange, Status::Resolved, T0 + HOUR));
    for (i, track) in Track::ALL.into_iter().enumerate() {
        m.command(command(
            T0 + 2 * HOUR + i as Millis * MINUTE,
            &id(track),
            Action::Done,
        ));
    }
    m.command(command(
        T0 + 3 * HOUR,
        &id(Track::Legal),
        Action::Acknowledge,
    ));
    let mut reassign = command(T0 + 90 * MINUTE, &id(Track::Control), Action::Reassign);
    reassign.department = Some("北山街道".into());
    m.command(reassign);
    let (e, rejected) = m.advance(T0 + 4 * HOUR);
    let changes: Vec<Change> = e.iter().map(|e| e.change).collect();
    assert_eq!(
        changes,
        [
            Change::Opened,
            Change::Opened,
            Change::Opened,
            Change::IncidentResolved,
            Change::IncidentResolved,
            Change::IncidentResolved,
            Change::Reassigned,
            Change::Done,
            Change::Done,
            Change::Done,
            Change::DispatchClosed,
        ]
    );
    assert!(e[3].note.as_deref().unwrap_or("").contains("stays open"));
    assert_eq!(e[6].task.department, "北山街道");
    // Acknowledging a task of a closed dispatch is refused, with the reason.
    assert_eq!(rejected.len(), 1);
    assert!(matches!(rejected[0].1, Rejected::UnknownTask(_)));
    // A later alert of the same incident does not reopen it.
    m.alert(&alert(Level::Red, Status::Firing, T0 + 5 * HOUR));
    assert!(m.advance(T0 + 5 * HOUR).0.is_empty());
    // Its id is kept for CLOSED_RETENTION after it closed, then forgotten.
    let closed_at = T0 + 2 * HOUR + 2 * MINUTE;
    m.advance(closed_at + super::CLOSED_RETENTION);
    assert_eq!(m.state.closed.len(), 1);
    m.advance(closed_at + super::CLOSED_RETENTION + 1);
    assert!(m.state.closed.is_empty());
}

#[test]
fn closed_dispatches_of_older_checkpoints_are_read_and_timed_from_then_on() {
    let mut m = manager();
    let mut state = serde_json::to_value(&m.state).unwrap();
    state["closed"] = serde_json::json!(["d1", "d2"]);
    m.state = serde_json::from_value(state).unwrap();
    assert_eq!(m.state.closed.len(), 2);
    m.advance(T0);
    assert!(m.state.closed.values().all(|t| *t == T0));
    m.advance(T0 + super::CLOSED_RETENTION + 1);
    assert!(m.state.closed.is_empty());
}

#[test]
fn the_same_input_gives_the_same_events_and_state_round_trips() {
    let run = || {
        let mut m = manager();
        m.alert(&alert(Level::Orange, Status::Firing, T0));
        m.command(command(T0 + HOUR, &id(Track::Legal), Action::Acknowledge));
        let (a, _) = m.advance(T0 + 30 * MINUTE);
        let state = serde_json::to_string(&m.state).unwrap();
        let mut restored = manager();
        restored.state = serde_json::from_str(&state).unwrap();
        let (b, _) = restored.advance(T0 + 10 * HOUR);
        let (c, _) = m.advance(T0 + 10 * HOUR);
        assert_eq!(b, c, "a restored state carries on as the original");
        serde_json::to_string(&[a, b]).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn on_the_processing_clock_tasks_open_when_the_alert_arrives_and_deadlines_run_while_feeds_are_quiet()
 {
    let path = std::env::temp_dir().join(format!("yujing-clock-{}", std::process::id()));
    let write = |t: Millis| std::fs::write(&path, t.to_string()).unwrap();
    let wall = T0 + 30 * DAY;
    write(wall);
    let clock = Clock::File(path.clone().into());
    let mut m = manager().with_clock(TaskClock::Processing(clock));
    // The alert's window ended long ago in event time; the task opens now.
    m.alert(&alert(Level::Orange, Status::Firing, T0));
    let (e, _) = m.advance(m.processing_now().unwrap());
    assert_eq!(e.len(), 3);
    assert!(e.iter().all(|e| e.time == wall && e.task.opened_at == wall));
    assert!(e.iter().all(|e| e.task.deadline == wall + 4 * HOUR));
    // No events arrive; the wall clock passes the deadline.
    write(wall + 4 * HOUR + MINUTE);
    let (e, _) = m.advance(m.processing_now().unwrap());
    let changes: Vec<Change> = e.iter().map(|e| e.change).collect();
    assert_eq!(changes.len(), 6, "{changes:?}");
    assert!(e.iter().all(|e| e.time == wall + 4 * HOUR));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_task_not_done_in_its_time_to_complete_is_overdue_for_completion_once() {
    let mut m = manager();
    let opened = T0 + HOUR;
    m.alert(&alert(Level::Orange, Status::Firing, opened));
    m.command(command(opened + HOUR, &id(Track::Legal), Action::Done));
    // Orange has three days to complete; legal was done, the others were not.
    let (e, _) = m.advance(opened + 3 * DAY + HOUR);
    let late: Vec<(Track, Millis)> = e
        .iter()
        .filter(|e| e.change == Change::CompletionOverdue)
        .map(|e| (e.task.track, e.time))
        .collect();
    assert_eq!(
        late,
        [
            (Track::Opinion, opened + 3 * DAY),
            (Track::Control, opened + 3 * DAY)
        ]
    );
    let (e, _) = m.advance(opened + 10 * DAY);
    assert!(e.iter().all(|e| e.change != Change::CompletionOverdue));
}
