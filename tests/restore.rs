//! Restoring a checkpoint into pipelines that changed: a pipeline whose SQL,
//! lateness or detection changed since the state was taken starts afresh (and
//! is named), the unchanged ones get their state back as it was. And the same
//! in a running engine (a redeploy): a removed pipeline's incident is withdrawn,
//! a kept one goes on with its open windows.

use std::sync::Arc;

use yujing::decode::DecodeOptions;
use yujing::engine::{Engine, EngineState};
use yujing::pipeline::parse_pipeline;
use yujing::schema::Catalog;
use yujing::sink::MemorySink;
use yujing::source::{Chunk, SourceName};

mod common;

fn engine(pipelines: &[(&str, &str)]) -> Engine {
    let catalog = Catalog::embedded().expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt"),
    );
    let compiled = pipelines
        .iter()
        .map(|(name, text)| {
            let def = parse_pipeline(std::path::Path::new(&format!("{name}.toml")), text)
                .expect("pipeline");
            rt.block_on(def.compile(&catalog)).expect("compiles")
        })
        .collect();
    let mut options = DecodeOptions::with_secret("restore-test");
    options.clock = yujing::core::time::Clock::Fixed(i64::MAX / 2);
    Engine::new(catalog, compiled, options, rt).expect("engine")
}

fn hourly(name: &str, threshold: u32) -> String {
    common::GRID_RULES
        .replace("grid_rules", name)
        .replace("n >= 3", &format!("n >= {threshold}"))
}

#[test]
fn a_changed_pipeline_starts_afresh_and_the_others_keep_their_state() {
    let (a, b) = (hourly("a", 3), hourly("b", 3));
    let mut first = engine(&[("a", &a), ("b", &b)]);
    let mut chunk = Chunk::new("police_incident".into(), SourceName::Generated("t".into()));
    for (i, r) in common::escalating_incidents().iter().enumerate() {
        chunk.push_line(r.as_bytes(), i as u64);
    }
    let mut sink = MemorySink::default();
    first.process(&chunk, &mut sink).expect("process");
    assert!(!sink.alerts.is_empty());
    // Through JSON, as the checkpoint file holds it.
    let saved = serde_json::to_string(&first.state()).expect("json");
    let taken = serde_json::to_value(first.state()).expect("json");

    // Same definitions: everything comes back.
    let mut same = engine(&[("a", &a), ("b", &b)]);
    let state: EngineState = serde_json::from_str(&saved).expect("state");
    assert!(same.restore(state).is_empty());
    let restored = serde_json::to_value(same.state()).expect("json");
    assert_eq!(restored["pipelines"], taken["pipelines"]);

    // b's rule changed: b starts afresh, a keeps its state.
    let b2 = hourly("b", 4);
    let mut changed = engine(&[("a", &a), ("b", &b2)]);
    let state: EngineState = serde_json::from_str(&saved).expect("state");
    assert_eq!(changed.restore(state), ["b"]);
    let restored = serde_json::to_value(changed.state()).expect("json");
    assert_eq!(restored["pipelines"]["a"], taken["pipelines"]["a"]);
    assert_ne!(restored["pipelines"]["b"], taken["pipelines"]["b"]);
    let fresh = serde_json::to_value(engine(&[("b", &b2)]).state()).expect("json");
    assert_eq!(restored["pipelines"]["b"], fresh["pipelines"]["b"]);
}

#[test]
fn a_checkpoint_whose_clock_is_in_the_future_is_not_restored() {
    let a = hourly("a", 3);
    let mut first = engine(&[("a", &a)]);
    let mut chunk = Chunk::new("police_incident".into(), SourceName::Generated("t".into()));
    // As a build without the `future` check would have taken it.
    chunk.push_line(common::incident(1, "2099-01-01T00:00:00Z").as_bytes(), 0);
    first
        .process(&chunk, &mut MemorySink::default())
        .expect("process");
    let mut state = first.state();
    let now = yujing::core::time::parse_rfc3339("2026-12-01T00:00:00Z").expect("time");
    assert_eq!(state.drop_clocks_after(now), ["a"]);
    let mut second = engine(&[("a", &a)]);
    let fresh = serde_json::to_value(second.state()).expect("json");
    assert!(second.restore(state).is_empty());
    assert_eq!(serde_json::to_value(second.state()).expect("json"), fresh);
}

/// One pipeline compiled from its text.
fn compiled(name: &str, text: &str) -> yujing::pipeline::Pipeline {
    let catalog = Catalog::embedded().expect("schemas");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let def =
        parse_pipeline(std::path::Path::new(&format!("{name}.toml")), text).expect("pipeline");
    rt.block_on(def.compile(&catalog)).expect("compiles")
}

#[test]
fn a_redeploy_withdraws_a_removed_pipelines_incident_and_the_kept_one_runs_on() {
    let (a, b) = (hourly("a", 3), hourly("b", 3));
    let mut e = engine(&[("a", &a), ("b", &b)]);
    let records = common::escalating_incidents();
    let chunk = |lines: &[String], from: usize| {
        let mut c = Chunk::new("police_incident".into(), SourceName::Generated("t".into()));
        for (i, r) in lines.iter().enumerate() {
            c.push_line(r.as_bytes(), (from + i) as u64);
        }
        c
    };
    // Three incidents in 01:00–02:00 and the first of 02:00–03:00: both orange.
    let mut sink = MemorySink::default();
    e.process(&chunk(&records[..4], 0), &mut sink)
        .expect("process");
    let firing = |p: &str| {
        sink.alerts
            .iter()
            .find(|a| a.pipeline == p)
            .cloned()
            .expect(p)
    };
    let (a_fired, b_fired) = (firing("a"), firing("b"));

    // The new set: `a` unchanged, `b` gone.
    let catalog = Catalog::embedded().expect("schemas");
    let feeds = catalog.feeds.keys().cloned().collect();
    let set = yujing::pipeline::Compiled {
        pipelines: vec![compiled("a", &a)],
        compounds: Vec::new(),
        routing: yujing::task::routing::RoutingTable::embedded(&feeds).expect("routing"),
    };
    let mut after = MemorySink::default();
    let done = e.redeploy(set, None, &mut after).expect("redeploy");
    assert_eq!(done.kept, ["a"]);
    assert_eq!(done.removed, ["b"]);
    assert!(done.restarted.is_empty() && done.added.is_empty());
    assert_eq!(done.definitions.len(), 1);
    // b's incident is withdrawn, saying why; a's is left alone.
    assert_eq!(after.alerts.len(), 1, "{:?}", after.alerts);
    let withdrawn = after.alerts[0].clone();
    assert_eq!(withdrawn.pipeline, "b");
    assert_eq!(withdrawn.incident_id, b_fired.incident_id);
    assert_eq!(withdrawn.status, yujing::alert::Status::Resolved);
    assert_eq!(
        withdrawn.measure.method,
        "withdrawn: the pipeline was removed"
    );

    // a kept its open window: the six later incidents of 02:00–03:00 join the
    // one it holds, so its red escalation counts seven, in the same incident.
    e.process(&chunk(&records[4..], 4), &mut after)
        .expect("process");
    let red = after
        .alerts
        .iter()
        .find(|x| x.pipeline == "a" && x.level == yujing::core::level::Level::Red)
        .expect("a's red escalation");
    assert_eq!(red.measure.value, 7.0);
    assert_eq!(red.incident_id, a_fired.incident_id);
    assert!(
        after
            .alerts
            .iter()
            .all(|x| x.pipeline != "b" || *x == withdrawn)
    );
}
