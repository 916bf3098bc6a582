#!/usr/bin/env bash
# Where replay's time goes: `perf record` of one `yujing replay` on one core over a
# benchmark feed, self time by symbol grouped into the engine's stages.
# Usage: scripts/profile_replay.sh [bench|opinion] [events] [yujing binary]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench_lib.sh
shape="${1:-opinion}"
n="${2:-1000000}"
bench_shape "$shape"
bench_build
bench_file "$shape" "$n"
yujing="${3:-$bin/yujing}"
perf record -q -F 2000 -o "$work/perf.data" -- taskset -c 0 "$yujing" replay --quiet --threads 1 \
  --schemas "$schemas" --pipelines "$pipelines" --input "$feed_name=$feed" --out "$work/out_profile" \
  2> "$work/profile_replay.log"
tail -1 "$work/profile_replay.log"
perf report -q -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null |
  awk '
  /%/ {
    pct = $1; sub(/%/, "", pct); $1 = ""; $2 = ""; sym = $0
    if (sym ~ /blake3/) s = "PII hashing (blake3)"
    else if (sym ~ /serde_json::ser|sink::|JsonlSink|to_json|format_rfc3339/) s = "output (JSON lines)"
    else if (sym ~ /serde_json|decode::json|decode::scan|from_utf8|validate_utf8|IgnoredAny|Slot>/) s = "JSON parse (fast path, serde_json, UTF-8)"
    else if (sym ~ /check_field|check_type|check_time|check_range|parse_rfc3339|days_in_month|days_from_civil|admit/) s = "validation"
    else if (sym ~ /Decoder::append|Decoder::decode|builder|Builder|arrow_buffer|arrow_data|new_null_array/) s = "Arrow building (+ the inlined decode loop)"
    else if (sym ~ /datafusion|arrow_row|arrow_select|arrow_arith|arrow_ord|window::|hashbrown|GroupValues|Accumulator|create_hashes|ahash|futures/) s = "windows and partial aggregation"
    else if (sym ~ /read_until|memchr|FileReader|__libc_read|copy_user|_copy_to_iter|filemap/) s = "reading the file"
    else if (sym ~ /malloc|free|realloc|cfree|_int_|memmove|memcpy|memset|memcmp/) s = "memory (malloc, memcpy, memcmp)"
    else if (sym ~ /\[k\]/) s = "kernel"
    else s = "other"
    t[s] += pct
  }
  END { for (s in t) printf "%6.1f %%  %s\n", t[s], s }' | sort -rn
echo "top symbols:"
perf report -q -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null | head -25
