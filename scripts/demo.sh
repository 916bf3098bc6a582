#!/usr/bin/env bash
# Builds yujing (once, into a target directory outside the clone) and runs `yujing demo`:
# a week of generated feeds through the shipped pipelines, no Kafka, no files.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
if ! command -v cc >/dev/null 2>&1; then
  echo "yujing needs a C compiler for its dependencies: apt-get install -y build-essential pkg-config" >&2
  exit 1
fi
exec cargo run --quiet --bin yujing -- demo "$@"
