//! What a checkpoint costs as state grows: an open one-day window holding
//! 10 000, 100 000 and 1 000 000 keys (district × category), each key seen in
//! two segments so the seal merges them. Prints, per size, the time to seal and
//! take the engine state (on the engine's thread), to write it as the daemon's
//! checkpoint JSON (on the writer's thread), its size, and the time to read it
//! back into a new engine. `cargo bench --bench checkpoint`
//! (`-- 10000` for one size).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use yujing::decode::DecodeOptions;
use yujing::engine::{Engine, EngineState};
use yujing::schema::Catalog;
use yujing::sink::MemorySink;
use yujing::source::{Chunk, SourceName};

/// Lines for `keys` keys, each twice: 12 districts × `keys / 12` categories.
fn chunks(keys: usize, round: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut chunk = Chunk::new("bench_event".into(), SourceName::Generated("bench".into()));
    for k in 0..keys {
        let line = format!(
            r#"{{"event_id":"b{round}-{k}","event_time":"2026-03-01T{:02}:{:02}:00Z","district":"区{:02}","category":"c{}","persons":{},"sentiment":0.{}}}"#,
            round * 2,
            k % 60,
            k % 12,
            k / 12,
            1 + k % 3,
            k % 1000
        );
        chunk.push_line(line.as_bytes(), k as u64);
        if chunk.lines.len() == 8192 {
            out.push(std::mem::replace(
                &mut chunk,
                Chunk::new("bench_event".into(), SourceName::Generated("bench".into())),
            ));
        }
    }
    out.push(chunk);
    out
}

fn engine(catalog: &Catalog, rt: &Arc<tokio::runtime::Runtime>) -> Engine {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pipelines = rt
        .block_on(yujing::pipeline::compile_dir(
            &root.join("benches/checkpoint"),
            catalog,
        ))
        .expect("pipelines")
        .pipelines;
    let mut options = DecodeOptions::with_secret("checkpoint-bench");
    options.clock = yujing::core::time::Clock::Fixed(i64::MAX / 2);
    Engine::new(catalog.clone(), pipelines, options, rt.clone()).expect("engine")
}

fn main() {
    // Test runners list a bench's tests (`--list`): this one has none to run there.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(Some(&root.join("benches/schemas"))).expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt"),
    );
    println!(
        "| keys | seal + state (engine thread) | the next, nothing new | JSON (writer thread) | checkpoint size | bytes per key | read + restore |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for keys in sizes {
        let mut e = engine(&catalog, &rt);
        let mut sink = MemorySink::default();
        for round in 0..2 {
            for c in chunks(keys, round) {
                e.process(&c, &mut sink).expect("process");
            }
            // The first round's segment is sealed, as a checkpoint would; the
            // second's is sealed by the timed checkpoint below.
            if round == 0 {
                e.seal();
            }
        }
        assert!(sink.windows.is_empty(), "the window stays open");
        // On the engine's thread: seal, merge, encode as IPC. On the writer's: JSON.
        let started = Instant::now();
        let state = e.state();
        let take = started.elapsed();
        let started = Instant::now();
        let text = serde_json::to_vec(&state).expect("json");
        let write = started.elapsed();
        // The next checkpoint with nothing new: the bins keep their encoding.
        let started = Instant::now();
        let again = e.state();
        let take_again = started.elapsed();
        assert_eq!(again.open_bins(), state.open_bins());
        let started = Instant::now();
        let state: EngineState = serde_json::from_slice(&text).expect("state");
        let mut fresh = engine(&catalog, &rt);
        assert!(fresh.restore(state).is_empty());
        let read = started.elapsed();
        // The restored window holds every key.
        let mut out = MemorySink::default();
        fresh.finish(&mut out).expect("finish");
        let rows: usize = out.windows.iter().map(|(w, _)| w.num_rows()).sum();
        assert_eq!(rows, keys, "keys after restore");
        println!(
            "| {keys} | {:.3} s | {:.3} s | {:.3} s | {:.1} MiB | {} | {:.3} s |",
            take.as_secs_f64(),
            take_again.as_secs_f64(),
            write.as_secs_f64(),
            text.len() as f64 / (1 << 20) as f64,
            text.len() / keys,
            read.as_secs_f64()
        );
    }
}
