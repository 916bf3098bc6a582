#!/usr/bin/env bash
# Fuzzes the decoder, task commands and the pipeline, compound, routing and
# config loaders (tests/fuzz.rs, proptest on stable Rust) for MINUTES (default 1),
# in rounds of FUZZ_CASES cases per target with a fresh seed each round, and
# prints how many cases each target ran. A failing case stops it and is printed
# with its minimal input: add it to `regression_cases` in tests/fuzz.rs.
#
#   scripts/fuzz.sh 10
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/yujing/target}"
minutes="${1:-1}"
per_round="${FUZZ_CASES_PER_ROUND:-2000}"
cargo test --test fuzz --no-run -q 2>/dev/null
end=$(( $(date +%s) + minutes * 60 ))
rounds=0
while [ "$(date +%s)" -lt "$end" ]; do
  # A fresh random seed per round: proptest reads PROPTEST_RNG_SEED.
  FUZZ_CASES="$per_round" PROPTEST_RNG_SEED="$RANDOM$RANDOM" \
    cargo test -q --test fuzz -- --test-threads 2 >/tmp/yujing-fuzz.log 2>&1 \
    || { cat /tmp/yujing-fuzz.log; echo "fuzz: a target failed (round $((rounds + 1)))"; exit 1; }
  rounds=$((rounds + 1))
done
targets=$(grep -c '^    fn .*(.* in ' tests/fuzz.rs || true)
echo "fuzz: ${minutes} min, ${rounds} rounds × ${per_round} cases for each of ${targets} targets = $((rounds * per_round)) cases per target, no failure"
