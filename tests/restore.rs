//! Restoring a checkpoint into pipelines that changed: a pipeline whose SQL,
//! lateness or detection changed since the state was taken starts afresh (and
//! is named), the unchanged ones get their state back as it was.

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
