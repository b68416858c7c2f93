#!/usr/bin/env bash
# Side-by-side benchmark of colo-compare, the null peer (the ceiling of the loopback path) and,
# when installed, QEMU's own colo-compare, in one run on this machine.
#
# Usage: tests/bench/run.sh [--short]
#   --short   a few seconds in all (CI): shorter runs, fewer workloads, a smaller RSS test.
#
# The load generator (colo-loadgen) is pinned to CPU $LOADGEN_CPU and the comparator under test
# to CPU $PEER_CPU; each comparator is started afresh for each workload, so its CPU time (from
# /proc/PID/stat, all threads) and peak RSS (VmHWM) are its own for that workload. Every run is
# checked for exactness: each primary frame must come out exactly once.
#
# Environment (defaults in brackets):
#   LOADGEN_CPU [0]  PEER_CPU [1]      CPUs for taskset
#   PORT_BASE [random, from 10000 up to the ephemeral range]  first of the loopback TCP ports
#                                      used (12 in all)
#   QEMU_SCRIPT [../shared/qemu/run-qemu-colo.sh]  how to start QEMU's comparator
#   QEMU [auto]                        "off" skips QEMU even when installed
#   MEASURE, WARMUP                    seconds per run (override the mode's defaults)
#   REPEAT [3; --short: 1]             runs per workload and peer, in rounds (each round runs
#                                      every workload once, the peers taking turns), so that a
#                                      workload's runs are minutes apart; every run's frames/s
#                                      and p99 held time are printed
#   PICK [best]                        which run the table shows: best (highest frames/s: the least
#                                      disturbed on a shared machine) or median. The held-time
#                                      ratios and verdicts use the median p99 of the runs whatever
#                                      PICK says: a disturbance moves the tail most
#   COLO_BIN [target/release/colo-compare]  the colo-compare binary to measure (e.g. an older
#                                      build, to compare before and after a change)
#   BENCH_NICE [-10 as root, else 0]   nice value of the generator and the peers, so that other
#                                      work on the machine disturbs the measurement less. With
#                                      the kernel's autogroup scheduling, nice only ranks processes
#                                      of one session against each other: as root the script runs
#                                      in a session of its own and gives that session this nice.
#
# Workloads (same generator settings for every peer):
#   udp64          64-byte UDP frames, 1024 flows, window 4096 pairs, 64 pairs per write
#   tcp1400        1400-byte TCP segments, 64 connections, window 1024, 16 per write
#   tcp1400-split  the same, the secondary cutting every segment in two
#   tcp1400-b24    tcp1400 with 24 pairs per write and a window of 1536: fewer, larger
#                  writes raise the generator's ceiling (the null peer's frames/s) by a quarter
#                  to a third, so colo-compare's figure comes closer to its own capacity (still
#                  a lower bound while its backlog% stays low)
#   udp64-f64      udp64 over 64 flows
#   udp64-f100k    udp64 over 100k flows (QEMU: 10k flows, as its table resets past 16384);
#                  the 100k/64 flows verdict comes from colo-compare runs of both, alternating
#   mismatch-all   udp64 where every pair differs; the generator answers each DO_CHECKPOINT
#   mismatch-1pct  udp64 where 1 pair in 100 differs
#   udp64@R, tcp1400@R  offered at R pairs/s, R = QEMU's throughput on that workload in this
#                  run (200000 / 90000 without QEMU): held time at the load QEMU can carry
# Columns: released primary frames/s and Mbit/s (Ethernet bytes), held time (pair sent to primary
# released) p50/p99/max, the peer's CPU (% of one core, all threads) and CPU time per released
# frame (ns/frame: what the machine's other load distorts least), peak RSS, backlog% and
# exactness. backlog% is the share of the measured time with more than half the generator's
# window out: at full load one side is the bottleneck, and near 100 it was the peer (every pair
# then waits about window / frames per second, Little's law, whatever the peer's latency),
# near 0 the generator (the held time is then the peer's own latency).
# Comparators run with compare_timeout 1000 ms and expired_scan_cycle 100 ms (both of them), so
# that frames stranded by a checkpoint come out quickly; colo-compare logs at "warn" and allows
# 262144 connections.
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$0")/../.."

