#!/usr/bin/env bash
# Soak: the release daemon under a realistic mix (TCP and UDP flows, a low mismatch rate, a
# controller answering every checkpoint request) for a set time, watched all the while.
#
#   tests/soak/run.sh [--short] [--seconds N] [--rate PAIRS_PER_S]
#
# Default 600 s; --short: 20 s (CI); SOAK_SECONDS=N overrides both. Fails when:
#   - the daemon's resident memory grows: its RSS after the warm-up (the first fifth of the
#     run) is the baseline, and no later sample may exceed it by more than the margin
#     (SOAK_RSS_MARGIN_MIB, default 16 MiB plus 10 % of the baseline);
#   - the counters stop adding up: every sample of `colo-compare ctl stats --json` must satisfy
#     received = released + dropped + held per side, and nothing may be dropped from the
#     primary (the budget is far away at this load);
#   - any frame is lost, duplicated, unknown or reordered per flow (colo-loadgen --exact);
#   - the daemon did not receive every frame the load generator sent, or dies.
# Samples land in the work directory (kept on failure and with SOAK_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${SOAK_SECONDS:-600}"
rate=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --short) seconds="${SOAK_SECONDS:-20}" ;;
    --seconds) seconds="$2"; shift ;;
    --rate) rate="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
warmup=$(( seconds / 5 > 2 ? seconds / 5 : 2 ))
interval=$(( seconds >= 120 ? 5 : 1 ))

echo "== build (release)"
cargo build --release --locked -p colo-compare -p colo-tests --bin colo-compare --bin colo-loadgen
bin=target/release

