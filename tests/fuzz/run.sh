#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and reports executions and findings per target.
#
#   tests/fuzz/run.sh [--short] [--seconds N] [TARGET...]
#
# Default: 60 s per target; --short: 5 s per target (a smoke run); FUZZ_SECONDS=N overrides
# both. Works on the stable toolchain: cargo-fuzz's `-s none` mode needs no nightly flag (see
# tests/fuzz/README.md). The committed corpus (tests/fuzz/corpus/TARGET) seeds a working corpus
# under tests/fuzz/target/corpus/TARGET; findings land in tests/fuzz/artifacts/TARGET. Exits
# non-zero when any target found something.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --short) seconds="${FUZZ_SECONDS:-5}" ;;
    --seconds) seconds="$2"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame_decoder packet_classifier tracker config_loader)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz missing: installing it"
  cargo install cargo-fuzz --locked
fi

echo "== build (sanitizer none, release, debug assertions on)"
cargo fuzz build -s none

summary=()
found=0
for t in "${targets[@]}"; do
  work="target/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="target/fuzz-$t.log"
  echo "== $t: ${seconds} s"
  status=0
  # -rss_limit_mb: the targets hold at most a few MB; anything near this is a leak.
  cargo fuzz run -s none "$t" "$work" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  kept=$(find "$work" -type f | wc -l)
  findings=$(find "artifacts/$t" -type f | wc -l)
  if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
    found=1
    grep -m 5 -E 'panicked|ERROR|SUMMARY' "$log" || true
  fi
  summary+=("$(printf '%-18s %12s execs %8s/s  cov %6s  corpus %5s  findings %s' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$kept" "$findings")")
done

echo "== summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if [ "$found" -ne 0 ]; then
  echo "findings: see tests/fuzz/artifacts/ and tests/fuzz/target/fuzz-TARGET.log" >&2
  exit 1
fi
