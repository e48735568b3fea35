#!/usr/bin/env bash
# Resident memory beside the peers, in one run: each server idle (one second after it
# answers) and at its peak under `wrk -c1000` POST 1 KiB, rounds interleaved
# (A B C ... A B C ...), medians printed as a markdown table.
#
#   bench/memory.sh                       # httpd-runner, hyper, actix, may; 3 rounds of 5 s
#   bench/memory.sh --rounds 1 --duration 3
#   bench/memory.sh --add 'base=/tmp/old/httpd-runner --listen 127.0.0.1:{PORT}'
#
# The peers are peerbench's (../shared/peerbench/peers, built here unless --no-build); our
# server is target/release/httpd-runner (built unless --no-build). Peak is the most of
# VmRSS sampled every 20 ms during the load and VmHWM read after it. Needs wrk and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERBENCH=${PEERBENCH:-$ROOT/../shared/peerbench}
ROUNDS=3
DURATION=5
BUILD=1
declare -a NAMES=() CMDS=()
add() { NAMES+=("${1%%=*}"); CMDS+=("${1#*=}"); }
add "httpd-runner=$ROOT/target/release/httpd-runner --listen 127.0.0.1:{PORT}"
add "hyper=$PEERBENCH/peers/target/release/hyper-echo {PORT}"
add "actix=$PEERBENCH/peers/target/release/actix-echo {PORT}"
add "may=$PEERBENCH/peers/target/release/may-echo {PORT}"
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --add) add "$2"; shift 2 ;;
    --only)
      IFS=, read -r -a keep <<< "$2"; shift 2
      declare -a n2=() c2=()
      for i in "${!NAMES[@]}"; do
        for k in "${keep[@]}"; do [[ ${NAMES[$i]} == "$k" ]] && { n2+=("${NAMES[$i]}"); c2+=("${CMDS[$i]}"); }; done
      done
      NAMES=("${n2[@]}"); CMDS=("${c2[@]}") ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
if ((BUILD)); then
  (cd "$ROOT" && cargo build --release -q -p httpd-runner)
  (cd "$PEERBENCH/peers" && cargo build --release -q)
fi
export PEER_THREADS=${PEER_THREADS:-$(nproc --all)}
ulimit -n 20000 2>/dev/null || true

LUA=$(mktemp --suffix=.lua)
OUT=$(mktemp -d)
trap 'rm -rf "$LUA" "$OUT"' EXIT
cat > "$LUA" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.path = "/run"
EOF

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One measurement: prints "idle_kib peak_kib req_per_s".
measure() {
  local cmd=$1 port pid idle peak=0 hwm rss rps
  port=$(free_port)
  cmd=${cmd//\{PORT\}/$port}
  $cmd >"$OUT/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/run" && break
    sleep 0.05
  done
  local echo
  echo=$(curl -s --data-binary "hello" "http://127.0.0.1:$port/run")
  [[ $echo == hello ]] || { echo "$cmd: echo check failed" >&2; kill "$pid"; wait "$pid" 2>/dev/null || true; return 1; }
  sleep 1
  idle=$(kib "$pid" VmRSS)
  wrk -t1 -c1000 -d"${DURATION}s" --timeout 5s -s "$LUA" "http://127.0.0.1:$port/run" >"$OUT/wrk" 2>&1 &
  local wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(kib "$pid" VmRSS)
    ((rss > peak)) && peak=$rss
    sleep 0.02
  done
  wait "$wrk_pid" || true
  hwm=$(kib "$pid" VmHWM)
  ((hwm > peak)) && peak=$hwm
  rps=$(awk '/Requests\/sec/ {print int($2)}' "$OUT/wrk")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$idle $peak ${rps:-0}"
}

declare -A RES=()
for ((r = 1; r <= ROUNDS; r++)); do
  for i in "${!NAMES[@]}"; do
    m=$(measure "${CMDS[$i]}") || exit 1
    RES[${NAMES[$i]}]+="$m;"
    echo "round $r ${NAMES[$i]}: idle/peak KiB, req/s: $m" >&2
  done
done

median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| server | idle RSS (MiB) | peak RSS, wrk -c1000 POST 1 KiB (MiB) | req/s |"
echo "|---|---:|---:|---:|"
for n in "${NAMES[@]}"; do
  IFS=';' read -r -a runs <<< "${RES[$n]}"
  idle=$(for x in "${runs[@]}"; do echo "$x" | cut -d' ' -f1; done | median)
  peak=$(for x in "${runs[@]}"; do echo "$x" | cut -d' ' -f2; done | median)
  rps=$(for x in "${runs[@]}"; do echo "$x" | cut -d' ' -f3; done | median)
  printf '| %s | %.1f | %.1f | %s |\n' "$n" "$(echo "$idle/1024" | bc -l)" "$(echo "$peak/1024" | bc -l)" "$rps"
done
echo
echo "rounds=$ROUNDS duration=${DURATION}s connections=1000 body=1024 B PEER_THREADS=$PEER_THREADS $(nproc) cores"
