#!/usr/bin/env bash
# Peak memory and throughput of `yujing replay` on one core, at 1M and 10M events
# of the benchmark feed (same keys). Usage: scripts/bench_memory.sh [events...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
cargo build --release --quiet --bin yujing --example bench_feed
bin="$CARGO_TARGET_DIR/release"
work="${BENCH_DIR:-$HOME/.cache/yujing/bench}"
mkdir -p "$work"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000)
printf '%-10s %12s %12s %10s\n' events seconds events/s peak_MiB
for n in "${sizes[@]}"; do
  feed="$work/bench_$n.jsonl"
  [ -s "$feed" ] || "$bin/examples/bench_feed" "$n" > "$feed"
  log="$work/time_$n.txt"
  /usr/bin/time -v taskset -c 0 "$bin/yujing" replay --quiet \
    --schemas benches/schemas --pipelines benches/pipelines \
    --input "bench_event=$feed" --out "$work/out_$n" 2> "$log"
  secs=$(grep -oP 'in \K[0-9.]+(?=s$)' "$log" | tail -1)
  rss=$(grep 'Maximum resident set size' "$log" | awk '{print $NF}')
  awk -v n="$n" -v s="$secs" -v r="$rss" 'BEGIN { printf "%-10d %12.2f %12.0f %10.1f\n", n, s, n / s, r / 1024 }'
done
