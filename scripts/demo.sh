#!/usr/bin/env bash
# Builds yujing (once, into a target directory outside the clone) and runs `yujing demo`:
# two weeks of generated feeds through the shipped pipelines, no Kafka, no files.
# Arguments pass through, e.g. `scripts/demo.sh --listen 127.0.0.1:9464 --hold`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
scripts/deps.sh build
exec cargo run --quiet --bin yujing -- demo "$@"