work=$(mktemp -d -t colo-soak.XXXXXX)
daemon=""
failed=1
cleanup() {
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
  fi
  if [ "$failed" -ne 0 ] || [ -n "${SOAK_KEEP:-}" ]; then
    echo "work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

cat >"$work/soak.ron" <<EOF
(
    log: (level: "info", file: Some("$work/daemon.log")),
    control_socket: Some("$work/ctl.sock"),
    pipelines: [
        (
            name: "soak",
            primary_in: "unix-listen:$work/p.sock",
            secondary_in: "unix-listen:$work/s.sock",
            outdev: "unix-listen:$work/o.sock",
            notify_dev: Some("unix-listen:$work/n.sock"),
            max_held_bytes: 67108864,
            output_buffer: 16777216,
        ),
    ],
)
EOF

"$bin/colo-compare" run --config "$work/soak.ron" 2>"$work/daemon.stderr" &
daemon=$!
for _ in $(seq 100); do
  [ -S "$work/ctl.sock" ] && [ -S "$work/n.sock" ] && break
  sleep 0.1
done
[ -S "$work/ctl.sock" ] || { echo "the daemon did not start:"; cat "$work/daemon.stderr"; exit 1; }

# Checks one `ctl stats --json` answer; prints "primary_received held_primary" when it adds up.
check_stats() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
if not r.get("ok"):
    sys.exit("stats refused: %s" % r)
for p in r["result"]["pipelines"]:
    rec, held = p["received"], p["held"]
    released = sum(p["released"].values())
    dropped = {s: sum(p["dropped"].get(s, {}).values()) for s in ("primary", "secondary")}
    if rec["primary"] != released + dropped["primary"] + held["primary"]:
        sys.exit("%s: primary received %d != released %d + dropped %d + held %d"
                 % (p["name"], rec["primary"], released, dropped["primary"], held["primary"]))
    if rec["secondary"] != dropped["secondary"] + held["secondary"]:
        sys.exit("%s: secondary received %d != dropped %d + held %d"
                 % (p["name"], rec["secondary"], dropped["secondary"], held["secondary"]))
    if dropped["primary"]:
        sys.exit("%s: %d primary packets dropped: %s" % (p["name"], dropped["primary"], p["dropped"]))
    print(rec["primary"], held["primary"])
'
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# The watcher: RSS and the counters identity every $interval s while the load runs.
watch() {
  local t=0
  while kill -0 "$daemon" 2>/dev/null && [ ! -e "$work/stop" ]; do
    local rss stats
    rss=$(rss_kib "$daemon")
    stats=$("$bin/colo-compare" ctl --socket "$work/ctl.sock" stats --json | check_stats) || {
      echo "t=${t}s: $stats" >"$work/identity.failed"
      return 1
    }
    echo "$t $rss $stats" >>"$work/samples.tsv"
    sleep "$interval"
    t=$(( t + interval ))
  done
}
watch &
watcher=$!

echo "== load: ${seconds} s at ${rate} pairs/s, mixed TCP/UDP, 0.1 % mismatching"
status=0
"$bin/colo-loadgen" run \
  --primary "unix:$work/p.sock" --secondary "unix:$work/s.sock" \
  --output "unix:$work/o.sock" --notify "unix:$work/n.sock" \
  --proto mixed --flows 256 --size 512 --mismatch 0.001 --rate "$rate" \
  --warmup 1 --duration "$seconds" --drain 10 --exact --watch-pid "$daemon" \
  >"$work/loadgen.out" 2>&1 || status=$?
touch "$work/stop"
wait "$watcher" || true
cat "$work/loadgen.out"

problems=()
[ "$status" -eq 0 ] || problems+=("colo-loadgen exited $status (lost, duplicated, unknown or reordered frames)")
[ -e "$work/identity.failed" ] && problems+=("counters: $(cat "$work/identity.failed")")
kill -0 "$daemon" 2>/dev/null || problems+=("the daemon died")

final=$("$bin/colo-compare" ctl --socket "$work/ctl.sock" stats --json | check_stats) \
  || problems+=("final counters: $final")
result=$(grep '^RESULT' "$work/loadgen.out" || true)
sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$result")
received=${final%% *}
[ -n "$sent" ] && [ "$sent" = "$received" ] \
  || problems+=("the load generator sent ${sent:-?} primary frames, the daemon received ${received:-?}")

# Memory: baseline after the warm-up, then no sample above baseline + margin.
if [ -s "$work/samples.tsv" ]; then
  read -r base peak last samples < <(awk -v w="$warmup" '
    $1 >= w && base == "" { base = $2 }
    $1 >= w { if ($2 > peak) peak = $2; last = $2; n++ }
    END { print base + 0, peak + 0, last + 0, n + 0 }' "$work/samples.tsv")
  margin=$(( ${SOAK_RSS_MARGIN_MIB:-16} * 1024 + base / 10 ))
  echo "== memory: baseline ${base} KiB after ${warmup} s, peak ${peak} KiB, last ${last} KiB over ${samples} samples (margin ${margin} KiB)"
  if [ "$samples" -lt 2 ]; then
    problems+=("too few RSS samples after the warm-up ($samples)")
  elif [ "$peak" -gt $(( base + margin )) ]; then
    problems+=("RSS grew from ${base} KiB to ${peak} KiB (margin ${margin} KiB)")
  fi
else
  problems+=("no samples taken")
fi

# An orderly shutdown: the summary line must come, with nothing left unwritten.
"$bin/colo-compare" ctl --socket "$work/ctl.sock" shutdown >"$work/shutdown.out" 2>&1 \
  || problems+=("ctl shutdown failed: $(cat "$work/shutdown.out")")
wait "$daemon" || problems+=("the daemon exited non-zero")
daemon=""
grep -q ' 0 unwritten' "$work/shutdown.out" || problems+=("shutdown: $(cat "$work/shutdown.out")")

echo "== soak: ${seconds} s, $(wc -l <"$work/samples.tsv") samples; final counters: primary received ${received:-?}, held ${final#* }"
if [ ${#problems[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${problems[@]}"
  exit 1
fi
failed=0
echo "soak passed"
