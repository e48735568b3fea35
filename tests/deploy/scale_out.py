#!/usr/bin/env python3
"""End-to-end test of the nginx scale-out recipe (deploy/nginx/httpd-runner.conf).

Starts three httpd-runner instances (2 runners each) on ephemeral loopback ports and an nginx
in front of them with the recipe's snippet, rendered by replacing its addresses, then checks:

  (a) every runner key always reaches one (instance, runner) pair, by path (/run/KEY) and by
      header (X-Runner-Key), and the runner is the server's FNV-1a(key) mod runners;
  (b) keys spread over all instances and over both runners of each;
  (c) requests without a key spread over all instances; /health is proxied; /metrics and
      /shutdown are not; the body limit matches the server's;
  (d) SIGKILL of one instance under load: no request fails (in-flight GETs on the killed
      instance are retried by nginx), keys of the live instances stay exactly where they
      were, keys of the killed one move to live ones and keep their runner;
  (e) once fail_timeout has passed, nginx tries the dead instance with a live request again:
      refused, passed on, still no failure (POST included) and no key moves;
  (f) removing the dead instance's server line (nginx reloaded) moves no key: the hash is
      consistent.

Usage: python3 tests/deploy/scale_out.py [--server PATH] [--keep]
Standard library only. Exits 0 when every check passed, 1 on a failed check, 2 when it cannot
run (nginx or the server binary missing).
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNIPPET = REPO / "deploy" / "nginx" / "httpd-runner.conf"
INSTANCES = 3
RUNNERS = 2
KEYS = 60
SENDS = 5
MIN_KEYS_PER_INSTANCE = 5
KEYLESS = 60
MAX_BODY = 102400  # the server's default --max-body-bytes, the snippet's client_max_body_size
REQUEST_TIMEOUT = 5.0  # seconds, each request
STARTUP_TIMEOUT = 10.0  # seconds, each process
WHOLE_TEST = 55  # seconds, everything (the watchdog)
SLOW_MS = 200  # X-Delay-Ms of the requests kept in flight on the instance that gets killed
SLOW_THREADS = 3
FAST_THREADS = 2

# The addresses the snippet uses, each replaced by an ephemeral one: nginx's listen, then the
# upstream instances in order.
LISTEN = "127.0.0.1:8080"
UPSTREAMS = ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]


class Failed(Exception):
    """A check failed."""


def check(ok, message):
    if not ok:
        raise Failed(message)


def fnv1a(data):
    """The server's runner hash (core/src/route.rs)."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def log(line=""):
    print(line, flush=True)


class Processes:
    """Children started by this test, each in its own process group, stopped by PID."""

    def __init__(self):
        self.started = []  # (name, Popen)

    def start(self, name, argv, output):
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.started.append((name, proc))
        return proc

    def stop_all(self):
        """SIGTERM to everything still running, then SIGKILL (to the child's process group,
        so nginx workers go too) to whatever is left after 5 s."""
        alive = [(n, p) for n, p in self.started if p.poll() is None]
        for _, p in alive:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        for name, p in alive:
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"cleanup: {name} (pid {p.pid}) still running 5 s after SIGTERM: SIGKILL")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


class Client:
    """One keep-alive HTTP/1.1 connection to nginx. No retries: a failure is a failure."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
            fields = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.close()
            return resp.status, fields, data
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def tried(fields):
    """The instances nginx tried for a request, in order (X-Upstream, from $upstream_addr)."""
    value = fields.get("x-upstream", "")
    return [a.strip() for a in value.split(",") if a.strip()]


def wait_for_banner(proc, output, name):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        text = Path(output).read_text(errors="replace")
        m = re.search(r"^listening on http://127\.0\.0\.1:(\d+)$", text, re.M)
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            raise Failed(f"{name} exited with {proc.returncode} before listening:\n{text}")
        if time.monotonic() > deadline:
            raise Failed(f"{name} printed no 'listening on' line in {STARTUP_TIMEOUT:.0f} s:\n{text}")
        time.sleep(0.05)


def wait_for_accept(proc, port, name, output, pid_file=None):
    """Until `proc` accepts on `port`. With `pid_file`, also until the file holds proc's PID
    (nginx writes it once its listeners are bound), so that a connection accepted by some
    other process that holds the port is not taken for nginx's."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            text = Path(output).read_text(errors="replace")
            raise Failed(f"{name} exited with {proc.returncode}:\n{text}")
        ours = True
        if pid_file is not None:
            try:
                ours = Path(pid_file).read_text().strip() == str(proc.pid)
            except OSError:
                ours = False
        if ours:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise Failed(f"{name} does not accept on 127.0.0.1:{port} after {STARTUP_TIMEOUT:.0f} s")
        time.sleep(0.05)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_snippet(listen_port, instance_ports):
    """The recipe's snippet with its addresses replaced; fails if the snippet no longer has
    each address exactly once outside comments, or has an add_header (which would hide the
    test's X-Upstream)."""
    text = SNIPPET.read_text()
    directives = re.sub(r"#[^\n]*", "", text)
    check(
        "add_header" not in directives,
        f"{SNIPPET} uses add_header: it would hide the X-Upstream header the test adds at "
        "http level (an add_header in a block replaces the inherited ones)",
    )
    subs = [(LISTEN, listen_port)] + list(zip(UPSTREAMS, instance_ports))
    for addr, port in subs:
        pattern = re.escape(addr) + r"(?!\d)"
        found = len(re.findall(pattern, directives))
        check(
            found == 1,
            f"{SNIPPET}: expected {addr} once outside comments, found {found} "
            "(the test renders the recipe by replacing these addresses)",
        )
        text = re.sub(pattern, f"127.0.0.1:{port}", text)
    return text


