//! Unit tests of the parent module.

use super::*;
use crate::alert::Measure;
use crate::core::key::Cell;
use crate::core::time::{DAY, HOUR};

fn def() -> CompoundDef {
    let text = "name = \"c\"\n[compound]\ninputs = [\"p\", \"q\"]\nkey = [\"district\"]\nwithin = \"2d\"\n";
    parse(Path::new("c.toml"), text).unwrap()
}

/// The compound alerts a fresh detector raises for `alerts`, in order.
fn run(alerts: &[Alert]) -> Vec<Alert> {
    let mut c = CompoundDetector::new(def());
    alerts.iter().flat_map(|a| c.on_alert(a)).collect()
}

fn alert(
    pipeline: &str,
    street: &str,
    level: Level,
    status: Status,
    start: Millis,
    width: Millis,
) -> Alert {
    let key = Key::new(vec![
        ("district".into(), Cell::Text("西湖区".into())),
        ("street".into(), Cell::Text(street.into())),
    ]);
    Alert {
        alert_id: String::new(),
        incident_id: String::new(),
        status,
        level,
        pipeline: pipeline.into(),
        feeds: vec![format!("{pipeline}_feed")],
        key,
        window_start: start,
        window_end: start + width,
        measure: Measure::observed(1.0, "t".into()),
        summary: String::new(),
        event_ids: vec![format!("{pipeline}-1")],
    }
}

#[test]
fn two_pipelines_in_overlapping_windows_raise_one_level_up() {
    let mut c = CompoundDetector::new(def());
    // p fires for a day; q fires in an hour inside that day.
    assert!(
        c.on_alert(&alert("p", "a", Level::Yellow, Status::Firing, 0, DAY))
            .is_empty()
    );
    // Not an input: ignored.
    assert!(
        c.on_alert(&alert("z", "a", Level::Red, Status::Firing, 0, DAY))
            .is_empty()
    );
    let out = c.on_alert(&alert(
        "q",
        "b",
        Level::Orange,
        Status::Firing,
        5 * HOUR,
        HOUR,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].status, out[0].level), (Status::Firing, Level::Red));
    assert_eq!(out[0].key.len(), 1, "keyed by district only");
    assert_eq!(out[0].measure.value, 2.0);
    assert_eq!(out[0].feeds, vec!["p_feed", "q_feed"]);
    assert_eq!(out[0].event_ids, vec!["p-1", "q-1"]);
    // q resolves: fewer than two pipelines remain, so the compound resolves.
    let out = c.on_alert(&alert(
        "q",
        "b",
        Level::Orange,
        Status::Resolved,
        6 * HOUR,
        HOUR,
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, Status::Resolved);
}

#[test]
fn the_same_alerts_whatever_order_pipelines_deliver_in() {
    let in_order = [
        alert("p", "a", Level::Yellow, Status::Firing, 0, DAY),
        alert("q", "b", Level::Orange, Status::Firing, 5 * HOUR, HOUR),
        alert("p", "a", Level::Yellow, Status::Resolved, 10 * HOUR, DAY),
    ];
    // p's windows closed faster: its resolution arrives before q's alert.
    let skewed = [
        in_order[0].clone(),
        in_order[2].clone(),
        in_order[1].clone(),
    ];
    let (a, b) = (run(&in_order), run(&skewed));
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].status, a[0].level, a[1].status),
        (Status::Firing, Level::Red, Status::Resolved)
    );
    assert_eq!(a[1].window_start, 10 * HOUR, "ends when p resolved");
    assert_eq!(a, b);
}

#[test]
fn episodes_apart_do_not_combine() {
    // Still firing, but its episode began more than `within` (2 days) earlier.
    let far = [
        alert("p", "a", Level::Yellow, Status::Firing, 0, DAY),
        alert("q", "b", Level::Yellow, Status::Firing, 3 * DAY, HOUR),
    ];
    assert!(run(&far).is_empty());
    // Resolved before the other began: nothing to combine with.
    let after = [
        alert("p", "a", Level::Yellow, Status::Firing, 0, DAY),
        alert("p", "a", Level::Yellow, Status::Resolved, DAY, DAY),
        alert("q", "b", Level::Red, Status::Firing, DAY + HOUR, HOUR),
    ];
    assert!(run(&after).is_empty());
}