SHORT=0
case "${1:-}" in
  --short) SHORT=1 ;;
  "") ;;
  *) echo "usage: $0 [--short]" >&2; exit 2 ;;
esac

LOADGEN_CPU=${LOADGEN_CPU:-0}
PEER_CPU=${PEER_CPU:-1}
# Below the kernel's range for outgoing connections' ports, so that no connection of this
# run (or of anything else on the machine) can hold one of ours.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "${EPHEMERAL_LOW:-0}" -gt 10100 ] 2>/dev/null || EPHEMERAL_LOW=32768
PORT_BASE=${PORT_BASE:-$((10000 + RANDOM % (EPHEMERAL_LOW - 10012)))}
QEMU_SCRIPT=${QEMU_SCRIPT:-../shared/qemu/run-qemu-colo.sh}
if [ "$SHORT" = 1 ]; then
  MEASURE=${MEASURE:-0.4}; WARMUP=${WARMUP:-0.2}; RSS_FRAMES=10000; REPEAT=${REPEAT:-1}
else
  MEASURE=${MEASURE:-2}; WARMUP=${WARMUP:-1}; RSS_FRAMES=100000; REPEAT=${REPEAT:-3}
fi
if [ "$(id -u)" = 0 ]; then BENCH_NICE=${BENCH_NICE:--10}; else BENCH_NICE=${BENCH_NICE:-0}; fi
if [ "$BENCH_NICE" != 0 ] && [ -w /proc/self/autogroup ] && command -v setsid >/dev/null; then
  if [ -z "${BENCH_SESSION:-}" ]; then
    BENCH_SESSION=1 exec setsid --wait bash "$SELF" "$@"
  fi
  echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true
fi
# Command prefixes (nice and taskset exec what follows, so $! is the process itself).
PIN_PEER=(nice -n "$BENCH_NICE" taskset -c "$PEER_CPU")
PIN_LOADGEN=(nice -n "$BENCH_NICE" taskset -c "$LOADGEN_CPU")

have_qemu=0
if [ "${QEMU:-auto}" != off ] && command -v qemu-system-x86_64 >/dev/null 2>&1 && [ -x "$QEMU_SCRIPT" ]; then
  have_qemu=1
fi

echo "== building (release)"
cargo build --release --locked -q -p colo-compare -p colo-tests --bin colo-compare --bin colo-loadgen
BIN=$PWD/target/release
COLO_BIN=${COLO_BIN:-$BIN/colo-compare}
WORK=$(mktemp -d)
PEER_PID=""
PEER_WAIT=""

stop_peer() {
  [ -n "$PEER_WAIT" ] || return 0
  kill -TERM "$PEER_WAIT" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$PEER_WAIT" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$PEER_WAIT" 2>/dev/null || true
  wait "$PEER_WAIT" 2>/dev/null || true
  PEER_PID=""
  PEER_WAIT=""
}
trap 'stop_peer; rm -rf "$WORK"' EXIT

ports() { # peer -> "P S O N"
  local off
  case "$1" in colo) off=0 ;; null) off=4 ;; qemu) off=8 ;; esac
  local b=$((PORT_BASE + off))
  echo "$b $((b + 1)) $((b + 2)) $((b + 3))"
}

colo_config() { # file p s o n timeout_ms
  cat >"$1" <<EOF
(
    log: (level: "warn"),
    pipelines: [
        (
            name: "bench",
            primary_in: "tcp-listen:127.0.0.1:$2",
            secondary_in: "tcp-listen:127.0.0.1:$3",
            outdev: "tcp-listen:127.0.0.1:$4",
            notify_dev: Some("tcp-listen:127.0.0.1:$5"),
            compare_timeout: $6,
            expired_scan_cycle: 100,
            max_connections: 262144,
        ),
    ],
)
EOF
}

