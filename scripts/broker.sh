#!/usr/bin/env bash
# A Kafka-protocol broker on 127.0.0.1:9092 for tests and development.
#
#   scripts/broker.sh start    # install tansu if needed, start it, create the topics
#   scripts/broker.sh stop
#   scripts/broker.sh topics   # create yujing's topics (idempotent)
#   scripts/broker.sh status
#   scripts/broker.sh bin      # install tansu if needed and print its path
#
# Apache Kafka cannot be installed here; tansu (a Kafka-compatible broker in Rust)
# can, from crates.io. It is built with in-memory storage (`dynostore`; without a
# storage feature tansu stores nothing), which `start` uses, and SQLite storage
# (`libsql`), which the broker-restart test uses so the topics survive. It is
# installed once into $HOME/.cache/yujing and reused.
# TANSU_BIN points at another tansu binary. With KAFKA_BROKERS set to a broker that
# already runs (e.g. Apache Kafka), `start` only checks that it answers.
set -euo pipefail

CACHE="${YUJING_CACHE:-$HOME/.cache/yujing}"
TANSU_BIN="${TANSU_BIN:-$CACHE/bin/tansu}"
ADDR="127.0.0.1:9092"
PIDFILE="$CACHE/tansu.pid"
LOG="$CACHE/tansu.log"
TOPICS=(petition labor_dispute police_incident public_opinion alerts tasks task_updates dead_letters)

answers() {
  local hostport="${1#*://}"
  (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null
}

TANSU_VERSION="0.6.0"
TANSU_FEATURES="dynostore,libsql"

install_tansu() {
  local marker="$CACHE/bin/tansu.features"
  if [ -x "$TANSU_BIN" ]; then
    # Our own install is redone when it lacks a feature; another binary is taken as it is.
    if [ "$TANSU_BIN" != "$CACHE/bin/tansu" ] || [ "$(cat "$marker" 2>/dev/null)" = "$TANSU_FEATURES" ]; then
      return
    fi
  fi
  echo "== installing tansu $TANSU_VERSION ($TANSU_FEATURES) into $CACHE (about 15 minutes on 2 cores, once)" >&2
  CARGO_TARGET_DIR="$CACHE/tansu-target" cargo install tansu --version "$TANSU_VERSION" --locked \
    --features "$TANSU_FEATURES" --root "$CACHE" --force >&2
  echo "$TANSU_FEATURES" >"$marker"
}

create_topics() {
  for t in "${TOPICS[@]}"; do
    "$TANSU_BIN" topic create --broker "tcp://$ADDR" --partitions 3 "$t" >/dev/null 2>&1 || true
  done
}

case "${1:-}" in
  start)
    if [ -n "${KAFKA_BROKERS:-}" ] && [ "${KAFKA_BROKERS}" != "$ADDR" ]; then
      answers "${KAFKA_BROKERS%%,*}" || { echo "KAFKA_BROKERS=$KAFKA_BROKERS does not answer" >&2; exit 1; }
      echo "== using the broker at $KAFKA_BROKERS"
      exit 0
    fi
    if answers "$ADDR"; then
      echo "== a broker already answers on $ADDR"
      exit 0
    fi
    install_tansu
    mkdir -p "$CACHE"
    nohup "$TANSU_BIN" broker \
      --listener-url "tcp://$ADDR" \
      --advertised-listener-url "tcp://$ADDR" \
      --storage-engine "memory://tansu/" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
      if answers "$ADDR"; then break; fi
      sleep 0.1
    done
    answers "$ADDR" || { echo "tansu did not start; see $LOG" >&2; exit 1; }
    create_topics
    echo "== tansu on $ADDR (pid $(cat "$PIDFILE"))"
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  topics)
    create_topics
    ;;
  bin)
    install_tansu
    echo "$TANSU_BIN"
    ;;
  status)
    if answers "$ADDR"; then echo "up on $ADDR"; else echo "down"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|topics|status|bin" >&2
    exit 2
    ;;
esac
