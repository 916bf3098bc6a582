# Sourced by the benchmark scripts (bench_memory.sh, bench_broker.sh,
# profile_replay.sh), from the repository root: the release build of the engine
# and the bench tools, the two feed shapes, and their files.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
bin="$CARGO_TARGET_DIR/release"
work="${BENCH_DIR:-$HOME/.cache/yujing/bench}"

bench_build() {
  cargo build --release --quiet --features bench-tools \
    --bin yujing --bin bench_feed --bin datafusion_batch
  mkdir -p "$work"
}

# bench_shape SHAPE: sets schemas, pipelines, feed_name and the query's keys and
# measures (for DataFusion's run) of the narrow `bench` feed or the `opinion` one.
bench_shape() {
  case "$1" in
    bench) schemas="$PWD/benches/schemas"; pipelines="$PWD/benches/pipelines"
           feed_name=bench_event; keys=district,category
           measures="count(*),sum(persons),avg(sentiment)" ;;
    opinion) schemas="$PWD/schemas"; pipelines="$PWD/benches/opinion"
             feed_name=public_opinion; keys=district,topic
             measures="count(*),sum(reach),avg(sentiment)" ;;
    *) echo "unknown feed shape $1 (bench or opinion)" >&2; exit 2 ;;
  esac
}

# bench_file SHAPE N: sets feed to the file of N events of SHAPE, written once.
bench_file() {
  feed="$work/${1}_$2.jsonl"
  [ -s "$feed" ] || "$bin/bench_feed" "$2" "$1" > "$feed"
}

# bench_kafka_toml RUN FEED IDLE: the [kafka] part of a bench daemon's config —
# brokers, group RUN, topics RUN-alerts … and RUN-events for FEED.
bench_kafka_toml() {
  cat <<TOML
[kafka]
brokers = "$brokers"
group_id = "$1"
idle_timeout = "$3"
[kafka.topics]
alerts = "$1-alerts"
tasks = "$1-tasks"
task_updates = "$1-updates"
dead_letters = "$1-dead"
[kafka.topics.feeds]
$2 = "$1-events"
TOML
}
