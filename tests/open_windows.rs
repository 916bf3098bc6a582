//! Open windows in the checkpoint: the shipped pipelines over ten generated
//! days, stopped every few chunks — sealed, their state written as JSON and read
//! into a new engine, which goes on with only the chunks after it — give the
//! windows, alerts and tasks of one uninterrupted run. Nothing is re-read, so a
//! bin's states must come back whole, the year-long cumulate's included.

use std::collections::BTreeMap;
use std::sync::Arc;

use yujing::decode::DecodeOptions;
use yujing::engine::{Engine, EngineState};
use yujing::schema::Catalog;
use yujing::sink::MemorySink;
use yujing::source::{Chunk, SourceName};
use yujing::synth::{GenOptions, generate};

fn shipped_engine() -> Engine {
    let catalog = Catalog::embedded().expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt"),
    );
    let compiled = rt
        .block_on(yujing::pipeline::compile_embedded(&catalog))
        .expect("shipped pipelines");
    let mut options = DecodeOptions::with_secret("open-windows-test");
    options.clock = yujing::core::time::Clock::Fixed(i64::MAX / 2);
    Engine::compiled(catalog, compiled, options, rt).expect("engine")
}

/// The generated feeds as chunks of `size` lines, taken from the feeds in turn
/// (as partitions of four topics arrive).
fn chunks(size: usize) -> Vec<Chunk> {
    let generated = generate(&GenOptions {
        seed: 5,
        days: 10,
        late: 10,
        ..GenOptions::default()
    });
    let mut feeds: Vec<(String, std::slice::Chunks<'_, String>)> = generated
        .feeds
        .iter()
        .map(|(feed, lines)| (feed.clone(), lines.chunks(size)))
        .collect();
    let mut out = Vec::new();
    let mut line = BTreeMap::<String, u64>::new();
    loop {
        let mut any = false;
        for (feed, parts) in &mut feeds {
            let Some(part) = parts.next() else { continue };
            any = true;
            let mut chunk = Chunk::new(
                feed.as_str().into(),
                SourceName::Generated(feed.as_str().into()),
            );
            for l in part {
                let n = line.entry(feed.clone()).or_default();
                chunk.push_line(l.as_bytes(), *n);
                *n += 1;
            }
            out.push(chunk);
        }
        if !any {
            return out;
        }
    }
}

/// What a run emitted, as text to compare.
fn outputs(sink: &MemorySink) -> (Vec<String>, Vec<String>, Vec<String>) {
    let windows = sink
        .windows
        .iter()
        .map(|(w, _)| {
            let rows: Vec<String> = w
                .batches
                .iter()
                .map(|b| {
                    arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                        .expect("format")
                        .to_string()
                })
                .collect();
            format!("{} {}..{}\n{}", w.pipeline, w.start, w.end, rows.join("\n"))
        })
        .collect();
    (windows, json(&sink.alerts), json(&sink.tasks))
}

fn json<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    v.iter()
        .map(|x| serde_json::to_string(x).expect("json"))
        .collect()
}

#[test]
fn stopped_and_restored_every_few_chunks_the_shipped_pipelines_emit_what_one_run_does() {
    let chunks = chunks(400);
    assert!(chunks.len() > 40, "{} chunks", chunks.len());

    let mut whole = MemorySink::default();
    let mut engine = shipped_engine();
    for c in &chunks {
        engine.process(c, &mut whole).expect("process");
    }
    engine.finish(&mut whole).expect("finish");

    let mut stopped = MemorySink::default();
    let mut engine = shipped_engine();
    let mut restarts = 0;
    let mut bins_carried = 0;
    for (i, c) in chunks.iter().enumerate() {
        engine.process(c, &mut stopped).expect("process");
        // Sealed more often than restarted: bins collect several segments.
        engine.seal();
        if i % 5 == 4 {
            let text = serde_json::to_string(&engine.state()).expect("json");
            let state: EngineState = serde_json::from_str(&text).expect("state");
            bins_carried += state.open_bins();
            engine = shipped_engine();
            assert!(engine.restore(state).is_empty(), "nothing discarded");
            restarts += 1;
        }
    }
    engine.finish(&mut stopped).expect("finish");
    assert!(
        restarts > 8 && bins_carried > restarts,
        "{restarts} restarts, {bins_carried} bins"
    );

    let (w1, a1, t1) = outputs(&whole);
    let (w2, a2, t2) = outputs(&stopped);
    assert!(
        !a1.is_empty() && !t1.is_empty(),
        "the run raises alerts and tasks"
    );
    assert!(
        whole
            .windows
            .iter()
            .any(|(w, _)| w.pipeline.as_ref() == "negative_list_homicide_rate"),
        "the year-long cumulate emits"
    );
    assert_eq!(w1.len(), w2.len(), "windows");
    for (a, b) in w1.iter().zip(&w2) {
        assert_eq!(a, b);
    }
    assert_eq!(a1, a2, "alerts");
    assert_eq!(t1, t2, "tasks");
}

#[test]
fn a_state_from_before_open_windows_were_checkpointed_still_restores() {
    let mut engine = shipped_engine();
    let mut sink = MemorySink::default();
    for c in chunks(400).iter().take(12) {
        engine.process(c, &mut sink).expect("process");
    }
    let mut state = serde_json::to_value(engine.state()).expect("json");
    // As format 3 wrote it: clocks and progress, no open bins.
    let pipelines = state["pipelines"].as_object_mut().expect("pipelines");
    let mut stripped = 0;
    for (_, saved) in pipelines.iter_mut() {
        let operator = saved[0].as_object_mut().expect("operator state");
        stripped += usize::from(operator.remove("bins").is_some());
        operator.remove("next_end");
        operator.remove("sessions");
    }
    assert!(stripped > 0, "some pipeline had open bins");
    let state: EngineState = serde_json::from_value(state).expect("a format-3 state reads");
    assert_eq!(state.open_bins(), 0);
    let mut fresh = shipped_engine();
    assert!(fresh.restore(state).is_empty(), "nothing discarded");
    // It goes on: the next chunks are taken, and windows close as before.
    let mut after = MemorySink::default();
    for c in chunks(400).iter().skip(12) {
        fresh.process(c, &mut after).expect("process");
    }
    fresh.finish(&mut after).expect("finish");
    assert!(!after.windows.is_empty());
}
