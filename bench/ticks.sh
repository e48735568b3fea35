#!/usr/bin/env bash
# Tick lateness under load: the world example ticking at 60 Hz on every runner while wrk
# loads it with 64 connections (room reads, answered at once, spread over the runners).
# Prints requests per second and tick lateness p50/p99/max during the load, from the
# server's own histogram (bucket upper bounds) and maximum.
#   bench/ticks.sh [seconds]      (default 10; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
PORT=${PORT:-18181}
cargo build --release -q --example world
WORLD_TICK_HZ=60 target/release/examples/world --listen 127.0.0.1:$PORT >/tmp/ticks-bench.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
for r in $(seq 0 63); do curl -sf -d 1 http://127.0.0.1:$PORT/run/room-$r >/dev/null; done
LUA=$(mktemp --suffix=.lua)
cat >"$LUA" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/run/room-" .. (n % 64))
end
LUA
curl -sf http://127.0.0.1:$PORT/metrics >/tmp/ticks-before.txt
WRK=$(wrk -t2 -c64 -d"${SECS}s" -s "$LUA" http://127.0.0.1:$PORT/)
curl -sf http://127.0.0.1:$PORT/metrics >/tmp/ticks-after.txt
rm -f "$LUA"
python3 - "$SECS" <<'PY'
import re, sys
def buckets(path):
    b = {}
    for line in open(path):
        m = re.match(r'httpd_runner_tick_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m: b[m.group(1)] = int(m.group(2))
    return b
def value(path, name):
    return max(float(l.split()[-1]) for l in open(path) if l.startswith(name))
b0, b1 = buckets('/tmp/ticks-before.txt'), buckets('/tmp/ticks-after.txt')
les = [k for k in b1 if k != '+Inf']
cum = [(float(k), b1[k] - b0.get(k, 0)) for k in les] + [(float('inf'), b1['+Inf'] - b0.get('+Inf', 0))]
total = cum[-1][1]
def q(p):
    for le, c in cum:
        if c >= p * total:
            return le
print(f"ticks during the load: {total}")
print(f"tick lateness p50 <= {q(0.5)*1e6:.0f} us, p99 <= {q(0.99)*1e6:.0f} us (histogram bucket bounds)")
print(f"tick lateness max (whole run): {value('/tmp/ticks-after.txt', 'httpd_runner_tick_lateness_max_seconds')*1e6:.0f} us")
PY
echo "$WRK" | grep -E "Requests/sec|Non-2xx|Socket errors" || true
