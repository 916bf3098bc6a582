#!/usr/bin/env bash
# The whole test suite: unit, data-file window cases, property and command-line tests.
# Builds once into a target directory outside the clone, so later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --no-fail-fast "$@"
else
  cargo test --all-targets --no-fail-fast "$@"
fi
