#!/usr/bin/env bash
# End-to-end throughput through the broker: N events of the benchmark feed are
# produced to a fresh topic (3 partitions) by an independent client (Python
# confluent-kafka), then `yujing run` (release build) consumes them in a consumer
# group, decodes, windows and aggregates them with benches/pipelines, checkpoints,
# and writes its outputs to their topics. Reports the producer's rate and the
# daemon's: events counted by its /metrics over the time from ready to the last,
# and the CPU seconds it spent per million events (from /proc),
# which bounds it on a faster broker even when this one is the limit.
#   scripts/bench_broker.sh [events] [bench|opinion]   (default 1000000 bench)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
n="${1:-1000000}"
shape="${2:-bench}"
bench_shape "$shape"
bench_build
bench_file "$shape" "$n"

scripts/broker.sh start >/dev/null
brokers="${KAFKA_BROKERS:-127.0.0.1:9092}"
py="$(scripts/pyenv.sh)"
run="bench$(date +%s)"
"$py" - "$brokers" "$run" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
brokers, run = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": brokers})
topics = [NewTopic(f"{run}-{t}", num_partitions=3, replication_factor=1)
          for t in ("events", "alerts", "tasks", "updates", "dead")]
for f in admin.create_topics(topics).values():
    f.result()
PY
start=$(date +%s.%N)
"$py" scripts/produce.py --brokers "$brokers" --topic "$run-events" --file "$feed" --key-field district
produced=$(date +%s.%N)

dir="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
cat > "$dir/yujing.toml" <<TOML
schemas = "$schemas"
pipelines = "$pipelines"
$(bench_kafka_toml "$run" "$feed_name" 5s)
[state]
dir = "state"
[http]
listen = "127.0.0.1:$port"
TOML
# Benchmark data only: a throwaway PII key unless one is given.
YUJING_PII_KEY="${YUJING_PII_KEY:-bench-only-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}" \
  "$bin/yujing" run --config "$dir/yujing.toml" 2>"$dir/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; rm -rf "$dir"' EXIT
until curl -sf "127.0.0.1:$port/readyz" >/dev/null; do
  kill -0 $daemon 2>/dev/null || { echo "the daemon stopped:" >&2; tail -5 "$dir/daemon.log" >&2; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
# User + system CPU seconds of the daemon, from /proc (process_cpu_seconds_total
# on /metrics counts whole seconds only).
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$daemon/stat"; }
cpu_ready=$(cpu)
events() { curl -sf "127.0.0.1:$port/metrics" | awk '/^yujing_events_total/ { s += $2 } END { print s + 0 }'; }
while [ "$(events)" -lt "$n" ]; do sleep 0.1; done
done_at=$(date +%s.%N)
curl -sf "127.0.0.1:$port/metrics" > "$dir/metrics.txt"
cpu_done=$(cpu)
kill -TERM $daemon; wait $daemon || true
# Mean window-close latency and checkpoint time, from the histograms' sums and counts.
mean() { awk -v m="$1" '$1 ~ "^"m"_sum" { s += $2 } $1 ~ "^"m"_count" { c += $2 } END { if (c) printf "%.2f ms over %d", 1000 * s / c, c; else printf "none" }' "$dir/metrics.txt"; }
echo "window-close latency (mean): $(mean yujing_window_close_latency_seconds) windows"
echo "checkpoint time (mean):      $(mean yujing_checkpoint_duration_seconds) checkpoints"
awk -v n="$n" -v a="$start" -v b="$produced" -v r="$ready" -v d="$done_at" 'BEGIN {
  printf "events      %d\n", n
  printf "produce     %.2f s  %.0f events/s (Python confluent-kafka)\n", b - a, n / (b - a)
  printf "yujing run  %.2f s  %.0f events/s (ready → all %d counted)\n", d - r, n / (d - r), n
}'
awk -v n="$n" -v a="$cpu_ready" -v b="$cpu_done" 'BEGIN {
  c = b - a
  printf "daemon CPU  %.2f s  %.2f CPU-s per million events (%.0f events per CPU-second)\n", c, 1e6 * c / n, n / c
}'
