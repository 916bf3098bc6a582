//! Replay throughput (events/s) on the benchmark query — a 1-minute tumbling
//! count, sum and average by district × category — against two references on the
//! same data: decoding alone, and DataFusion running the same GROUP BY as one batch.
//! The `opinion` group does the same on the opinion-shaped feed of the shipped
//! schema (by district × topic). Run with `taskset -c 0 cargo bench --bench replay`
//! for one core.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use yujing::decode::{DecodeOptions, Decoder};
use yujing::engine::Engine;
use yujing::schema::{Catalog, FeedSchema};
use yujing::sink::Sink;
use yujing::source::{Chunk, SourceName};

const EVENTS: u64 = 500_000;

struct CountingSink(u64);

impl Sink for CountingSink {
    fn window(&mut self, w: &yujing::window::WindowResult, _: bool) -> yujing::error::Result<()> {
        self.0 += w.num_rows() as u64;
        Ok(())
    }
    fn dead_letter(
        &mut self,
        _: &yujing::core::deadletter::DeadLetter,
    ) -> yujing::error::Result<()> {
        Ok(())
    }
    fn alert(&mut self, _: &yujing::alert::Alert) -> yujing::error::Result<()> {
        Ok(())
    }
    fn task(&mut self, _: &yujing::task::TaskEvent) -> yujing::error::Result<()> {
        Ok(())
    }
}

/// The benchmark query as one batch `GROUP BY`, the window as a `date_bin`.
const BENCH_SQL: &str = "SELECT district, category, date_bin(INTERVAL '1 minute', event_time) AS w, \
     count(*), sum(persons), avg(sentiment) FROM bench_event GROUP BY district, category, w";

/// The opinion query, likewise.
const OPINION_SQL: &str = "SELECT district, topic, date_bin(INTERVAL '1 minute', event_time) AS w, \
     count(*), sum(reach), avg(sentiment) FROM public_opinion GROUP BY district, topic, w";

/// Runs `sql` as one batch in a fresh one-partition context whose tables
/// `register` adds; returns the row count.
async fn batch_group_by(sql: &str, register: impl AsyncFnOnce(&SessionContext)) -> usize {
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
    );
    register(&ctx).await;
    let df = ctx.sql(sql).await.expect("sql");
    df.collect()
        .await
        .expect("collect")
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

/// DataFusion's NDJSON reader over `path` as table `feed`, and `sql` over it.
async fn ndjson_group_by(feed: &str, schema: &FeedSchema, path: &str, sql: &str) -> usize {
    batch_group_by(sql, async |ctx| {
        let options = datafusion::prelude::JsonReadOptions::default().schema(&schema.arrow);
        ctx.register_json(feed, path, options)
            .await
            .expect("register");
    })
    .await
}

/// The catalog of `schemas`, a runtime and the pipelines of `pipelines` (paths
/// from the crate root).
fn setup(
    schemas: &str,
    pipelines: &str,
) -> (
    Catalog,
    Arc<tokio::runtime::Runtime>,
    Vec<yujing::pipeline::Pipeline>,
) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(Some(&root.join(schemas))).expect("schemas");
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt"),
    );
    let pipelines = rt
        .block_on(yujing::pipeline::compile_dir(
            &root.join(pipelines),
            &catalog,
        ))
        .expect("pipelines")
        .pipelines;
    (catalog, rt, pipelines)
}

/// The engine over `chunks` from lines in memory; returns the window rows.
fn stream(
    catalog: &Catalog,
    pipelines: &[yujing::pipeline::Pipeline],
    options: &DecodeOptions,
    rt: &Arc<tokio::runtime::Runtime>,
    chunks: &[Chunk],
) -> u64 {
    let mut engine = Engine::new(
        catalog.clone(),
        pipelines.to_vec(),
        options.clone(),
        rt.clone(),
    )
    .expect("engine");
    let mut sink = CountingSink(0);
    for c in chunks {
        engine.process(c, &mut sink).expect("process");
    }
    engine.finish(&mut sink).expect("finish");
    sink.0
}

