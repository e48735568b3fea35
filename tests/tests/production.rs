//! Deployment: the admin listener, proxies, Unix sockets, IPv6 and dual stack, the listen
//! queue, `--reuse-port` hand-over, the open-file limit, accept errors, drain and signals.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use httpd_runner::core::limits::open_files_needed;
use httpd_runner_tests::{metric_in, post, serial, server_binary, Client, Server, TIMEOUT};

const SHUTDOWN: &[u8] = b"POST /shutdown HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
const METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";

fn ask(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read_response().status
}

/// With `--admin-listen`, the admin resources move to their own port: the data port answers
/// 404 for them (whatever the method), the admin port serves them and not `/run`.
#[test]
fn an_admin_listener_takes_the_admin_resources() {
    let _g = serial();
    let mut server = Server::start(&["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin.expect("the banner names the admin address");
    assert_ne!(admin, server.addr);
    let data = server.addr;
    assert_eq!(ask(data, SHUTDOWN), 404);
    assert_eq!(ask(data, METRICS), 404);
    assert_eq!(ask(data, b"GET /shutdown HTTP/1.1\r\nHost: t\r\n\r\n"), 404);
    assert_eq!(ask(data, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 200);
    assert_eq!(ask(data, &post("/run", b"data")), 200);
    assert_eq!(ask(admin, &post("/run", b"admin")), 404);
    assert_eq!(ask(admin, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 200);
    let metrics = server.metrics();
    assert!(
        metric_in(&metrics, "httpd_runner_requests_total", "code=\"404\"") >= 4,
        "{metrics}"
    );
    // Still: a proxied request is not local on the admin port either.
    assert_eq!(
        ask(
            admin,
            b"POST /shutdown HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\nContent-Length: 0\r\n\r\n"
        ),
        403
    );
    assert!(server.shutdown().0.success(), "the admin port stops it");
}

/// The admin port answers while the data port is full: each handler keeps connections for
/// it beyond `--max-connections`.
#[test]
fn the_admin_port_answers_while_the_data_port_is_full() {
    let _g = serial();
    let mut server = Server::start(&["--max-connections", "2", "--admin-listen", "127.0.0.1:0"]);
    let mut held: Vec<Client> = (0..2)
        .map(|i| {
            let mut c = server.connect();
            c.send(&post("/run", format!("held {i}").as_bytes()));
            assert_eq!(c.read_response().status, 200);
            c
        })
        .collect();
    let refused = server.request(&post("/run", b"third"));
    assert_eq!(refused.status, 503, "the data port is full");
    let admin = server.admin.expect("admin");
    let mut admins: Vec<Client> = (0..3).map(|_| Client::connect(admin)).collect();
    for c in &mut admins {
        c.send(METRICS);
        assert_eq!(c.read_response().status, 200);
    }
    let metrics = server.metrics();
    assert_eq!(
        metric_in(&metrics, "httpd_runner_connections_refused_total", ""),
        1
    );
    held.clear();
    // The shutdown needs an admin connection: until the handler has seen these four close
    // (the scrape's too), the listener refuses it with 503, and it is asked again.
    drop(admins);
    for _ in 0..100 {
        let mut c = Client::connect(admin);
        c.send(b"POST /shutdown HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        match c.read_response().status {
            200 => break,
            503 => std::thread::sleep(std::time::Duration::from_millis(20)),
            s => panic!("shutdown answered {s}"),
        }
    }
    let status = server
        .wait_exit(TIMEOUT)
        .expect("exit after POST /shutdown");
    assert!(status.success());
}

/// Behind a reverse proxy on the same host every client is loopback: a request carrying a
/// proxy's fields is not trusted as local, so without a token `/shutdown` refuses it.
#[test]
fn a_proxied_loopback_request_cannot_shut_down() {
    let _g = serial();
    let mut server = Server::start(&[]);
    for field in [
        "X-Forwarded-For: 203.0.113.7",
        "Forwarded: for=203.0.113.7",
        "X-Real-IP: 203.0.113.7",
        "Via: 1.1 proxy",
    ] {
        let r = server.request(
            format!("POST /shutdown HTTP/1.1\r\nHost: t\r\n{field}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 403, "{field}");
    }
    let r = server.request(SHUTDOWN);
    assert_eq!(r.status, 200, "a direct loopback peer still may");
    assert!(server
        .wait_exit(Duration::from_secs(5))
        .expect("exit")
        .success());
}

/// One request over a Unix socket (`Connection: close`): the status and the body.
fn over_unix(path: &std::path::Path, raw: &[u8]) -> (u16, Vec<u8>) {
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| out[i + 4..].to_vec());
    (status, body)
}

/// `--listen unix:PATH`: requests over the socket are served like TCP ones, a peer on the
/// socket counts as local for `/shutdown`, and the file goes when the server stops. A stale
/// file left behind is replaced.
#[test]
fn a_unix_socket_serves_and_its_file_goes_at_exit() {
    let _g = serial();
    let dir = std::env::temp_dir().join(format!("hr-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    // A stale socket file, as a killed server leaves.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listen = format!("unix:{}", path.display());
    let mut server = Server::start_at(&listen, &[]);
    assert!(server.log().contains(&format!("listening on {listen}")));
    let raw =
        b"POST /run/k HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\nunix";
    assert_eq!(over_unix(&path, raw), (200, b"unix".to_vec()));
    let (status, body) = over_unix(
        &path,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        metric_in(
            &String::from_utf8_lossy(&body),
            "httpd_runner_requests_total",
            "route=\"run\""
        ) >= 1
    );
    assert_eq!(over_unix(&path, SHUTDOWN).0, 200, "a Unix peer is local");
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
    assert!(!path.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dual stack: an IPv6 listener that takes IPv4 clients (here bound to the IPv4-mapped
/// loopback, so the test stays on loopback) serves an IPv4 client, whose address it sees as
/// `::ffff:127.0.0.1`, which counts as loopback for `/shutdown`.
#[test]
fn an_ipv4_client_of_an_ipv6_listener_is_served_and_counts_as_loopback() {
    let _g = serial();
    let mut server = Server::start_at("[::ffff:127.0.0.1]:0", &[]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    let v4: SocketAddr = ([127, 0, 0, 1], server.addr.port()).into();
    let mut c = Client::connect(v4);
    c.send(&post("/run", b"mapped"));
    let r = c.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"mapped"[..]));
    assert_eq!(ask(v4, SHUTDOWN), 200, "::ffff:127.0.0.1 is loopback");
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
}

/// The listen queue asked for is cut by the kernel's `somaxconn`, and the banner says so;
/// the server listens on IPv6 loopback too.
#[test]
fn a_backlog_over_somaxconn_is_noted_and_ipv6_loopback_serves() {
    let _g = serial();
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX);
    let mut server = Server::start(&["--backlog", "65535"]);
    assert_eq!(
        server.log().contains("is cut to"),
        somaxconn < 65535,
        "somaxconn {somaxconn}: {}",
        server.log()
    );
    assert_eq!(server.shutdown().0.code(), Some(0));
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped the IPv6 part: this machine has no ::1");
        return;
    }
    let mut v6 = Server::start_at("[::1]:0", &[]);
    assert!(v6.addr.is_ipv6());
    let r = v6.request(b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nv6");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v6"[..]));
    assert!(v6.shutdown().0.success());
}

/// Outcomes of one-request connections made in a loop.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    refused: u64,
    reset: u64,
    /// Closed with no response: accepted just before the shutdown, the request not yet read.
    closed: u64,
    other: u64,
    /// What the last `other` was.
    what: String,
}

/// One `POST /run` on a new connection, sorted into `t`.
fn one_shot(addr: SocketAddr, t: &mut Tally) {
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            t.refused += 1;
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            t.reset += 1;
            return;
        }
        Err(e) => {
            t.other += 1;
            t.what = e.to_string();
            return;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let raw = b"POST /run HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
    let mut out = Vec::new();
    let result = s.write_all(raw).and_then(|()| s.read_to_end(&mut out));
    match result {
        Ok(_) if out.starts_with(b"HTTP/1.1 200") && out.ends_with(b"x") => t.ok += 1,
        Ok(0) => t.closed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => t.reset += 1,
        Err(e) => {
            t.other += 1;
            t.what = e.to_string();
        }
        Ok(_) => {
            t.other += 1;
            t.what = String::from_utf8_lossy(&out).into_owned();
        }
    }
}

/// `--reuse-port`: a second process binds the port the first holds, both serve, and the first
/// stops gracefully (SIGTERM, after a drain) while a client keeps connecting: no connection is
/// refused and the second takes every connection after. The second runs two runners, so its
/// `/metrics` names a `runner="1"` and tells the two apart.
///
/// A connection the kernel had queued at the stopping process when it closed its socket is
/// reset unless `net.ipv4.tcp_migrate_req` is 1 (then the kernel moves it to the other
/// process): with it on, no connection may fail at all.
#[test]
fn a_reuse_port_instance_is_replaced_without_a_refused_connection() {
    let _g = serial();
    let mut first = Server::start(&[
        "--reuse-port",
        "--runners",
        "1",
        "--no-pin",
        "--drain-delay",
        "300ms",
    ]);
    let at = first.addr.to_string();
    let mut second = Server::start_at(&at, &["--reuse-port", "--runners", "2", "--no-pin"]);
    assert_eq!(second.addr, first.addr);
    let from_second = |s: &Server| s.metrics().contains("runner=\"1\"");
    let seen: std::collections::BTreeSet<bool> = (0..64).map(|_| from_second(&first)).collect();
    assert_eq!(
        seen.len(),
        2,
        "both processes accept connections on the port"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let addr = first.addr;
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut t = Tally::default();
                while !stop.load(Ordering::Relaxed) {
                    one_shot(addr, &mut t);
                }
                t
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    first.signal("TERM");
    assert!(first
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut t = Tally::default();
    for c in clients {
        let one = c.join().unwrap();
        t.ok += one.ok;
        t.refused += one.refused;
        t.reset += one.reset;
        t.closed += one.closed;
        t.other += one.other;
        if !one.what.is_empty() {
            t.what = one.what;
        }
    }
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .is_ok_and(|s| s.trim() == "1");
    eprintln!("hand-over: {t:?}, tcp_migrate_req on: {migrate}");
    assert!(t.ok > 100, "{t:?}");
    assert_eq!(t.refused, 0, "no connection is refused: {t:?}");
    assert_eq!(t.other, 0, "{t:?}");
    if migrate {
        assert_eq!(
            t.reset, 0,
            "queued connections move to the other process: {t:?}"
        );
    } else if t.reset > 0 {
        eprintln!(
            "{} connection(s) queued at the stopping process were reset: set \
             net.ipv4.tcp_migrate_req=1 to have the kernel move them",
            t.reset
        );
    }
    // A connection accepted just before the listener closed, whose request had not arrived
    // yet, is kept for it (`FIRST_REQUEST_GRACE_MS`) and answered, not closed unanswered.
    assert_eq!(t.closed, 0, "{t:?}");
    for _ in 0..32 {
        assert!(
            from_second(&second),
            "the other instance takes every connection"
        );
    }
    second.signal("TERM");
    assert!(second
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
}

/// With a hard open-file limit below what the connection limit needs, the server refuses to
/// start, naming both numbers (exit 2). Below the need but within the hard limit, it raises
/// its own soft limit and starts.
#[test]
fn an_open_file_limit_below_the_need_is_refused_at_startup() {
    let _g = serial();
    let needs = open_files_needed(1024, 1);
    let run = |limits: &str, args: &str| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{limits} && exec \"$0\" --listen 127.0.0.1:0 --no-pin {args} & pid=$!; \
                 sleep 1; kill $pid 2>/dev/null; wait $pid"
            ))
            .arg(server_binary())
            .output()
            .expect("bash")
    };
    let out = run("ulimit -n 256", "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--max-connections 1024")
            && err.contains(&format!("needs {needs} open files"))
            && err.contains("is 256"),
        "{err}"
    );
    // A soft limit of 256 under a hard one that covers the need: raised, and the server
    // starts. (A hard limit can only be lowered without privilege: keep the one there is.)
    let hard = std::process::Command::new("bash")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("bash");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    let covers = hard == "unlimited" || hard.parse::<u64>().is_ok_and(|h| h >= needs);
    assert!(
        covers,
        "this test needs a hard open-file limit of at least {needs}, not {hard}"
    );
    let out = run("ulimit -Sn 256", "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("startup complete"), "{err}");
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime), counted from the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn set_open_file_limit(pid: u32, soft: usize) {
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={soft}:"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(ok.success());
}

/// Out of descriptors, the listener pauses accepting instead of spinning, counts each failed
/// accept by kind and reports at most once a second; once a descriptor is free it accepts
/// again.
#[test]
fn accept_errors_pause_are_counted_and_reported_without_spinning() {
    let _g = serial();
    let server = Server::start(&["--max-connections", "64", "--no-pin", "--runners", "1"]);
    let pid = server.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    set_open_file_limit(pid, open + 2);
    // The kernel completes these connections; the server can take two, then none.
    let clients: Vec<TcpStream> = (0..12)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let used = cpu_ticks(pid) - before;
    let window = started.elapsed();
    // A listener retrying at once would use about the whole window (150 ticks).
    assert!(
        used < 40,
        "{used} ticks of CPU in {window:?} out of descriptors"
    );
    drop(clients);
    set_open_file_limit(pid, 1024);
    let metrics = server.metrics();
    let emfile = metric_in(
        &metrics,
        "httpd_runner_accept_errors_total",
        "kind=\"emfile\"",
    );
    assert!(emfile >= 2, "{emfile} failed accepts counted");
    let reports = server.log().matches("accept failed: emfile").count();
    let most = window.as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&reports),
        "{reports} reports in {window:?} for {emfile} errors:\n{}",
        server.log()
    );
    let r = server.request(&post("/run", b"again"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"again"[..]));
}

/// `--drain-delay`: after SIGTERM, `/health` answers 503 while requests are still served and
/// `draining` is 1; then the graceful shutdown runs and the process exits 0.
#[test]
fn a_drain_fails_health_while_serving_then_stops() {
    let _g = serial();
    let mut server = Server::start(&["--drain-delay", "1500ms", "--admin-listen", "127.0.0.1:0"]);
    let health = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(ask(server.addr, health), 200);
    let mut kept = server.connect();
    kept.send(&post("/run", b"before"));
    assert_eq!(kept.read_response().status, 200);
    let sent = Instant::now();
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    let admin = server.admin.expect("admin");
    assert_eq!(ask(server.addr, health), 503);
    assert_eq!(ask(admin, health), 503);
    assert_eq!(server.metric("httpd_runner_draining", ""), 1);
    kept.send(&post("/run", b"during"));
    let r = kept.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"during"[..]));
    assert_eq!(
        ask(server.addr, &post("/run", b"new")),
        200,
        "new connections too"
    );
    let status = server.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "the drain lasted {:?}",
        sent.elapsed()
    );
}

/// SIGHUP does not stop the server (it says so on stderr); SIGQUIT stops it at once, even
/// with a request in a runner for seconds more, with status 131.
#[test]
fn sighup_is_ignored_and_sigquit_stops_at_once() {
    let _g = serial();
    let mut server = Server::start(&["--runner", "delay=8000", "--no-pin"]);
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.log().contains("SIGHUP ignored"), "{}", server.log());
    assert_eq!(
        ask(server.addr, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"),
        200,
        "still serving after SIGHUP"
    );
    let mut slow = server.connect();
    slow.send(&post("/run", b"slow"));
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    server.signal("QUIT");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exited");
    assert_eq!(status.code(), Some(131), "{status:?}");
    assert!(sent.elapsed() < Duration::from_secs(5));
}
