#!/usr/bin/env bash
# The whole test suite: unit, data-file window cases, property, command-line, task,
# daemon and operations tests. Installs what they need from Debian when missing
# (scripts/deps.sh: Prometheus, Alertmanager, …) and starts the Kafka-protocol
# broker the daemon tests need (scripts/broker.sh; KAFKA_BROKERS may name another
# one). Builds once into a target directory outside the clone, so later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
scripts/broker.sh start
# A tansu with SQLite storage for the broker-restart test (its own broker, own port).
YUJING_TANSU="$(scripts/broker.sh bin)"
export YUJING_TANSU
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
# An independent Kafka client (confluent-kafka) for the daemon tests' producer.
YUJING_PYTHON="$(scripts/pyenv.sh)"
export YUJING_PYTHON
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --no-fail-fast "$@"
else
  cargo test --all-targets --no-fail-fast "$@"
fi
