#!/usr/bin/env bash
# Side-by-side benchmarks: execd and the reference exec-server, same machine, same run.
#
#   scripts/bench.sh [OUT.jsonl]
#
# Builds execd (release) and the shared bench client, starts both servers on
# loopback, runs every benchmark against each (alternating), and appends one
# JSON line per run to OUT (default: target/bench/results.jsonl). Then prints a
# summary with the ratio execd/reference. Needs ../shared (bench client and
# reference launcher). Stops both servers when done.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
OUT=${1:-target/bench/results.jsonl}
ROUNDS=${ROUNDS:-3}
mkdir -p "$(dirname "$OUT")" target/bench
: > "$OUT"
rm -f target/bench/execd.url target/bench/ref.url

cargo build --release -q -p execd
cargo build --release -q --manifest-path "$SHARED/bench/Cargo.toml" --target-dir target/exec-bench
BENCH=target/exec-bench/release/exec-bench
"$SHARED/reference/start-reference.sh" path > /dev/null # installs the reference once

rm -f target/bench/execd.url target/bench/ref.url
target/release/execd serve --listen ws://127.0.0.1:0 > target/bench/execd.url 2> target/bench/execd.log &
EXECD_PID=$!
REF_PORT=${REF_PORT:-47900}
CODEX_HOME=${CODEX_HOME:-$HOME/.cache/execd-reference/home} "$SHARED/reference/start-reference.sh" exec-server "$REF_PORT" \
  > target/bench/ref.url 2> target/bench/ref.log &
REF_PID=$! # the launcher execs the reference binary, so this is its pid
stop() { # pid: SIGTERM, then SIGKILL if it lingers
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
trap 'stop $EXECD_PID; stop $REF_PID' EXIT
for _ in $(seq 100); do
  [[ -s target/bench/execd.url && -s target/bench/ref.url ]] && break
  sleep 0.1
done
EXECD_URL=$(head -1 target/bench/execd.url)
REF_URL=$(head -1 target/bench/ref.url)
echo "execd $EXECD_URL (pid $EXECD_PID), reference $REF_URL (pid $REF_PID)" >&2

idle_rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "{\"bench\":\"idle_rss\",\"label\":\"execd\",\"rss_kib\":$(idle_rss $EXECD_PID)}" >> "$OUT"
echo "{\"bench\":\"idle_rss\",\"label\":\"reference\",\"rss_kib\":$(idle_rss $REF_PID)}" >> "$OUT"

run() { # label url pid args...
  local label=$1 url=$2 pid=$3; shift 3
  "$BENCH" "$@" --url "$url" --pid "$pid" --label "$label" >> "$OUT"
}
for round in $(seq "$ROUNDS"); do
  for side in execd reference; do
    if [[ $side == execd ]]; then url=$EXECD_URL pid=$EXECD_PID; else url=$REF_URL pid=$REF_PID; fi
    run "$side" "$url" "$pid" latency --n 300
    run "$side" "$url" "$pid" latency --n 300 --quickack
    run "$side" "$url" "$pid" throughput --mib 512
    run "$side" "$url" "$pid" fanout --procs 500
    run "$side" "$url" "$pid" conns --conns 100 --each 10
    run "$side" "$url" "$pid" stdin --mib 64
  done
  echo "round $round done" >&2
done
# fsread: throughput, and the peak RSS (VmHWM) of a fresh server serving it.
stop $EXECD_PID
stop $REF_PID
rm -f target/bench/execd.url target/bench/ref.url
target/release/execd serve --listen ws://127.0.0.1:0 > target/bench/execd.url 2>> target/bench/execd.log &
EXECD_PID=$!
CODEX_HOME=${CODEX_HOME:-$HOME/.cache/execd-reference/home} "$SHARED/reference/start-reference.sh" exec-server "$REF_PORT" \
  > target/bench/ref.url 2>> target/bench/ref.log &
REF_PID=$!
for _ in $(seq 100); do
  [[ -s target/bench/execd.url && -s target/bench/ref.url ]] && break
  sleep 0.1
done
run execd "$(head -1 target/bench/execd.url)" "$EXECD_PID" fsread --mib 64 --iters 3
run reference "$(head -1 target/bench/ref.url)" "$REF_PID" fsread --mib 64 --iters 3
python3 scripts/bench_summary.py "$OUT"
