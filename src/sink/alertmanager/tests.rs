//! The notifier's book: labels, level changes, task alerts and escalations.

use super::*;
use crate::alert::Measure;
use crate::core::level::Level;

fn alert(level: Level, status: Status) -> Alert {
    let key = crate::core::key::Key::new(vec![
        ("district".into(), Cell::Text("西湖区".into())),
        ("street-name".into(), Cell::Text("北山街道".into())),
    ]);
    Alert {
        alert_id: format!("a-{}", level.as_str()),
        incident_id: "inc-1".into(),
        status,
        level,
        pipeline: "grid_rules".into(),
        feeds: vec!["police_incident".into()],
        key,
        window_start: parse_rfc3339("2026-03-14T01:00:00Z").unwrap(),
        window_end: parse_rfc3339("2026-03-14T02:00:00Z").unwrap(),
        measure: Measure {
            value: 7.0,
            expected: Some(2.5),
            threshold: Some(6.0),
            score: None,
            p_value: Some(0.001),
            method: "rules".into(),
            explanation: None,
        },
        summary: "7 incidents".into(),
        event_ids: vec![],
    }
}

const NOW: Millis = 1_800_000_000_000;

#[test]
fn labels_name_the_pipeline_level_feed_and_key() {
    let a = to_alertmanager(&alert(Level::Orange, Status::Firing), NOW);
    assert_eq!(a.labels["alertname"], "grid_rules");
    assert_eq!(a.labels["severity"], "orange");
    assert_eq!(a.labels["feed"], "police_incident");
    assert_eq!(a.labels["district"], "西湖区");
    assert_eq!(a.labels["street_name"], "北山街道", "a valid label name");
    assert_eq!(a.annotations["threshold"], "6");
    assert_eq!(a.annotations["p_value"], "0.001");
    assert!(!a.annotations.contains_key("score"));
    assert_eq!(a.starts_at, "2026-03-14T02:00:00Z");
    assert_eq!(a.ends_at, None);
}

#[test]
fn a_level_change_ends_the_old_alert_and_a_resolution_ends_the_new() {
    let mut b = Book::default();
    b.alert(&alert(Level::Orange, Status::Firing), NOW);
    assert_eq!(b.pending().len(), 1);
    b.pending.clear();
    b.alert(&alert(Level::Red, Status::Firing), NOW);
    let sent = b.pending();
    assert_eq!(sent.len(), 2);
    let old = sent.iter().find(|a| a.labels["severity"] == "orange");
    let new = sent.iter().find(|a| a.labels["severity"] == "red");
    assert_eq!(
        old.and_then(|a| a.ends_at.clone()),
        Some(format_rfc3339(NOW))
    );
    assert_eq!(new.map(|a| a.ends_at.clone()), Some(None));
    b.pending.clear();
    // Tasks of the incident are named on its alert.
    let task: crate::task::Task = serde_json::from_value(serde_json::json!({
        "task_id": "T-legal", "dispatch_id": "D-1", "incident_id": "inc-1",
        "track": "legal", "department": "西湖公安分局", "level": "red",
        "status": "open", "pipeline": "grid_rules", "key": {}, "alert_id": "a-red",
        "opened_at": "2026-03-14T03:00:00Z", "deadline": "2026-03-14T03:30:00Z",
        "escalations": 0, "incident_firing": true, "version": 1
    }))
    .expect("task");
    let mut task = task;
    b.task(&task, NOW);
    task.task_id = "T-control".into();
    b.task(&task, NOW);
    b.task(&task, NOW);
    let sent = b.pending();
    let incident: Vec<&AmAlert> = sent
        .iter()
        .filter(|a| a.labels["alertname"] != TASK_ALERTNAME)
        .collect();
    assert_eq!(incident.len(), 1);
    assert_eq!(incident[0].annotations["task_ids"], "T-control,T-legal");
    assert_eq!(sent.len(), 3, "the incident and its two tasks");
    b.pending.clear();
    b.alert(&alert(Level::Red, Status::Resolved), NOW + 5);
    let sent = b.pending();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].labels["severity"], "red");
    assert_eq!(sent[0].ends_at, Some(format_rfc3339(NOW + 5)));
    b.pending.clear();
    b.resend_all();
    assert_eq!(b.pending().len(), 2, "the tasks fire until they are done");
}

#[test]
fn a_task_reaches_its_department_and_an_escalation_moves_it_to_the_next() {
    let mut b = Book::default();
    let mut task: crate::task::Task = serde_json::from_value(serde_json::json!({
        "task_id": "T-legal", "dispatch_id": "D-1", "incident_id": "inc-1",
        "track": "legal", "department": "区委信访局", "level": "orange",
        "status": "open", "pipeline": "petition_collective",
        "key": {"district": "西湖区", "street": "北山街道"}, "alert_id": "a-1",
        "opened_at": "2026-03-14T03:00:00Z", "deadline": "2026-03-14T07:00:00Z",
        "complete_by": "2026-03-17T03:00:00Z",
        "escalations": 0, "incident_firing": true, "version": 1
    }))
    .expect("task");
    b.task(&task, NOW);
    let sent = b.pending();
    assert_eq!(sent.len(), 1);
    let labels = &sent[0].labels;
    assert_eq!(labels["alertname"], TASK_ALERTNAME);
    assert_eq!(labels["department"], "区委信访局");
    assert_eq!(labels["track"], "legal");
    assert_eq!(labels["task_id"], "T-legal");
    assert_eq!(labels["dispatch_id"], "D-1");
    assert_eq!(labels["street"], "北山街道");
    assert!(sent[0].annotations["summary"].contains("依法处理"));
    b.pending.clear();
    task.department = "区委政法委".into();
    task.status = crate::task::TaskStatus::Escalated;
    b.task(&task, NOW + 1);
    let sent = b.pending();
    assert_eq!(sent.len(), 2);
    let by = |d: &str| sent.iter().find(|a| a.labels["department"] == d).cloned();
    assert!(
        by("区委信访局").and_then(|a| a.ends_at).is_some(),
        "the old one ends"
    );
    assert_eq!(by("区委政法委").map(|a| a.ends_at), Some(None));
    b.pending.clear();
    task.status = crate::task::TaskStatus::Done;
    b.task(&task, NOW + 2);
    let sent = b.pending();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].ends_at,
        Some(format_rfc3339(NOW + 2)),
        "done resolves it"
    );
}
