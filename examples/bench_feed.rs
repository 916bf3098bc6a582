//! Writes N benchmark events to stdout: `cargo run --release --example bench_feed -- 1000000 > f.jsonl`.

fn main() -> std::io::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    yujing::bench_feed::write_lines(&mut out, n, 42)
}
