//! The detect stage on windows built by hand: rows of a coarser key add up,
//! quiet keys resolve, and method state leaves with a forgotten key.

use super::*;
use crate::alert::Status;
use crate::core::time::HOUR;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

/// A window of one batch with these columns.
fn window_of(
    schema: &SchemaRef,
    start: Millis,
    end: Millis,
    columns: Vec<ArrayRef>,
) -> WindowResult {
    WindowResult {
        pipeline: "p".into(),
        start,
        end,
        batches: vec![RecordBatch::try_new(schema.clone(), columns).unwrap()],
        per_row: false,
    }
}

#[test]
fn rows_of_a_coarser_key_add_up_and_quiet_keys_resolve() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("street", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    let config: DetectConfig =
        toml::from_str("value = \"n\"\nkey = [\"street\"]\nmethod = \"threshold\"\nupper = 4\n")
            .unwrap();
    let mut d = PipelineDetector::new(
        "p",
        vec!["petition".into()],
        Some(config),
        vec![],
        &schema,
        10,
        0,
    )
    .unwrap();
    let window = |start: Millis, rows: &[(&str, &str, i64)]| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ];
        window_of(&schema, start, start + 10, columns)
    };
    // 2 + 3 = 5 > 4 for street S: one firing alert keyed by street alone.
    let a = d
        .on_window(&window(0, &[("S", "a", 2), ("S", "b", 3), ("T", "a", 1)]))
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].measure.value, 5.0);
    assert_eq!(a[0].key.get("street"), Some(&Cell::Text("S".into())));
    assert_eq!(a[0].status, Status::Firing);
    // A window without S: S is quiet (0), so its alert resolves.
    let a = d.on_window(&window(10, &[("T", "a", 1)])).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].status, a[0].measure.value), (Status::Resolved, 0.0));
}

#[test]
fn method_state_goes_with_a_key_forgotten_for_idleness() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("street", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    let config: DetectConfig =
        toml::from_str("value = \"n\"\nmethod = \"glrnb\"\nbaseline = 3\n").unwrap();
    let mut d = PipelineDetector::new("p", vec![], Some(config), vec![], &schema, DAY, 0).unwrap();
    let window = |day: i64, rows: &[(&str, i64)]| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ];
        window_of(&schema, day * DAY, (day + 1) * DAY, columns)
    };
    // Street A is active for ten days, B throughout.
    for day in 0..10 {
        d.on_window(&window(day, &[("A", 3), ("B", 3)])).unwrap();
    }
    assert_eq!(d.glr.len(), 2);
    for day in 10..101 {
        d.on_window(&window(day, &[("B", 3)])).unwrap();
    }
    // 90 days after A's last activity the store forgot it, and its GLR state too.
    assert_eq!(d.store.series.len(), 1);
    assert_eq!(
        d.glr.keys().collect::<Vec<_>>(),
        d.store.series.keys().collect::<Vec<_>>()
    );
}

#[test]
fn an_alert_explains_its_baseline_slot_settings_and_window() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("street", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
        Field::new("injuries", DataType::Int64, false),
    ]));
    let config: DetectConfig = toml::from_str(
        "value = \"n\"\nmethod = \"poisson\"\nbaseline = 3\nalpha = 1e-3\nseasonality = \"hour_of_day\"\n",
    )
    .unwrap();
    let mut d = PipelineDetector::new("p", vec![], Some(config), vec![], &schema, HOUR, 0).unwrap();
    let window = |hour: i64, n: i64, injuries: i64| {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(["S"])),
            Arc::new(Int64Array::from_iter_values([n])),
            Arc::new(Int64Array::from_iter_values([injuries])),
        ];
        window_of(&schema, hour * HOUR, (hour + 1) * HOUR, columns)
    };
    // 14:00 on three days: 2, 4, 3 — then 40 at 14:00 on the fourth.
    let mut quiet = Vec::new();
    for (day, n) in [(0, 2), (1, 4), (2, 3)] {
        quiet.extend(d.on_window(&window(day * 24 + 14, n, 0)).unwrap());
        // Other hours hold other values, which the hour-of-day slot leaves out.
        quiet.extend(d.on_window(&window(day * 24 + 15, 1, 0)).unwrap());
        // A window judged normal carries no explanation: it costs nothing.
        assert!(
            d.last_findings()
                .iter()
                .all(|f| f.measure.explanation.is_none())
        );
    }
    assert!(quiet.is_empty());
    let a = d.on_window(&window(3 * 24 + 14, 40, 7)).unwrap();
    assert_eq!(a.len(), 1);
    let e = a[0].measure.explanation.as_ref().expect("an explanation");
    let b = e.baseline.expect("a baseline");
    // By hand: mean (2 + 4 + 3) / 3 = 3, variance ((1 + 1 + 0) / 2) = 1.
    assert_eq!((b.n, b.mean, b.variance), (3, Some(3.0), Some(1.0)));
    assert_eq!(e.slot.as_deref(), Some("hour_of_day 14"));
    assert_eq!(e.parameters["method"], "poisson");
    assert_eq!(e.parameters["alpha"], 1e-3);
    assert_eq!(e.columns["injuries"], 7);
    assert_eq!(e.columns["n"], 40);
    // The alert's JSON carries it.
    let json = serde_json::to_value(&a[0]).unwrap();
    assert_eq!(json["explanation"]["baseline"]["n"], 3);
}
