#!/usr/bin/env bash
# A Python venv with confluent-kafka in $HOME/.cache/yujing/pyenv (created once):
# the independent Kafka client of the daemon tests and the broker benchmark.
# Prints the venv's python.
set -euo pipefail
PYENV="$HOME/.cache/yujing/pyenv"
if ! "$PYENV/bin/python" -c "import confluent_kafka" >/dev/null 2>&1; then
  python3 -m venv "$PYENV" >&2
  "$PYENV/bin/pip" install -q confluent-kafka >&2
fi
echo "$PYENV/bin/python"
