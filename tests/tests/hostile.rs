//! Hostile and careless clients: peers that vanish mid-request, partial heads that wait,
//! clients that never read, overload, shutdown with work in flight, options that cannot fit,
//! refusals of `HEAD`, and framing fields in disguise. Each test runs the real binary on
//! loopback and stops it by PID; durations are printed, and time limits are nets only.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use httpd_runner_tests::{body_of, post, serial, server_binary, Client, Server, TIMEOUT};

/// Closes with a reset (RST) instead of a FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(stream);
}

fn open_connections(server: &Server) -> u64 {
    server.metric("httpd_runner_connections_open", "")
}

/// Polls `f` every 10 ms until it holds or `limit` passes; returns how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `GET /health` on a new connection, with a short read timeout: `Some(status)` or `None`
/// when nothing came back in time.
fn health_within(server: &Server, limit: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(server.addr).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// The states a request can be in when its peer goes away, as the bytes sent before.
const PARTIAL_REQUESTS: [(&str, &[u8]); 4] = [
    ("head", b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Le"),
    (
        "body",
        b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
    ),
    (
        "half a body",
        b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
    ),
    (
        "chunked body",
        b"POST /run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ),
];

/// 128 clients (as many as a handler has slots) each send part of a request and close, by
/// FIN or by RST: `/health` still answers at once and every connection is gone within a
/// second. Before the fix, a closed body kept its slot forever and the server went silent.
#[test]
fn peers_that_close_mid_request_free_their_slots_at_once() {
    let _serial = serial();
    let server = Server::start(&[]);
    let baseline = open_connections(&server);
    for (state, bytes) in PARTIAL_REQUESTS {
        for rst in [false, true] {
            let mut clients = Vec::new();
            for _ in 0..128 {
                let mut s = TcpStream::connect(server.addr).expect("connect");
                s.write_all(bytes).expect("send");
                clients.push(s);
            }
            // Let the server read every head before the peers go.
            std::thread::sleep(Duration::from_millis(100));
            for s in clients {
                if rst {
                    reset(s);
                } else {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            let how = if rst { "RST" } else { "FIN" };
            assert_eq!(
                health_within(&server, Duration::from_secs(2)),
                Some(200),
                "/health after 128 peers closed ({how}) in state {state}"
            );
            let took = within(Duration::from_secs(3), || {
                open_connections(&server) <= baseline
            });
            let took = took.unwrap_or_else(|| {
                panic!(
                    "{} connections still open 3 s after 128 peers closed ({how}) in state {state} (baseline {baseline})",
                    open_connections(&server)
                )
            });
            println!("{state}, {how}: back to {baseline} open in {took:?}");
        }
    }
}

/// A peer that resets while its request is at the runner, or while its response waits
/// unread, frees its connection at once; its answer is dropped when the runner hands it back.
#[test]
fn peers_that_reset_while_waiting_or_unread_free_their_connection_at_once() {
    let _serial = serial();
    // 512 slots: 64 large ones, one for each 64 KiB request the unread connections send
    // (with fewer, some wait for a large slot and are shed instead of being written to).
    let server = Server::start(&["--runner", "delay=0", "--slots", "512"]);
    let baseline = open_connections(&server);
    // Waiting for a runner (2 s of work).
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET /run HTTP/1.1\r\nHost: x\r\nX-Delay-Ms: 2000\r\n\r\n")
            .unwrap();
        waiting.push(s);
    }
    // Writing: pipelined large responses the client never reads.
    let mut unread = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        let one = post("/run", &body_of(64 * 1024));
        for _ in 0..16 {
            if s.write_all(&one).is_err() {
                break;
            }
        }
        unread.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(open_connections(&server) >= baseline + 8);
    for s in waiting.into_iter().chain(unread) {
        reset(s);
    }
    let took = within(Duration::from_millis(1500), || {
        open_connections(&server) <= baseline
    })
    .unwrap_or_else(|| {
        panic!(
            "{} open after the resets (baseline {baseline})",
            open_connections(&server)
        )
    });
    println!("resets while waiting or unread: back to {baseline} open in {took:?}");
    assert!(server.metric("httpd_runner_connections_reset_total", "") >= 8);
    // The runner's late answers are dropped and the server still serves. (The runner still
    // runs the jobs of connections that are gone: four of 2 s each, one after the other.)
    assert!(
        within(Duration::from_secs(15), || {
            server.metric("httpd_runner_runner_queue_depth", "") == 0
        })
        .is_some(),
        "the runner queue never drained"
    );
    assert_eq!(
        server.request(&post("/run", b"still here")).body,
        b"still here"
    );
}

/// Half a body, then FIN: the connection leaves `connections_open` at once (before the fix
/// it stayed past every timeout).
#[test]
fn half_sent_bodies_closed_by_fin_leave_no_connection_behind() {
    let _serial = serial();
    let server = Server::start(&[]);
    let baseline = open_connections(&server);
    let mut clients = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf")
            .unwrap();
        clients.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    for s in &clients {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let took = within(Duration::from_secs(1), || {
        open_connections(&server) <= baseline
    });
    assert!(
        took.is_some(),
        "{} open a second after FIN (baseline {baseline})",
        open_connections(&server)
    );
    println!(
        "32 half bodies, FIN: back to baseline in {:?}",
        took.unwrap()
    );
    // Each peer sees the connection closed without a response (nothing could be answered).
    for mut s in clients {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
}

/// CPU time (user + system, in clock ticks) of the server's thread named `name`.
fn thread_ticks(pid: u32, name: &str) -> u64 {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = entry.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    panic!("no thread named {name} in process {pid}");
}

/// A head that stops partway (one byte, or all but its last CRLF) leaves the handler asleep
/// in the poller: over two seconds it uses under 5 % of a core (before the fix, 100 %).
#[test]
fn a_partial_head_costs_the_handler_no_cpu() {
    let _serial = serial();
    let server = Server::start(&[]);
    let ticks_per_s = 100; // USER_HZ on Linux
    for partial in [&b"G"[..], b"GET /health HTTP/1.1\r\nHost: x\r\n"] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(partial).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let before = thread_ticks(server.pid(), "handler-0");
        let window = Duration::from_secs(2);
        std::thread::sleep(window);
        let used = thread_ticks(server.pid(), "handler-0") - before;
        let percent = used as f64 * 100.0 / (ticks_per_s as f64 * window.as_secs_f64());
        println!(
            "partial head {:?}: handler used {percent:.1} % of a core",
            String::from_utf8_lossy(partial)
        );
        assert!(
            percent < 5.0,
            "handler busy at {percent:.1} % with a partial head"
        );
        // The rest of the head still completes the request.
        let rest: &[u8] = if partial.len() == 1 {
            b"ET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        } else {
            b"\r\n"
        };
        s.write_all(rest).unwrap();
        let mut c = Client::from_stream(s);
        assert_eq!(c.read_response().status, 200);
    }
}

/// Ten connections pipeline POSTs of 64 KiB until the server takes no more, and never read
/// them: a well-behaved client is then served, or refused with 503 and `Retry-After`, at
/// once (before the fix it got nothing at all).
#[test]
fn clients_that_never_read_do_not_starve_others() {
    let _serial = serial();
    let server = Server::start(&[]);
    let one = post("/run", &body_of(64 * 1024));
    let mut hogs = Vec::new();
    for _ in 0..10 {
        let s = TcpStream::connect(server.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        hogs.push(s);
    }
    // Each hog pipelines requests until the server takes no more (at most 512 of them,
    // 32 MiB): its unread responses fill the socket buffers on both sides, and the slots
    // holding the rest of its answers can never be written.
    let sent: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = hogs
            .iter_mut()
            .map(|s| {
                let one = &one;
                scope.spawn(move || (0..512).take_while(|_| s.write_all(one).is_ok()).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("10 hogs pipelined {sent} requests of 64 KiB before the server stopped taking them");
    std::thread::sleep(Duration::from_millis(200));
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        let mut c = Client::connect(server.addr);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let start = Instant::now();
        c.send(&post("/run", format!("probe {i}").as_bytes()));
        let r = c
            .try_read_response()
            .unwrap_or_else(|n| panic!("probe {i}: closed after {n} bytes and no response"));
        let took = start.elapsed();
        worst = worst.max(took);
        match r.status {
            200 => assert_eq!(r.body, format!("probe {i}").as_bytes()),
            503 => assert_eq!(r.header("retry-after"), Some("1")),
            s => panic!("probe {i}: status {s}"),
        }
    }
    println!("10 clients that never read: worst probe answered in {worst:?}");
    assert!(worst < Duration::from_secs(2), "a probe waited {worst:?}");
    drop(hogs);
}

/// Overload with default options: a 5 ms runner and 256 connections. Every request gets 200
/// or 503 with `Retry-After`, and shedding keeps the answered requests' queue short: without
/// it, each would wait behind the other 255 (256 x 5 ms = 1.28 s). The bound itself (50 ms by
/// default) is a pure decision tested with explicit time in `core::admit`; here the latency is
/// measured by 256 client threads sharing the server's cores, so only the median is held, to
/// half of the unshed wait, and the tail is a net against a hang.
#[test]
fn overload_sheds_with_503_and_keeps_latency_bounded() {
    let _serial = serial();
    let server = Server::start(&["--runner", "delay=5"]);
    let addr = server.addr;
    let until = Instant::now() + Duration::from_secs(3);
    let results: Vec<(Vec<Duration>, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..256)
            .map(|_| {
                scope.spawn(move || {
                    let mut ok = Vec::new();
                    let mut shed = 0;
                    let mut other = 0;
                    let mut c = Client::connect(addr);
                    while Instant::now() < until {
                        let start = Instant::now();
                        c.send(b"GET /run HTTP/1.1\r\nHost: x\r\n\r\n");
                        match c.try_read_response() {
                            Ok(r) if r.status == 200 => ok.push(start.elapsed()),
                            Ok(r) if r.status == 503 => {
                                assert_eq!(r.header("retry-after"), Some("1"));
                                shed += 1;
                                // A client that backs off a little (not the whole second it
                                // is told): 256 threads retrying at once would measure this
                                // machine's two cores, not the server.
                                std::thread::sleep(Duration::from_millis(20));
                                if r.header("connection") == Some("close") {
                                    c = Client::connect(addr);
                                }
                            }
                            Ok(_) | Err(_) => {
                                other += 1;
                                c = Client::connect(addr);
                            }
                        }
                    }
                    (ok, shed, other)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.0.clone()).collect();
    let shed: usize = results.iter().map(|r| r.1).sum();
    let other: usize = results.iter().map(|r| r.2).sum();
    latencies.sort();
    assert!(!latencies.is_empty(), "nothing answered");
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "delay=5, 256 connections: {} answered (p50 {:?}, p99 {:?}), {shed} shed with 503, {other} other",
        latencies.len(),
        p(0.5),
        p(0.99)
    );
    assert!(shed > 0, "overload shed nothing");
    assert_eq!(other, 0, "every request is answered 200 or 503");
    let unshed = Duration::from_millis(5) * 256;
    assert!(
        p(0.5) < unshed / 2,
        "p50 {:?}: the queue was not shed",
        p(0.5)
    );
    assert!(p(0.99) < Duration::from_secs(5), "p99 {:?}", p(0.99));
}

/// SIGTERM with 32 requests in flight at a slow runner stops within the shutdown timeout
/// plus a small margin, even with a runner inside a 60 s call; idle keep-alive connections
/// are closed at once, not lingered over.
#[test]
fn shutdown_keeps_its_timeout_whatever_runners_do() {
    let _serial = serial();
    let mut server = Server::start(&["--runner", "delay=300", "--shutdown-timeout", "1s"]);
    let mut busy = Vec::new();
    for i in 0..32 {
        let mut c = server.connect();
        let extra = if i == 0 { "X-Delay-Ms: 60000\r\n" } else { "" };
        c.send(format!("GET /run HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
        busy.push(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(TIMEOUT).expect("exit");
    let took = start.elapsed();
    println!("SIGTERM, 32 in flight at a 300 ms runner, timeout 1 s: exited in {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");

    let mut server = Server::start(&[]);
    let idle: Vec<Client> = (0..500).map(|_| server.connect()).collect();
    let mut one = server.connect();
    one.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(one.read_response().status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(TIMEOUT).expect("exit");
    let took = start.elapsed();
    println!("SIGTERM with 500 idle connections: exited in {took:?}");
    assert!(status.success());
    // Lingering over them would take the 5 s shutdown timeout; half of it is the net.
    let linger = Duration::from_millis(httpd_runner::core::limits::DEFAULT_SHUTDOWN_TIMEOUT_MS);
    assert!(took < linger / 2, "took {took:?}");
    drop(idle);
}

/// Options whose memory cannot be had are refused before anything is reserved: exit 2 and a
/// message naming the options and the bytes, never an abort. Negative numbers name their
/// option.
#[test]
fn startup_refuses_what_cannot_fit_and_names_the_option() {
    let bin = server_binary();
    let run = |shell: String| {
        let out = Command::new("sh")
            .args(["-c", &shell])
            .stdin(Stdio::null())
            .output()
            .expect("sh");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(format!(
        "ulimit -v 1000000; exec {} --listen 127.0.0.1:0 --max-connections 1000000",
        bin.display()
    ));
    println!("{err}");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--max-connections") && err.contains("bytes"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for (option, value) in [("--runners", "-2"), ("--slots", "-1"), ("--handlers", "-3")] {
        let out = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", option, value])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {err}");
        assert!(err.contains(option), "{option} {value}: {err}");
    }
}

/// Every refusal of a `HEAD` request is a head alone: the connection closes right after it,
/// with no body a client would read as the next response.
#[test]
fn refused_head_requests_get_no_body() {
    let server = Server::start(&["--max-body-bytes", "100"]);
    let long = format!("HEAD /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let big = format!(
        "HEAD / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17_000)
    );
    let cases: [(&str, &[u8], u16); 7] = [
        ("400", b"HEAD / HTTP/1.1\r\n\r\n", 400),
        (
            "413",
            b"HEAD /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nsome",
            413,
        ),
        ("414", long.as_bytes(), 414),
        (
            "417",
            b"HEAD / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n",
            417,
        ),
        ("431", big.as_bytes(), 431),
        (
            "501",
            b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        ("505", b"HEAD / HTTP/2.5\r\nHost: x\r\n\r\n", 505),
    ];
    for (name, wire, status) in cases {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let _ = s.write_all(wire);
        let _ = s.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        let end = text
            .find("\r\n\r\n")
            .unwrap_or_else(|| panic!("{name}: {text:?}"))
            + 4;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {text:?}"
        );
        assert_eq!(
            &text[end..],
            "",
            "{name}: a body after the head of a HEAD refusal"
        );
    }
}

/// `Content_Length` and `Transfer_Encoding` are refused with 400 and the connection closed:
/// what follows them is never read as another request.
#[test]
fn framing_fields_in_disguise_are_refused_and_close() {
    let server = Server::start(&[]);
    for name in ["Content_Length", "Transfer_Encoding", "content.length"] {
        let value = if name.starts_with('T') {
            "chunked"
        } else {
            "40"
        };
        let mut c = server.connect();
        let smuggled = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        c.send(
            format!("POST /run HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\n\r\n{smuggled}")
                .as_bytes(),
        );
        let r = c.read_response();
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        assert!(
            c.is_closed_by_server(),
            "{name}: the smuggled request was answered"
        );
    }
    assert!(
        server.metric(
            "httpd_runner_parse_errors_total",
            "kind=\"ambiguous_framing_field\""
        ) >= 3
    );
}

/// Random clients (a seeded mix of partial writes, pauses, FIN and RST at any point of a
/// request, and whole requests) against the real server: afterwards `/health` answers at
/// once and `connections_open` is back at its baseline. The connection logic lives in the
/// handler, which the fuzz targets do not reach; this drives it through sockets.
#[test]
fn random_partial_writes_pauses_fin_and_rst_leave_nothing_behind() {
    let _serial = serial();
    let server = Server::start(&["--runner", "delay=0"]);
    let baseline = open_connections(&server);
    let addr = server.addr;
    let seed: u64 = std::env::var("HTTPD_RUNNER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let wires: [Vec<u8>; 5] = [
        post("/run", &body_of(3000)),
        b"GET /run HTTP/1.1\r\nHost: x\r\nX-Delay-Ms: 20\r\n\r\n".to_vec(),
        b"POST /run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
            .to_vec(),
        post("/run", &body_of(70_000)),
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    let stats: Vec<[usize; 3]> = std::thread::scope(|scope| {
        (0..8u64)
            .map(|t| {
                let wires = &wires;
                scope.spawn(move || {
                    let mut x = seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut next = move |n: u64| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x % n
                    };
                    let mut counts = [0usize; 3]; // FIN, RST, whole
                    for _ in 0..40 {
                        let wire = &wires[next(wires.len() as u64) as usize];
                        let mut s = TcpStream::connect(addr).unwrap();
                        s.set_nodelay(true).unwrap();
                        let cut = next(wire.len() as u64 + 1) as usize;
                        let mut at = 0;
                        while at < cut {
                            let piece = (1 + next(2000) as usize).min(cut - at);
                            if s.write_all(&wire[at..at + piece]).is_err() {
                                break;
                            }
                            at += piece;
                            if next(4) == 0 {
                                std::thread::sleep(Duration::from_millis(next(15)));
                            }
                        }
                        match next(3) {
                            0 => {
                                let _ = s.shutdown(Shutdown::Write);
                                s.set_read_timeout(Some(Duration::from_millis(100)))
                                    .unwrap();
                                let mut sink = Vec::new();
                                let _ = s.read_to_end(&mut sink);
                                counts[0] += 1;
                            }
                            1 => {
                                reset(s);
                                counts[1] += 1;
                            }
                            _ => {
                                let _ = s.write_all(&wire[cut..]);
                                let mut c = Client::from_stream(s);
                                assert!(
                                    c.try_read_response().is_ok(),
                                    "a whole request went unanswered"
                                );
                                counts[2] += 1;
                            }
                        }
                    }
                    counts
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    let sum = |i: usize| stats.iter().map(|c| c[i]).sum::<usize>();
    println!(
        "seed {seed}: {} FIN, {} RST, {} whole",
        sum(0),
        sum(1),
        sum(2)
    );
    assert_eq!(health_within(&server, Duration::from_secs(1)), Some(200));
    let took = within(Duration::from_secs(3), || {
        open_connections(&server) <= baseline
    });
    assert!(
        took.is_some(),
        "{} connections open (baseline {baseline})",
        open_connections(&server)
    );
}
