//! Writes N benchmark events to stdout:
//! `cargo run --release --features bench-tools --bin bench_feed -- 1000000 [bench|opinion] > f.jsonl`.

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match args.next().as_deref() {
        Some("opinion") => yujing::bench_feed::write_opinion_lines(&mut out, n, 42),
        _ => yujing::bench_feed::write_lines(&mut out, n, 42),
    }
}
