#!/usr/bin/env bash
# Throughput and peak memory of `yujing replay` beside DataFusion's own batch run
# of the same query on the same file, measured side by side in one run:
#   datafusion   DataFusion's NDJSON reader + GROUP BY (src/bin/datafusion_batch.rs), core 0
#   replay 1     yujing replay --threads 1 (decode inline), core 0
#   replay 2     yujing replay --threads 2 (read and decode ahead), cores 0 and 1
# Usage: scripts/bench_memory.sh [bench|opinion] [events...]
#   bench:   the narrow benchmark feed (benches/schemas, benches/pipelines)
#   opinion: the opinion-shaped feed of the shipped schema (benches/opinion)
# ROUNDS (default 2) alternates the three that many times; each row is one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
shape=bench
case "${1:-}" in bench|opinion) shape="$1"; shift ;; esac
bench_shape "$shape"
bench_build
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000)
cores=$(nproc)
printf '%-10s %-12s %8s %12s %10s %8s\n' events run seconds events/s peak_MiB rows
row() { # events, label, seconds, rss KiB, rows
  awk -v n="$1" -v l="$2" -v s="$3" -v r="$4" -v w="$5" \
    'BEGIN { printf "%-10d %-12s %8.2f %12.0f %10.1f %8s\n", n, l, s, n / s, r / 1024, w }'
}
for n in "${sizes[@]}"; do
  bench_file "$shape" "$n"
  for _ in $(seq "${ROUNDS:-2}"); do
    log="$work/time_df.txt"
    /usr/bin/time -v taskset -c 0 "$bin/datafusion_batch" "$schemas" "$feed_name" "$feed" \
      "$keys" "$measures" > "$work/df.out" 2> "$log"
    secs=$(grep -oP 'in \K[0-9.]+(?=s$)' "$work/df.out")
    rows=$(grep -oP 'rows \K[0-9]+' "$work/df.out")
    row "$n" datafusion "$secs" "$(awk '/Maximum resident/ { print $NF }' "$log")" "$rows"
    for threads in 1 2; do
      [ "$threads" -le "$cores" ] || continue
      cpus=0; [ "$threads" = 1 ] || cpus="0-$((threads - 1))"
      log="$work/time_$threads.txt"
      /usr/bin/time -v taskset -c "$cpus" "$bin/yujing" replay --quiet --threads "$threads" \
        --schemas "$schemas" --pipelines "$pipelines" \
        --input "$feed_name=$feed" --out "$work/out_${shape}_$n" 2> "$log"
      secs=$(grep -oP 'in \K[0-9.]+(?=s$)' "$log" | tail -1)
      rows=$(grep -oP 'windows \(\K[0-9]+' "$log" | tail -1)
      row "$n" "replay $threads" "$secs" "$(awk '/Maximum resident/ { print $NF }' "$log")" "$rows"
    done
  done
done