MAIN_CONF = """\
# Rendered by tests/deploy/scale_out.py around deploy/nginx/httpd-runner.conf.
daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    include {d}/httpd-runner.conf;

    # Test only: the instances nginx tried for the request, in order ($upstream_addr), and
    # which rendering of the configuration answered (it changes at the reload in (f)).
    add_header X-Upstream $upstream_addr always;
    add_header X-Config {generation} always;

    log_format upstreams '$request_method $request_uri $status key=$runner_key '
                         'tried=$upstream_addr statuses=$upstream_status';
    access_log {d}/access.log upstreams;
}}
"""


def tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


def find_nginx():
    """nginx on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def run(server, tmp, procs):
    started = time.monotonic()
    nginx = find_nginx()
    if nginx is None:
        log("scale_out: nginx is not installed (.ci/setup installs it: apt-get install -y nginx)")
        return 2
    if not os.access(server, os.X_OK):
        log(f"scale_out: no server binary at {server} (cargo build --release, or pass --server PATH)")
        return 2
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    log(f"scale_out: {server}; {version}; {INSTANCES} instances x {RUNNERS} runners")

    # --- Instances, on ports the kernel picks ---------------------------------------------
    instances = []  # (addr, Popen)
    for i in range(INSTANCES):
        out = tmp / f"instance-{i}.log"
        name = f"instance {i}"
        proc = procs.start(
            name,
            [
                str(server), "--listen", "127.0.0.1:0", "--runners", str(RUNNERS), "--no-pin",
                # The echo runner, which can also sleep when a request asks (X-Delay-Ms), so
                # the kill below finds requests in flight; shedding off so they may queue.
                "--runner", "delay=0", "--shed-after", "off",
            ],
            out,
        )
        port = wait_for_banner(proc, out, name)
        instances.append((f"127.0.0.1:{port}", proc))
    addrs = [a for a, _ in instances]
    index = {a: i for i, a in enumerate(addrs)}

    # --- nginx ------------------------------------------------------------------------------
    os.chmod(tmp, 0o755)  # nginx workers may run as another user (when this runs as root)
    conf = tmp / "nginx.conf"
    conf.write_text(MAIN_CONF.format(d=tmp, generation=1))
    base = [nginx, "-p", f"{tmp}/", "-e", str(tmp / "error.log"), "-c", str(conf)]
    for attempt in range(3):
        # A port the kernel just handed out and took back: another process may grab it before
        # nginx binds it, hence the retries.
        nginx_port = free_port()
        (tmp / "httpd-runner.conf").write_text(
            render_snippet(nginx_port, [int(a.rsplit(":", 1)[1]) for a in addrs])
        )
        t = subprocess.run(base + ["-t"], capture_output=True, text=True, timeout=STARTUP_TIMEOUT)
        check(t.returncode == 0,
              f"nginx -t rejects the rendered config:\n{t.stderr}{tail(tmp / 'error.log')}")
        ngx = procs.start("nginx", base, tmp / "nginx.out")
        try:
            wait_for_accept(ngx, nginx_port, "nginx", tmp / "error.log", tmp / "nginx.pid")
            break
        except Failed:
            in_use = "Address already in use" in Path(tmp / "error.log").read_text(errors="replace")
            if ngx.poll() is None or not in_use or attempt == 2:
                raise
            log(f"nginx: 127.0.0.1:{nginx_port} was taken meanwhile, another port")
    log(f"nginx -t: ok; nginx on 127.0.0.1:{nginx_port} (pid {ngx.pid}); instances "
        + ", ".join(f"{i}={a} (pid {p.pid})" for i, (a, p) in enumerate(instances)))

    def name(addr):
        return f"{index[addr]}" if addr in index else addr

    # --- (a) one key, one (instance, runner) ---------------------------------------------
    # Some keys carry a percent-encoded byte and other path characters: the server keys on
    # the raw path, so nginx must hash it raw too, or the path and header forms of one key
    # could land on different instances.
    keys = [
        f"user%2F{i:02d}" if i % 10 == 9 else f"user.{i:02d}~a:b@c" if i % 10 == 4 else f"user-{i:02d}"
        for i in range(KEYS)
    ]
    placed = {}  # key -> (addr, runner)
    by_path = by_header = 0
    for r in range(SENDS):
        c = Client(nginx_port)  # a new connection per round: both nginx workers take part
        for i, key in enumerate(keys):
            body = f"{key} round {r}".encode()
            if (i + r) % 2 == 0:
                status, fields, data = c.request("POST", f"/run/{key}", body)
                by_path += 1
            else:
                status, fields, data = c.request("POST", "/run", body, {"X-Runner-Key": key})
                by_header += 1
            check(status == 200, f"(a) POST for key {key}: status {status}, body {data[:200]!r}")
            check(data == body, f"(a) key {key}: body {data[:200]!r}, expected the echo {body!r}")
            up = tried(fields)
            check(len(up) == 1 and up[0] in index,
                  f"(a) key {key}: X-Upstream {fields.get('x-upstream')!r}, expected one instance "
                  "(nothing failed, so nginx should have tried one)")
            pair = (up[0], fields.get("x-runner"))
            first = placed.setdefault(key, pair)
            check(pair == first,
                  f"(a) key {key} moved while all instances were up: instance {name(first[0])} "
                  f"runner {first[1]}, then instance {name(pair[0])} runner {pair[1]} (round {r})")
        c.close()
    wrong = [k for k, (_, runner) in placed.items() if runner != str(fnv1a(k.encode()) % RUNNERS)]
    check(not wrong, f"(a) runner is not FNV-1a(key) mod {RUNNERS} for keys {wrong[:10]}")
    log(f"(a) {KEYS} keys x {SENDS} POSTs = {by_path + by_header} requests ({by_path} as /run/KEY, "
        f"{by_header} with X-Runner-Key): each key always on one (instance, runner); runner = "
        f"FNV-1a(key) mod {RUNNERS}; bodies echoed")

    # --- (b) spread -------------------------------------------------------------------------
    per = {a: {} for a in addrs}  # addr -> runner -> keys
    for key, (addr, runner) in placed.items():
        per[addr][runner] = per[addr].get(runner, 0) + 1
    log("(b) keys per instance: " + "; ".join(
        f"{name(a)}: {sum(per[a].values())} (" + ", ".join(
            f"runner {r}: {n}" for r, n in sorted(per[a].items())) + ")" for a in addrs))
    for a in addrs:
        n = sum(per[a].values())
        check(n >= MIN_KEYS_PER_INSTANCE,
              f"(b) instance {name(a)} got {n} of {KEYS} keys, fewer than {MIN_KEYS_PER_INSTANCE}")
        check(len(per[a]) == RUNNERS,
              f"(b) instance {name(a)}'s keys all went to runner(s) {sorted(per[a])}")

    # --- (c) keyless requests, /health, admin endpoints, body limit --------------------------
    c = Client(nginx_port)
    keyless = {}
    for _ in range(KEYLESS):
        status, fields, _ = c.request("GET", "/run")
        up = tried(fields)
        check(status == 200 and len(up) == 1, f"(c) keyless GET /run: {status}, X-Upstream {up}")
        keyless[up[0]] = keyless.get(up[0], 0) + 1
    check(len(keyless) == INSTANCES,
          f"(c) {KEYLESS} keyless requests reached only instances {sorted(name(a) for a in keyless)}")
    status, fields, data = c.request("GET", "/health")
    check(status == 200 and data.strip() == b"ok" and len(tried(fields)) == 1,
          f"(c) GET /health through nginx: {status} {data!r}, X-Upstream {fields.get('x-upstream')!r}")
    for method, path in (("GET", "/metrics"), ("POST", "/shutdown")):
        status, fields, _ = c.request(method, path)
        check(status == 404 and not tried(fields),
              f"(c) {method} {path} through nginx: {status}, X-Upstream "
              f"{fields.get('x-upstream')!r}; expected nginx's own 404")
    c.close()
    check(all(p.poll() is None for _, p in instances), "(c) an instance stopped after POST /shutdown")
    c = Client(nginx_port)
    big = bytes((i * 7) & 0xFF for i in range(MAX_BODY))
    status, fields, data = c.request("POST", f"/run/{keys[0]}", big)
    check(status == 200 and data == big,
          f"(c) {MAX_BODY}-byte body: status {status}, {len(data)} bytes back")
    c.close()
    c = Client(nginx_port)
    status, fields, _ = c.request("POST", f"/run/{keys[0]}", big + b"x")
    check(status == 413 and not tried(fields),
          f"(c) {MAX_BODY + 1}-byte body: {status}, X-Upstream {fields.get('x-upstream')!r}; "
          "expected nginx's own 413")
    c.close()
    log(f"(c) {KEYLESS} keyless GETs per instance: "
        + ", ".join(f"{name(a)}: {keyless[a]}" for a in addrs)
        + f"; /health 200 ok; /metrics and /shutdown 404 from nginx; {MAX_BODY}-byte body "
        f"echoed, {MAX_BODY + 1} bytes 413 from nginx")

    # --- (d) kill one instance under load ----------------------------------------------------
    victim = max(addrs, key=lambda a: sum(per[a].values()))
    victim_proc = dict(instances)[victim]
    victim_keys = [k for k in keys if placed[k][0] == victim]
    # Slow requests keep its runner 0 busy (and queued), so requests are in flight on it when
    # it dies; fast ones go to every other key, its runner 1's included, without waiting
    # behind the slow ones.
    slow_keys = [k for k in victim_keys if placed[k][1] == "0"]
    fast_keys = [k for k in keys if k not in slow_keys]
    live = [a for a in addrs if a != victim]
    stop = {"slow": threading.Event(), "fast": threading.Event()}
    lock = threading.Lock()
    records = []  # (kind, key, status or None, tried, runner, error or None, started, ended)

    def load(kind, cycle, offset, headers):
        c = Client(nginx_port)
        i = offset
        while not stop[kind].is_set():
            key = cycle[i % len(cycle)]
            i += 1
            t0 = time.monotonic()
            try:
                status, fields, data = c.request("GET", f"/run/{key}", None, headers)
                rec = (kind, key, status, tried(fields), fields.get("x-runner"), None, t0,
                       time.monotonic())
            except Exception as e:  # noqa: BLE001 (a failed request is a result)
                rec = (kind, key, None, [], None, repr(e), t0, time.monotonic())
            with lock:
                records.append(rec)
        c.close()

    threads = [
        threading.Thread(target=load, args=("slow", slow_keys, i, {"X-Delay-Ms": str(SLOW_MS)}),
                         daemon=True)
        for i in range(SLOW_THREADS)
    ] + [
        threading.Thread(target=load, args=("fast", fast_keys, i * (len(fast_keys) // FAST_THREADS), {}),
                         daemon=True)
        for i in range(FAST_THREADS)
    ]
    for th in threads:
        th.start()
    time.sleep(0.6)
    killed_at = time.monotonic()
    victim_proc.send_signal(signal.SIGKILL)
    victim_proc.wait()
    # The slow requests were there to be in flight at the kill; once retried, their keys share
    # a live instance's runner 0 with fast keys, so stop them and let the fast ones run on.
    stop["slow"].set()
    time.sleep(1.0)
    stop["fast"].set()
    for th in threads:
        th.join(REQUEST_TIMEOUT + 2)
    check(not any(th.is_alive() for th in threads), "(d) a load thread did not finish")

    failed = [r for r in records if r[2] != 200]
    check(not failed, f"(d) {len(failed)} of {len(records)} requests failed around the kill, e.g. "
          + "; ".join(f"{r[1]}: status {r[2]} error {r[5]} tried {r[3]}" for r in failed[:5]))
    during = [r for r in records if r[6] >= killed_at]
    retried = [r for r in records if len(r[3]) > 1]
    in_flight = [r for r in retried if r[3][0] == victim and r[6] < killed_at]
    check(in_flight, "(d) no request was in flight on the killed instance (none was retried "
          "after being sent to it), so the kill under load proved nothing")
    for kind, key, _, up, runner, _, _, _ in records:
        check(up and up[-1] in index, f"(d) key {key}: X-Upstream {up}")
        check(runner == placed[key][1],
              f"(d) key {key} changed runner during the kill: {placed[key][1]} -> {runner}")
        if placed[key][0] != victim:
            check(up == [placed[key][0]],
                  f"(d) key {key} of live instance {name(placed[key][0])} was sent to "
                  f"{[name(a) for a in up]} during the kill")
        else:
            check(all(a == victim for a in up[:-1]),
                  f"(d) key {key} of the killed instance tried {[name(a) for a in up]}")
    log(f"(d) killed instance {name(victim)} (pid {victim_proc.pid}, {len(victim_keys)} keys) with "
        f"SIGKILL under load: {len(records)} GETs ({sum(r[0] == 'slow' for r in records)} slow "
        f"({SLOW_MS} ms) on the {len(slow_keys)} keys of its runner 0 in {SLOW_THREADS} threads, "
        f"{sum(r[0] == 'fast' for r in records)} on the other {len(fast_keys)} keys in "
        f"{FAST_THREADS}), {len(during)} sent after the kill; 0 failed; "
        f"{len(retried)} retried by nginx, {len(in_flight)} of them in flight on the killed "
        "instance when it died")

    # After the kill: every key, GET then POST.
    after = {}
    c = Client(nginx_port)
    for key in keys:
        status, fields, data = c.request("GET", f"/run/{key}")
        check(status == 200, f"(d) GET /run/{key} after the kill: {status} {data[:200]!r}")
        up = tried(fields)
        check(up and all(a == victim for a in up[:-1]) and up[-1] in live,
              f"(d) GET /run/{key} after the kill tried {up}; expected to end on a live instance")
        after[key] = (up[-1], fields.get("x-runner"))
    for i, key in enumerate(keys):
        body = f"{key} after the kill".encode()
        if i % 2 == 0:
            status, fields, data = c.request("POST", f"/run/{key}", body)
        else:
            status, fields, data = c.request("POST", "/run", body, {"X-Runner-Key": key})
        check(status == 200 and data == body,
              f"(d) POST for key {key} after the kill: {status} {data[:200]!r}")
        up = tried(fields)
        check((up[-1], fields.get("x-runner")) == after[key],
              f"(d) key {key}: GET went to instance {name(after[key][0])} runner {after[key][1]}, "
              f"POST to {[name(a) for a in up]} runner {fields.get('x-runner')}")
    c.close()
    stayed = moved = 0
    moved_to = {a: 0 for a in live}
    for key in keys:
        (was, runner), (now, runner_now) = placed[key], after[key]
        check(runner_now == runner, f"(d) key {key} changed runner: {runner} -> {runner_now}")
        if was == victim:
            moved += 1
            moved_to[now] += 1
        else:
            check(now == was, f"(d) key {key} moved from live instance {name(was)} to {name(now)}")
            stayed += 1
    # Keys of the killed instance that finished elsewhere during the kill went where they are now.
    for _, key, _, up, _, _, _, _ in records:
        if placed[key][0] == victim and up[-1] != victim:
            check(up[-1] == after[key][0],
                  f"(d) key {key} went to instance {name(up[-1])} during the kill, "
                  f"{name(after[key][0])} after")
    status, fields, data = c.request("GET", "/health")
    check(status == 200 and data.strip() == b"ok", f"(d) /health after the kill: {status} {data!r}")
    c.close()
    check(all(p.poll() is None for a, p in instances if a != victim), "(d) a live instance stopped")
    log(f"(d) after the kill: {KEYS}/{KEYS} GETs and {KEYS}/{KEYS} POSTs 200; {stayed} keys stayed on "
        f"their instance and runner, {moved} moved ("
        + ", ".join(f"to {name(a)}: {n}" for a, n in moved_to.items())
        + "), every key on its runner")

    # --- (e) once fail_timeout has passed, nginx tries the dead instance again ----------------
    # With a live request: refused, so passed on (a POST too: it was never sent). nginx
    # counts fail_timeout in whole seconds, hence the margin.
    fail_timeout = int(re.search(r"fail_timeout=(\d+)s", SNIPPET.read_text()).group(1))
    if fail_timeout > 20:
        log(f"(e) skipped: fail_timeout={fail_timeout}s is too long to wait for here")
    else:
        time.sleep(max(0.0, killed_at + fail_timeout + 1.5 - time.monotonic()))
        probes = 0
        c = Client(nginx_port)
        for method in ("POST", "GET"):  # POSTs first: the first request for its keys probes
            for key in keys:
                body = f"{key} after fail_timeout".encode() if method == "POST" else None
                status, fields, data = c.request(method, f"/run/{key}", body)
                up = tried(fields)
                check(status == 200 and data == (body or b""),
                      f"(e) {method} /run/{key}: {status} {data[:200]!r}, tried {up}")
                check(all(a == victim for a in up[:-1]) and (up[-1], fields.get("x-runner")) == after[key],
                      f"(e) {method} /run/{key} tried {[name(a) for a in up]} runner "
                      f"{fields.get('x-runner')}; expected instance {name(after[key][0])} "
                      f"runner {after[key][1]}")
                probes += len(up) - 1
        c.close()
        check(probes >= 1, f"(e) nginx did not try the dead instance again {fail_timeout} s "
              "(fail_timeout) after it failed")
        log(f"(e) {fail_timeout} s (fail_timeout) after the kill: {KEYS} POSTs and {KEYS} GETs 200, "
            f"every key where it was after the kill; nginx tried the dead instance again "
            f"{probes} time(s), refused and passed on")

    # --- (f) the dead instance taken out of the configuration --------------------------------
    # With consistent hashing, removing a server line moves only that server's keys, to where
    # skipping it sent them already: no key may move. (A plain hash would move most keys.)
    rendered = (tmp / "httpd-runner.conf").read_text()
    line = re.compile(r"^[ \t]*server[ \t]+" + re.escape(victim) + r"(?!\d)[^\n]*\n", re.M)
    check(len(line.findall(rendered)) == 1, f"(f) no single server line for {victim} to remove")
    (tmp / "httpd-runner.conf").write_text(line.sub("", rendered))
    conf.write_text(MAIN_CONF.format(d=tmp, generation=2))
    t = subprocess.run(base + ["-t"], capture_output=True, text=True, timeout=STARTUP_TIMEOUT)
    check(t.returncode == 0, f"(f) nginx -t rejects the configuration without {victim}:\n{t.stderr}")
    ngx.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        c = Client(nginx_port)  # new connections: old workers stop accepting at the reload
        status, fields, _ = c.request("GET", "/health")
        c.close()
        if status == 200 and fields.get("x-config") == "2":
            break
        check(time.monotonic() < deadline, "(f) nginx did not take the new configuration (SIGHUP)")
        time.sleep(0.05)
    c = Client(nginx_port)
    moved_again = []
    for key in keys:
        status, fields, data = c.request("GET", f"/run/{key}")
        up = tried(fields)
        check(status == 200 and len(up) == 1 and fields.get("x-config") == "2",
              f"(f) GET /run/{key} after the reload: {status}, tried {up}, "
              f"configuration {fields.get('x-config')}")
        if (up[0], fields.get("x-runner")) != after[key]:
            moved_again.append(f"{key}: {name(after[key][0])} -> {name(up[0])}")
    c.close()
    check(not moved_again, f"(f) removing the dead instance's server line moved {len(moved_again)} "
          f"of {KEYS} keys (is the hash consistent?): {moved_again[:10]}")
    log(f"(f) dead instance's server line removed, nginx reloaded (SIGHUP): {KEYS}/{KEYS} GETs 200 "
        "with no retry, 0 keys moved")
    log(f"scale_out: PASS in {time.monotonic() - started:.1f} s")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", type=Path, default=REPO / "target" / "release" / "httpd-runner",
                        help="httpd-runner binary (default: target/release/httpd-runner)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    server = args.server.resolve()

    def watchdog(_signum, _frame):
        raise Failed(f"the test took longer than {WHOLE_TEST} s")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(WHOLE_TEST)
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="hr-scale-out-"))
    code = 1
    try:
        code = run(server, tmp, procs)
    except Failed as e:
        log(f"scale_out: FAIL: {e}")
        for f in sorted(tmp.glob("*.log")):
            log(f"--- {f.name} (last lines)\n{tail(f)}")
    except Exception as e:  # noqa: BLE001 (an unexpected error fails the test, with cleanup)
        log(f"scale_out: FAIL: unexpected {e!r}\n{traceback.format_exc()}")
        for f in sorted(tmp.glob("*.log")):
            log(f"--- {f.name} (last lines)\n{tail(f)}")
    finally:
        signal.alarm(0)
        procs.stop_all()
        if args.keep:
            log(f"scale_out: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
