//! Property: for random events with disorder below the lateness, cut into chunks
//! of random sizes, the streaming windows equal a plain batch `GROUP BY` that
//! DataFusion runs over the same events.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use yujing::core::time::{MINUTE, format_rfc3339, parse_rfc3339};
use yujing::decode::DecodeOptions;
use yujing::engine::Engine;
use yujing::pipeline::parse_pipeline;
use yujing::schema::Catalog;
use yujing::sink::{MemorySink, window_rows};
use yujing::source::{Chunk, SourceName};

const BASE: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

#[derive(Debug, Clone)]
struct Ev {
    t: i64,
    grid: &'static str,
    injuries: i64,
    delay: i64,
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (
            0i64..6 * 60,
            0i64..60_000,
            prop::sample::select(vec!["A", "B", "C"]),
            0i64..4,
            0i64..20,
        ),
        0..250,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(m, ms, grid, injuries, delay)| Ev {
                t: BASE + m * MINUTE + ms,
                grid,
                injuries,
                delay: delay * MINUTE,
            })
            .collect()
    })
}

type Rows = BTreeMap<(String, i64), (i64, i64)>;

/// Police-incident lines for the events, numbered from `first`.
fn police_chunk(evs: &[&Ev], first: usize) -> Chunk {
    let mut chunk = Chunk::new(
        "police_incident".into(),
        SourceName::Generated("prop".into()),
    );
    for (j, e) in evs.iter().enumerate() {
        let line = format!(
            r#"{{"event_id":"e{}","event_time":"{}","district":"d","grid_id":"{}","injuries":{}}}"#,
            first + j,
            format_rfc3339(e.t),
            e.grid,
            e.injuries
        );
        chunk.push_line(line.as_bytes(), (first + j) as u64);
    }
    chunk
}

fn streaming(evs: &[Ev], window_sql: &str, chunk_sizes: &[usize]) -> Rows {
    let text = format!(
        "name = \"p\"\nlateness = \"30m\"\nsql = \"\"\"\nSELECT window_start, window_end, grid_id, count(*) AS n, sum(injuries) AS s FROM police_incident GROUP BY grid_id, {window_sql}\n\"\"\"\n"
    );
    let def = parse_pipeline(std::path::Path::new("p.toml"), &text).expect("pipeline");
    let catalog = Catalog::embedded().expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt"),
    );
    let pipeline = rt.block_on(def.compile(&catalog)).expect("compiles");
    let mut engine =
        Engine::new(catalog, vec![pipeline], DecodeOptions::with_secret("p"), rt).expect("engine");
    let mut arrival: Vec<&Ev> = evs.iter().collect();
    arrival.sort_by_key(|e| e.t + e.delay);
    let mut sink = MemorySink::default();
    let mut i = 0;
    let mut k = 0;
    while i < arrival.len() {
        let n = chunk_sizes[k % chunk_sizes.len()].max(1);
        k += 1;
        let chunk = police_chunk(&arrival[i..(i + n).min(arrival.len())], i);
        i += n;
        engine.process(&chunk, &mut sink).expect("process");
    }
    engine.finish(&mut sink).expect("finish");
    assert!(sink.dead.is_empty(), "no event is late: {:?}", sink.dead);
    let mut rows = Rows::new();
    for (w, ordered) in &sink.windows {
        for r in window_rows(w, *ordered) {
            let start = parse_rfc3339(r["window_start"].as_str().expect("start")).expect("time");
            let key = (r["grid_id"].as_str().expect("grid").to_string(), start);
            let prev = rows.insert(
                key,
                (r["n"].as_i64().expect("n"), r["s"].as_i64().expect("s")),
            );
            assert!(prev.is_none(), "a window row is emitted once");
        }
    }
    rows
}