fn chunks() -> Vec<Chunk> {
    let mut buf = Vec::new();
    yujing::bench_feed::write_lines(&mut buf, EVENTS, 42).expect("bench feed");
    split("bench_event", &buf)
}

/// Lines cut into replay-sized chunks of `feed`.
fn split(feed: &str, buf: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut chunk = Chunk::new(feed.into(), SourceName::Generated("bench".into()));
    for (i, line) in buf
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        chunk.push_line(line, i as u64 + 1);
        if chunk.len() == yujing::replay::CHUNK_LINES {
            out.push(std::mem::replace(
                &mut chunk,
                Chunk::new(feed.into(), SourceName::Generated("bench".into())),
            ));
        }
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

fn bench(c: &mut Criterion) {
    let (catalog, rt, pipelines) = setup("benches/schemas", "benches/pipelines");
    let chunks = chunks();
    let options = DecodeOptions::with_secret("bench");

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);

    g.bench_function("decode_only", |b| {
        let schema = catalog.get("bench_event").expect("feed").clone();
        b.iter(|| {
            let mut d = Decoder::new(schema.clone(), options.clone());
            chunks
                .iter()
                .map(|c| d.decode(c).batch.num_rows())
                .sum::<usize>()
        })
    });

    g.bench_function("streaming_windows", |b| {
        b.iter(|| stream(&catalog, &pipelines, &options, &rt, &chunks))
    });

    // DataFusion on the decoded batches at once, with the window as a date_bin.
    let schema = catalog.get("bench_event").expect("feed").clone();
    let mut d = Decoder::new(schema.clone(), options.clone());
    let batches: Vec<_> = chunks.iter().map(|c| d.decode(c).batch).collect();
    g.bench_function("datafusion_batch_group_by", |b| {
        b.iter(|| {
            rt.block_on(batch_group_by(BENCH_SQL, async |ctx| {
                let table =
                    MemTable::try_new(schema.arrow.clone(), vec![batches.clone()]).expect("table");
                ctx.register_table("bench_event", Arc::new(table))
                    .expect("register");
            }))
        })
    });

    // DataFusion reading the same JSON lines from a file and grouping: the batch
    // engine end to end, as replay is.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench_event.json");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
    yujing::bench_feed::write_lines(&mut file, EVENTS, 42).expect("write");
    drop(file);
    let path = path.display().to_string();
    g.bench_function("datafusion_batch_ndjson_file", |b| {
        b.iter(|| rt.block_on(ndjson_group_by("bench_event", &schema, &path, BENCH_SQL)))
    });
    g.finish();
}

/// The opinion-shaped feed: the engine from lines in memory against DataFusion
/// reading the same lines from a file, both one-minute windows by district × topic.
fn opinion(c: &mut Criterion) {
    const N: u64 = 200_000;
    let (catalog, rt, pipelines) = setup("schemas", "benches/opinion");
    let mut buf = Vec::new();
    yujing::bench_feed::write_opinion_lines(&mut buf, N, 42).expect("opinion feed");
    let chunks = split("public_opinion", &buf);
    let options = DecodeOptions::with_secret("bench");
    let mut g = c.benchmark_group("opinion");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("streaming_windows", |b| {
        b.iter(|| stream(&catalog, &pipelines, &options, &rt, &chunks))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("public_opinion.json");
    std::fs::write(&path, &buf).expect("write");
    let path = path.display().to_string();
    let schema = catalog.get("public_opinion").expect("feed").clone();
    g.bench_function("datafusion_batch_ndjson_file", |b| {
        b.iter(|| {
            rt.block_on(ndjson_group_by(
                "public_opinion",
                &schema,
                &path,
                OPINION_SQL,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench, opinion);
criterion_main!(benches);