# Starts a peer pinned to PEER_CPU; sets PEER_PID (the process to watch) and PEER_WAIT (the
# process to signal and wait for).
start_peer() { # peer timeout_ms
  local p s o n
  read -r p s o n <<<"$(ports "$1")"
  case "$1" in
    colo)
      colo_config "$WORK/colo.ron" "$p" "$s" "$o" "$n" "$2"
      "${PIN_PEER[@]}" "$COLO_BIN" run --config "$WORK/colo.ron" >>"$WORK/colo.log" 2>&1 &
      PEER_WAIT=$!; PEER_PID=$PEER_WAIT ;;
    null)
      "${PIN_PEER[@]}" "$BIN/colo-loadgen" null-peer --primary-in "127.0.0.1:$p" \
        --secondary-in "127.0.0.1:$s" --outdev "127.0.0.1:$o" --notify-dev "127.0.0.1:$n" \
        >>"$WORK/null.log" 2>&1 &
      PEER_WAIT=$!; PEER_PID=$PEER_WAIT ;;
    qemu)
      PRI_PORT=$p SEC_PORT=$s OUT_PORT=$o NOTIFY_PORT=$n QEMU_CPUS=$PEER_CPU MAX_SECONDS=600 \
        COMPARE_TIMEOUT=$2 EXPIRED_SCAN_CYCLE=100 QMP="unix:$WORK/qmp.sock" \
        nice -n "$BENCH_NICE" "$QEMU_SCRIPT" >>"$WORK/qemu.log" 2>&1 &
      PEER_WAIT=$!
      PEER_PID=""
      for _ in $(seq 50); do
        # QEMU itself, not a subshell the start script forks before it execs QEMU (a
        # subshell's PID vanishes, and the run that watches it fails).
        PEER_PID=$(pgrep -P "$PEER_WAIT" -f qemu-system | head -1 || true)
        [ -n "$PEER_PID" ] && break
        sleep 0.1
      done
      [ -n "$PEER_PID" ] || { echo "QEMU did not start:" >&2; cat "$WORK/qemu.log" >&2; return 1; } ;;
  esac
}

# Runs the generator against a fresh peer; prints the RESULT line (without "RESULT ").
measure() { # peer loadgen-args...
  local peer=$1; shift
  local p s o n extra=()
  read -r p s o n <<<"$(ports "$peer")"
  start_peer "$peer" 1000 || return 1
  [ "$peer" = qemu ] && extra=(--quickack --settle-ms 300)
  local out
  out=$("${PIN_LOADGEN[@]}" "$BIN/colo-loadgen" run --primary "127.0.0.1:$p" \
    --secondary "127.0.0.1:$s" --output "127.0.0.1:$o" --notify "127.0.0.1:$n" \
    --watch-pid "$PEER_PID" --drain 3 "${extra[@]}" "$@" 2>&1) || {
    echo "colo-loadgen failed against $peer: $out" >&2
    stop_peer
    return 1
  }
  stop_peer
  sed -n 's/^RESULT //p' <<<"$out"
}