/// The same figures from one batch query: each event joined to the window starts that contain it.
fn batch(evs: &[Ev], slide: i64, width: i64) -> Rows {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        let schema = Arc::new(Schema::new(vec![
            Field::new("grid_id", DataType::Utf8, false),
            Field::new("t", DataType::Int64, false),
            Field::new("injuries", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(evs.iter().map(|e| e.grid).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(evs.iter().map(|e| e.t).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(evs.iter().map(|e| e.injuries).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        let ctx = SessionContext::new();
        ctx.register_table("ev", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")))
            .expect("register");
        let offsets = (0..width / slide).map(|k| format!("({k})")).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT grid_id, (t / {slide}) * {slide} - k * {slide} AS ws, count(*) AS n, sum(injuries) AS s
             FROM ev CROSS JOIN (VALUES {offsets}) AS o(k)
             GROUP BY grid_id, ws"
        );
        let out = ctx.sql(&sql).await.expect("sql").collect().await.expect("collect");
        let mut rows = Rows::new();
        for b in out {
            let g = b.column(0).as_string::<i32>();
            let ws = b.column(1).as_primitive::<Int64Type>();
            let n = b.column(2).as_primitive::<Int64Type>();
            let s = b.column(3).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                rows.insert((g.value(r).to_string(), ws.value(r)), (n.value(r), s.value(r)));
            }
        }
        rows
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn tumble_equals_batch_group_by(evs in events(), sizes in prop::collection::vec(1usize..60, 1..5)) {
        let got = streaming(&evs, "tumble(INTERVAL '1 hour')", &sizes);
        prop_assert_eq!(got, batch(&evs, 60 * MINUTE, 60 * MINUTE));
    }

    #[test]
    fn hop_equals_batch_group_by(evs in events(), sizes in prop::collection::vec(1usize..60, 1..5)) {
        let got = streaming(&evs, "hop(INTERVAL '15 minutes', INTERVAL '1 hour')", &sizes);
        prop_assert_eq!(got, batch(&evs, 15 * MINUTE, 60 * MINUTE));
    }
}

/// Sessions from the definition: per grid, events sorted by time, cut where the
/// next event is a gap or more after the previous one.
fn sessions(evs: &[Ev], gap: i64) -> Rows {
    let mut by_grid: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        by_grid.entry(e.grid).or_default().push(e);
    }
    let mut rows = Rows::new();
    for (grid, mut list) in by_grid {
        list.sort_by_key(|e| e.t);
        let mut i = 0;
        while i < list.len() {
            let mut j = i + 1;
            while j < list.len() && list[j].t < list[j - 1].t + gap {
                j += 1;
            }
            let n = (j - i) as i64;
            let s = list[i..j].iter().map(|e| e.injuries).sum();
            rows.insert((grid.to_string(), list[i].t), (n, s));
            i = j;
        }
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sessions_equal_their_definition(evs in events(), sizes in prop::collection::vec(1usize..60, 1..5)) {
        let got = streaming(&evs, "session(INTERVAL '20 minutes')", &sizes);
        prop_assert_eq!(got, sessions(&evs, 20 * MINUTE));
    }
}

#[test]
fn open_state_stays_bounded_over_a_long_stream() {
    // Ten hours of events in order: the open bins of a 1-minute tumble and a
    // 10-minute/1-hour hop stay within what the lateness and width require.
    let evs: Vec<Ev> = (0..36_000)
        .map(|i| Ev {
            t: BASE + i * 1_000,
            grid: ["A", "B", "C"][(i % 3) as usize],
            injuries: i % 2,
            delay: 0,
        })
        .collect();
    let catalog = Catalog::embedded().expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt"),
    );
    let mut pipelines = Vec::new();
    for (name, window) in [
        ("t", "tumble(INTERVAL '1 minute')"),
        ("h", "hop(INTERVAL '10 minutes', INTERVAL '1 hour')"),
    ] {
        let text = format!(
            "name = \"{name}\"\nlateness = \"30s\"\nsql = \"SELECT grid_id, count(*) AS n FROM police_incident GROUP BY grid_id, {window}\"\n"
        );
        let def = parse_pipeline(std::path::Path::new("p.toml"), &text).expect("pipeline");
        pipelines.push(rt.block_on(def.compile(&catalog)).expect("compiles"));
    }
    let mut engine =
        Engine::new(catalog, pipelines, DecodeOptions::with_secret("p"), rt).expect("engine");
    let mut sink = MemorySink::default();
    let mut most = 0;
    for block in evs.chunks(500) {
        let block: Vec<&Ev> = block.iter().collect();
        let chunk = police_chunk(&block, 0);
        engine.process(&chunk, &mut sink).expect("process");
        most = most.max(engine.open_bins());
    }
    // Tumble: the current minute and the one within lateness; hop: six 10-minute bins plus one.
    assert!(most <= 2 + 7 + 1, "open bins peaked at {most}");
    engine.finish(&mut sink).expect("finish");
    assert_eq!(engine.open_bins(), 0);
    let rows: usize = sink.windows.iter().map(|(w, _)| w.num_rows()).sum();
    assert_eq!(
        rows,
        600 * 3 + (60 + 5) * 3,
        "600 minutes and 65 hop windows, three grids each"
    );
}
