//! The reference for replay's speed: DataFusion's own batch run of a benchmark
//! query over a JSON-lines file, with its NDJSON reader, the feed's Arrow schema
//! and one partition (one core), the window as `date_bin`. Prints rows and time.
//!
//! `datafusion_batch SCHEMAS FEED FILE KEYS MEASURES`, e.g.
//! `datafusion_batch schemas public_opinion op.jsonl district,topic "count(*),sum(reach),avg(sentiment)"`.

use std::time::Instant;

use datafusion::prelude::{JsonReadOptions, SessionConfig, SessionContext};
use yujing::schema::Catalog;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [schemas, feed, file, keys, measures] = args.as_slice() else {
        anyhow::bail!("usage: datafusion_batch SCHEMAS FEED FILE KEYS MEASURES");
    };
    let catalog = Catalog::load(Some(std::path::Path::new(schemas)))?;
    let schema = catalog
        .get(feed)
        .ok_or_else(|| anyhow::anyhow!("no schema for {feed}"))?;
    let started = Instant::now();
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let ext = std::path::Path::new(file)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut options = JsonReadOptions::default().schema(&schema.arrow);
    options.file_extension = &ext;
    ctx.register_json(feed.as_str(), file.as_str(), options)
        .await?;
    let sql = format!(
        "SELECT {keys}, date_bin(INTERVAL '1 minute', event_time) AS w, {measures} \
         FROM {feed} GROUP BY {keys}, w"
    );
    let rows: usize = ctx
        .sql(&sql)
        .await?
        .collect()
        .await?
        .iter()
        .map(|b| b.num_rows())
        .sum();
    println!("rows {rows} in {:.3}s", started.elapsed().as_secs_f64());
    Ok(())
}
