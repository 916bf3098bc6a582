#!/usr/bin/env bash
# Failover time: instance A (`yujing run`, state topic configured) reads KEYS
# events, each of its own key in one open one-day window (benches/checkpoint),
# checkpoints, and is killed with SIGKILL. Instance B, with an empty state dir of
# its own, is started once A's group session is over (as a supervisor on another
# machine would) and restores from the state topic. Prints the checkpoint's size,
# the wait for the session, B's start → ready (state topic read, outputs read
# back, group joined, state restored) and kill → ready, then waits for B to
# close the restored window when a later event arrives.
# With PER_PARTITION=1 both run `[state] per_partition` (a task per partition,
# each restored under its own key), and the time until B has closed the
# restored window is printed too.
#   scripts/bench_failover.sh [keys]     (default 100000; PROFILE=debug for the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
keys="${1:-100000}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --quiet --bin yujing
else
  cargo build --quiet --bin yujing
fi
yujing="$CARGO_TARGET_DIR/$profile/yujing"
scripts/broker.sh start >/dev/null
brokers="${KAFKA_BROKERS:-127.0.0.1:9092}"
py="$(scripts/pyenv.sh)"
run="failover$(date +%s)"
dir="$(mktemp -d)"
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

"$py" - "$brokers" "$run" "$keys" "$dir/events.jsonl" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
brokers, run, keys, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
admin = AdminClient({"bootstrap.servers": brokers})
topics = [NewTopic(f"{run}-{t}", num_partitions=3, replication_factor=1)
          for t in ("events", "alerts", "tasks", "updates", "dead")]
for f in admin.create_topics(topics).values():
    f.result()
with open(path, "w") as out:
    for k in range(keys):
        out.write('{"event_id":"f%d","event_time":"2026-03-01T%02d:%02d:00Z","district":"区%02d","category":"c%d","persons":1,"sentiment":0.5}\n'
                  % (k, k % 20, k % 60, k % 12, k // 12))
PY
"$py" scripts/produce.py --brokers "$brokers" --topic "$run-events" --file "$dir/events.jsonl" --key-field district >/dev/null

per_partition=false; checkpoints=1
# Three tasks (one per partition), each checkpointing on its own.
if [ -n "${PER_PARTITION:-}" ]; then per_partition=true; checkpoints=3; fi
config() { # config NAME PORT
  cat > "$dir/$1.toml" <<TOML
schemas = "$PWD/benches/schemas"
pipelines = "$PWD/benches/checkpoint"
$(bench_kafka_toml "$run" bench_event 2s)
[state]
dir = "$dir/state-$1"
checkpoint_interval = "1s"
topic = "$run-state"
per_partition = $per_partition
[http]
listen = "127.0.0.1:$2"
TOML
}
key="bench-only-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
metric() { curl -sf "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
wait_ready() { until curl -sf "127.0.0.1:$1/readyz" >/dev/null; do sleep 0.02; done; }

port_a=$((20000 + RANDOM % 10000)); port_b=$((30000 + RANDOM % 10000))
config a "$port_a"; config b "$port_b"
YUJING_PII_KEY="$key" "$yujing" run --config "$dir/a.toml" 2>"$dir/a.log" &
a=$!
wait_ready "$port_a"
until [ "$(curl -sf "127.0.0.1:$port_a/metrics" | awk '/^yujing_events_total/ { s += $2 } END { print s + 0 }')" -ge "$keys" ]; do sleep 0.1; done
# A checkpoint taken after the last event: the one B starts from.
before=$(metric "$port_a" yujing_checkpoint_duration_seconds_count)
until [ "$(metric "$port_a" yujing_checkpoint_duration_seconds_count)" -gt "$((before + 2 * checkpoints))" ]; do sleep 0.1; done
# The checkpoints' files (one per task with state per partition).
bytes=$(find "$dir/state-a" -name checkpoint.json -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
kill -9 $a
killed=$(date +%s.%N)
# The dead member's session: 6 s, or 20 s in the tasks group of per_partition.
session=6.5; [ "$per_partition" = true ] && session=20.5
sleep $session
started=$(date +%s.%N)
YUJING_PII_KEY="$key" "$yujing" run --config "$dir/b.toml" 2>"$dir/b.log" &
wait_ready "$port_b"
ready=$(date +%s.%N)
# One event a day later closes the restored window on B.
echo '{"event_id":"late","event_time":"2026-03-02T12:00:00Z","district":"区00","category":"c0","persons":1,"sentiment":0.5}' > "$dir/close.jsonl"
"$py" scripts/produce.py --brokers "$brokers" --topic "$run-events" --file "$dir/close.jsonl" --key-field district >/dev/null
closed() { curl -sf "127.0.0.1:$port_b/metrics" | awk '/^yujing_windows_closed_total/ { s += $2 } END { print s + 0 }'; }
until [ "$(closed)" -ge 1 ]; do sleep 0.05; done
closed_at=$(date +%s.%N)
awk -v k="$keys" -v b="$bytes" -v s="$session" -v a="$killed" -v st="$started" -v r="$ready" -v c="$closed_at" 'BEGIN {
  printf "keys %d, checkpoint %.1f MiB\n", k, b / 1048576
  printf "session wait %.1f s, B start → ready %.2f s, kill → ready %.2f s, B start → restored window closed %.2f s\n", s, r - st, r - a, c - st
}'