field() { # "k=v k=v" key
  tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

median() { # numbers, one per line on stdin -> the middle one (the lower middle of an even count)
  sort -g | awk '{ v[NR] = $0 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

fields() { # results, one per line -> the value of key $2 in each, one per line
  while read -r x; do field "$x" "$2"; done <<<"$1"
}

exact() { # result: every primary frame released exactly once
  [ "$(field "$1" lost)$(field "$1" duplicated)$(field "$1" unknown)" = 000 ]
}

require_exact() { # peer result: says so, and fails the script, when the run was not exact
  exact "$2" && return 0
  echo
  echo "   !! $1 did not release every primary frame exactly once: $2" >&2
  FAILED=1
}

declare -A RES P99MED BACKLOGMED RUNS
ROWS=()
FAILED=0

# One run of one workload on every peer, the peers taking turns; the results are added to RUNS.
bench_once() { # name qemu-extra-args -- loadgen-args...
  local name=$1 qemu_args=$2; shift 3
  local peers=(colo null)
  [ "$have_qemu" = 1 ] && peers=(qemu colo null)
  local peer r
  for peer in "${peers[@]}"; do
    local args=("$@")
    if [ "$peer" = qemu ]; then
      [ "$have_qemu" = 1 ] || continue
      # shellcheck disable=SC2206
      [ -n "$qemu_args" ] && args+=($qemu_args)
      # QEMU is the reference, not what is tested: a run that fails is tried once more
      # (what QEMU logged is shown), and if it cannot run here the rest goes on without it
      # (its verdicts are then left out). A failure of colo-compare or of the null peer ends
      # the script.
      if ! r=$(measure "$peer" --duration "$MEASURE" --warmup "$WARMUP" "${args[@]}"); then
        echo
        echo "   !! QEMU's comparator failed a run; its log ends with:" >&2
        tail -n 5 "$WORK/qemu.log" | sed 's/^/      /' >&2
        if ! r=$(measure "$peer" --duration "$MEASURE" --warmup "$WARMUP" "${args[@]}"); then
          echo "   !! QEMU's comparator failed again: it is left out from here on" >&2
          have_qemu=0
          continue
        fi
        printf '   %-22s' "$name (again)"
      fi
    else
      r=$(measure "$peer" --duration "$MEASURE" --warmup "$WARMUP" "${args[@]}")
      require_exact "$peer" "$r"
    fi
    RUNS[$name,$peer]+="$r"$'\n'
    printf ' %s' "$peer"
  done
}

# Runs every workload given ("name|qemu-extra-args|loadgen-args", the arguments split at
# spaces) REPEAT times, in rounds: each round runs each workload once. This machine has slow
# spells of 10-40 s in which its loopback path costs up to twice as much per frame (in the
# generator and the peer alike); rounds spread a workload's runs over minutes, so that one
# spell falls on one of them, not on all.
rounds() { # workload...
  local rep w name qemu_args args
  for rep in $(seq "$REPEAT"); do
    for w in "$@"; do
      IFS='|' read -r name qemu_args args <<<"$w"
      printf '   [%s/%s] %-15s' "$rep" "$REPEAT" "$name"
      # shellcheck disable=SC2086
      bench_once "$name" "$qemu_args" -- $args
      echo
    done
  done
  for w in "$@"; do
    summarize "${w%%|*}"
  done
}

# Picks the table's run of each peer for one workload and prints every run's figures.
summarize() { # name
  local name=$1 peer r
  echo "   $name"
  for peer in qemu colo null; do
    [ -n "${RUNS[$name,$peer]:-}" ] || continue
    local list n at
    list=$(sed '/^$/d' <<<"${RUNS[$name,$peer]}")
    n=$(wc -l <<<"$list")
    at=$n
    [ "${PICK:-best}" = median ] && at=$(((n + 1) / 2))
    r=$(while read -r x; do echo "$(field "$x" frames_per_s) $x"; done <<<"$list" | sort -n |
      sed -n "${at}p" | cut -d' ' -f2-)
    RES[$name,$peer]=$r
    ROWS+=("$name,$peer")
    # The held-time verdicts use the median p99 of the runs: the tail is what a disturbance
    # on this machine moves most, and the run with the most frames/s need not be the one
    # with the least disturbed tail (at an offered rate every run has the same frames/s).
    P99MED[$name,$peer]=$(fields "$list" p99_us | median)
    BACKLOGMED[$name,$peer]=$(fields "$list" backlog_pct | median)
    printf '     %-5s frames/s %s -> %s %s; p99 us %s -> median %s; window half full %s %% of the time\n' \
      "$peer" "$(fields "$list" frames_per_s | xargs)" "${PICK:-best}" "$(field "$r" frames_per_s)" \
      "$(fields "$list" p99_us | sort -g | xargs)" "${P99MED[$name,$peer]}" \
      "$(fields "$list" backlog_pct | sort -g | xargs)"
  done
}

UDP64="--proto udp --size 64 --flows 1024 --window 4096 --batch 64"
TCP1400="--proto tcp --size 1400 --flows 64 --window 1024 --batch 16"

echo "== workloads (loadgen on CPU $LOADGEN_CPU, comparator on CPU $PEER_CPU, nice $BENCH_NICE; $REPEAT x $MEASURE s measured after $WARMUP s)"
uptime
FULL=("udp64||$UDP64" "tcp1400||$TCP1400")
if [ "$SHORT" = 0 ]; then
  FULL+=("tcp1400-split||$TCP1400 --resegment split"
    "tcp1400-b24||--proto tcp --size 1400 --flows 64 --window 1536 --batch 24"
    "udp64-f64||$UDP64 --flows 64" "udp64-f100k|--flows 10000|$UDP64 --flows 100000")
fi
FULL+=("mismatch-all||$UDP64 --mismatch 1.0")
[ "$SHORT" = 0 ] && FULL+=("mismatch-1pct||$UDP64 --mismatch 0.01")
rounds "${FULL[@]}"
R_UDP=200000; R_TCP=90000
if [ -n "${RES[udp64,qemu]:-}" ] && [ -n "${RES[tcp1400,qemu]:-}" ]; then
  R_UDP=$(field "${RES[udp64,qemu]}" frames_per_s)
  R_TCP=$(field "${RES[tcp1400,qemu]}" frames_per_s)
fi
AT_RATE=("udp64@$R_UDP||$UDP64 --rate $R_UDP")
[ "$SHORT" = 0 ] && AT_RATE+=("tcp1400@$R_TCP||$TCP1400 --rate $R_TCP")
rounds "${AT_RATE[@]}"

# colo-compare over 100 000 flows against 64, the two measured alternately so that a busy
# spell of the machine does not fall on one side only: each pair of runs gives a ratio, the
# verdict takes their median (the rows above were measured minutes apart).
FLOWS_RATIO=0
if [ "$SHORT" = 0 ]; then
  echo "   100 000 flows / 64 flows, colo-compare, $REPEAT pairs of runs:"
  FLOWS_PAIRS=()
  for _ in $(seq "$REPEAT"); do
    # shellcheck disable=SC2086
    few=$(measure colo --duration "$MEASURE" --warmup "$WARMUP" $UDP64 --flows 64)
    # shellcheck disable=SC2086
    many=$(measure colo --duration "$MEASURE" --warmup "$WARMUP" $UDP64 --flows 100000)
    require_exact colo "$few"
    require_exact colo "$many"
    FLOWS_PAIRS+=("$(awk -v a="$(field "$many" frames_per_s)" -v b="$(field "$few" frames_per_s)" \
      'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')")
    printf '     64 flows %s, 100 000 flows %s frames/s: %.2f\n' "$(field "$few" frames_per_s)" \
      "$(field "$many" frames_per_s)" "${FLOWS_PAIRS[-1]}"
  done
  FLOWS_RATIO=$(printf '%s\n' "${FLOWS_PAIRS[@]}" | median)
fi

echo
echo "== held memory: $RSS_FRAMES 1400-byte primary frames held (no secondary traffic, compare_timeout 600 s)"
rss_row() { # peer flows
  local peer=$1 flows=$2 p s o n
  read -r p s o n <<<"$(ports "$peer")"
  start_peer "$peer" 600000 || { echo "   !! $peer could not start: no memory row for it" >&2; return 0; }
  sleep 0.3
  local idle
  idle=$(awk '/^VmRSS/ {print $2}' "/proc/$PEER_PID/status")
  local extra=()
  [ "$peer" = qemu ] && extra=(--quickack --settle-ms 300)
  # The secondary sends nothing (mismatch is irrelevant), so every primary frame stays held.
  local out
  out=$("${PIN_LOADGEN[@]}" "$BIN/colo-loadgen" run --primary "127.0.0.1:$p" \
    --secondary "127.0.0.1:$s" --output "127.0.0.1:$o" --watch-pid "$PEER_PID" \
    --proto udp --size 1400 --flows "$flows" --window $((RSS_FRAMES * 2)) --batch 64 \
    --count "$RSS_FRAMES" --primary-only --drain 1 "${extra[@]}" 2>&1) || true
  local peak
  peak=$(awk '/^VmHWM/ {print $2}' "/proc/$PEER_PID/status")
  stop_peer
  local released
  released=$(field "$(sed -n 's/^RESULT //p' <<<"$out")" released)
  [ "$peer" = colo ] && RSS_RATIO[$flows]=$(awk -v peak="$peak" -v n="$RSS_FRAMES" 'BEGIN { printf "%.2f", peak / (n * 1400 / 1024) }')
  awk -v peer="$peer" -v flows="$flows" -v idle="$idle" -v peak="$peak" -v n="$RSS_FRAMES" -v rel="${released:-?}" 'BEGIN {
    data = n * 1400 / 1024
    printf "   %-5s %6d flows: data %6.1f MiB, idle RSS %5.1f MiB, peak RSS %6.1f MiB, peak/data %.2f, (peak-idle)/data %.2f, released early %s\n",
      peer, flows, data / 1024, idle / 1024, peak / 1024, peak / data, (peak - idle) / data, rel }'
}
declare -A RSS_RATIO
rss_row colo 1024
rss_row colo "$RSS_FRAMES"
# QEMU's connection table resets past 16384 flows, dropping what it holds.
[ "$have_qemu" = 1 ] && rss_row qemu 1024

echo
echo "== results"
printf '%-18s %-5s %10s %8s %9s %9s %9s %6s %8s %8s %8s %s\n' workload peer frames/s Mbit/s p50_us p99_us max_us cpu% ns/frame rss_MiB backlog% exact
for row in "${ROWS[@]}"; do
  name=${row%,*}; peer=${row#*,}
  r=${RES[$row]}
  once=yes
  exact "$r" ||
    once="lost $(field "$r" lost) dup $(field "$r" duplicated) unknown $(field "$r" unknown)"
  awk -v n="$name" -v p="$peer" -v f="$(field "$r" frames_per_s)" -v m="$(field "$r" mbit_per_s)" \
    -v p50="$(field "$r" p50_us)" -v p99="$(field "$r" p99_us)" -v mx="$(field "$r" max_us)" \
    -v cpu="$(field "$r" cpu_pct)" -v rss="$(field "$r" peak_rss_kib)" -v ex="$once" \
    -v bl="$(field "$r" backlog_pct)" \
    'BEGIN { printf "%-18s %-5s %10d %8.1f %9.1f %9.1f %9.1f %6.1f %8.0f %8.1f %8.1f %s\n", n, p, f, m, p50, p99, mx, cpu, (f > 0 ? cpu / 100 / f * 1e9 : 0), rss / 1024, bl, ex }'
done

echo
echo "== ratios (frames/s of the picked runs; held time: median p99 of the runs)"
declare -A SEEN
for row in "${ROWS[@]}"; do
  name=${row%,*}
  [ -n "${SEEN[$name]:-}" ] && continue
  SEEN[$name]=1
  c=${RES[$name,colo]}; nl=${RES[$name,null]}; q=${RES[$name,qemu]:-}
  awk -v n="$name" -v c="$(field "$c" frames_per_s)" -v nl="$(field "$nl" frames_per_s)" \
    -v q="$( [ -n "$q" ] && field "$q" frames_per_s || echo 0)" \
    -v cp99="${P99MED[$name,colo]:-0}" -v qp99="${P99MED[$name,qemu]:-0}" 'BEGIN {
      printf "%-18s colo/null %5.2f", n, (nl > 0 ? c / nl : 0)
      if (q > 0) printf "   colo/qemu %6.2f   p99 qemu/colo %7.1f", c / q, (cp99 > 0 ? qp99 / cp99 : 0)
      printf "\n" }'
done
if [ "$SHORT" = 0 ]; then
  awk -v a="$(field "${RES[udp64-f100k,colo]}" frames_per_s)" -v b="$(field "${RES[udp64-f64,colo]}" frames_per_s)" \
    -v m="$FLOWS_RATIO" 'BEGIN { printf "colo-compare 100k flows / 64 flows: %.2f (rows above), %.2f (median of the alternating pairs)\n", (b > 0 ? a / b : 0), m }'
fi

# The issue's targets, judged on this run (informational: the exit status reflects exactness).
echo
echo "== targets"
verdict() { # description value op limit
  awk -v d="$1" -v v="$2" -v op="$3" -v l="$4" 'BEGIN {
    ok = (op == ">=") ? (v >= l) : (v <= l)
    printf "   %-4s %-52s %8.2f (%s %s)\n", (ok ? "met" : "NOT"), d, v, op, l }'
}
floor() { # description value [op limit, ignored: no target]
  awk -v d="$1" -v v="$2" 'BEGIN { printf "   %-4s %-52s %8.2f\n", "info", d, v }'
}
ratio() { # a b
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }'
}
fps() { field "${RES[$1,$2]:-}" frames_per_s; }
p99() { echo "${P99MED[$1,$2]:-0}"; }
# udp64 and tcp1400 carry the frames/s targets; tcp1400-b24 (full runs only) is shown the same
# way as information: with larger writes the generator goes faster than on tcp1400, where
# colo-compare keeps up with it, and this shows how far colo-compare follows.
for w in udp64 tcp1400 tcp1400-b24; do
  [ -n "${RES[$w,colo]:-}" ] || continue
  judge=verdict
  [ "$w" = tcp1400-b24 ] && judge=floor
  if [ -n "${RES[$w,qemu]:-}" ]; then
    $judge "$w: colo-compare / QEMU frames/s" "$(ratio "$(fps $w colo)" "$(fps $w qemu)")" ">=" 5
    # Not the held-time target (that one is judged at QEMU's rate, below): at full load a
    # comparator that holds the window full makes every pair wait about window / its
    # frames/s (Little's law), so this ratio is about the frames/s ratio once both do, and
    # whether colo-compare does on tcp1400 depends on a few per cent of speed either way
    # between it and the generator.
    floor "$w: p99 held at full load, QEMU / colo-compare" "$(ratio "$(p99 $w qemu)" "$(p99 $w colo)")"
  fi
  $judge "$w: colo-compare / null peer frames/s" "$(ratio "$(fps $w colo)" "$(fps $w null)")" ">=" 0.8
  # Which side held the full-load runs back (median backlog%): the p99 ratio above reads
  # differently when colo-compare filled the window than when the generator could not.
  floor "$w: backlog% at full load, colo-compare" "${BACKLOGMED[$w,colo]:-0}"
  floor "$w: backlog% at full load, null peer" "${BACKLOGMED[$w,null]:-0}"
  if awk -v b="${BACKLOGMED[$w,colo]:-100}" 'BEGIN { exit !(b < 10) }'; then
    echo "        $w: colo-compare was waiting for the generator: its frames/s here is the generator's"
    echo "        ceiling in this run, a lower bound of colo-compare's own"
  fi
