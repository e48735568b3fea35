#!/usr/bin/env bash
# Dynamic batching: the batch example at batch size 1 and N (default 16) under wrk with 64
# connections, POST 64 bytes. Each pass costs BATCH_COST_US (default 200) plus a little per
# request; a batch leaves when full or BATCH_WAIT_US (default 1000) after its first request.
# Prints requests per second and p99 latency for each size.
#   bench/batch.sh [N] [seconds]      (needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}
SECS=${2:-10}
PORT=${PORT:-18182}
cargo build --release -q --example batch
LUA=$(mktemp --suffix=.lua)
printf 'wrk.method = "POST"\nwrk.body = string.rep("x", 64)\n' >"$LUA"
for size in 1 "$N"; do
  BATCH_SIZE=$size BATCH_COST_US=${BATCH_COST_US:-200} BATCH_WAIT_US=${BATCH_WAIT_US:-1000} \
    target/release/examples/batch --listen 127.0.0.1:$PORT >/tmp/batch-bench.log 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
  OUT=$(wrk -t2 -c64 -d"${SECS}s" --latency -s "$LUA" http://127.0.0.1:$PORT/run)
  kill "$PID"; wait "$PID" 2>/dev/null || true
  RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
  P99=$(echo "$OUT" | awk '$1 == "99%" {print $2}')
  NON2XX=$(echo "$OUT" | awk '/Non-2xx/ {print $4}')
  echo "batch size $size: ${RPS} requests/s, p99 ${P99}${NON2XX:+, non-2xx $NON2XX}"
done
rm -f "$LUA"