done
if [ -n "${RES[udp64,qemu]:-}" ] && [ -n "${RES[tcp1400,qemu]:-}" ]; then
  # The held-time target: QEMU's p99 under the load it can carry (its full load), against
  # colo-compare's under that same load.
  verdict "udp64 p99 held, QEMU full / colo-compare at QEMU's rate" "$(ratio "$(p99 udp64 qemu)" "$(p99 "udp64@$R_UDP" colo)")" ">=" 10
  [ "$SHORT" = 0 ] &&
    verdict "tcp1400 p99 held, QEMU full / colo-compare at QEMU's rate" "$(ratio "$(p99 tcp1400 qemu)" "$(p99 "tcp1400@$R_TCP" colo)")" ">=" 10
  # The same ratios for the null peer, which compares nothing: what this machine's loopback
  # path and scheduling allow at all at that rate (no verdict; a figure near 10 here means
  # the target is within the machine's noise).
  floor "udp64: the same, null peer at QEMU's rate" "$(ratio "$(p99 udp64 qemu)" "$(p99 "udp64@$R_UDP" null)")"
  [ "$SHORT" = 0 ] &&
    floor "tcp1400: the same, null peer at QEMU's rate" "$(ratio "$(p99 tcp1400 qemu)" "$(p99 "tcp1400@$R_TCP" null)")"
fi
if [ "$SHORT" = 0 ]; then
  verdict "colo-compare frames/s, 100k flows / 64 flows (pairs)" "$FLOWS_RATIO" ">=" 0.8
fi
verdict "peak RSS / bytes of $RSS_FRAMES held frames (1024 flows)" "${RSS_RATIO[1024]}" "<=" 2
verdict "peak RSS / bytes of $RSS_FRAMES held frames ($RSS_FRAMES flows)" "${RSS_RATIO[$RSS_FRAMES]}" "<=" 2
uptime
exit "$FAILED"
