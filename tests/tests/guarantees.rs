//! The server's promises as measurements: zero heap allocations after startup under a mixed
//! workload through every path, resident memory that does not grow, and a shutdown under load
//! that loses or truncates nothing.

use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use httpd_runner_tests::{
    binary_baseline_rss, body_of, metric_in, post, reserved_from_banner, rss_bytes, serial, Client,
    Server,
};

/// Server options for the mixed workload: short timeouts so they fire, the delay runner so
/// requests can ask for slow service, and runner queues (2 x 32) above what the ordinary
/// clients keep in flight (about 50) but below the 128 request slots, so only the deliberate
/// burst in `shedding` is shed.
const MIXED_ARGS: &[&str] = &[
    "--runner",
    "delay=0",
    "--runners",
    "2",
    "--ring-capacity",
    "32",
    "--header-timeout",
    "1s",
    "--body-timeout",
    "1s",
    "--idle-timeout",
    "2s",
];

const SIZES: [usize; 6] = [0, 1, 100, 1024, 16 * 1024, 100 * 1024];

fn echo_keep_alive(addr: SocketAddr, n: usize) -> usize {
    let mut c = Client::connect(addr);
    for i in 0..n {
        let body = body_of(SIZES[i % SIZES.len()]);
        c.send(&post("/run", &body));
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert!(r.body == body);
    }
    n
}

/// Pipelined batches of 16; a full runner queue may shed some (503), the rest echo.
fn pipelined(addr: SocketAddr, batches: usize) -> (usize, usize) {
    let mut c = Client::connect(addr);
    let mut shed = 0;
    for b in 0..batches {
        let mut raw = Vec::new();
        for i in 0..16 {
            raw.extend_from_slice(&post("/run", format!("{b}.{i}").as_bytes()));
        }
        c.send(&raw);
        for i in 0..16 {
            let r = c.read_response();
            match r.status {
                200 => assert_eq!(r.body, format!("{b}.{i}").as_bytes()),
                503 => shed += 1,
                s => panic!("pipelined status {s}"),
            }
        }
    }
    (batches * 16, shed)
}

fn framing_paths(addr: SocketAddr, n: usize) -> usize {
    let mut c = Client::connect(addr);
    for i in 0..n {
        let part = format!("chunk{i}");
        c.send(format!("POST /run HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{part}\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n", part.len()).as_bytes());
        assert_eq!(c.read_response().body, format!("{part}abc").as_bytes());
        c.send(
            b"POST /run HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        );
        assert_eq!(c.read_response().status, 100);
        c.send(b"body");
        assert_eq!(c.read_response().body, b"body");
        c.send(b"HEAD /run HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(c.read_head_response().status, 200);
        c.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
        if i % 50 == 0 {
            c.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(c.read_response().status, 200);
        }
    }
    n * 4 + n / 50
}

fn churn_and_errors(addr: SocketAddr, rounds: usize) -> usize {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let big_head = format!(
        "GET /run HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "b".repeat(17000)
    );
    let errors: Vec<(Vec<u8>, u16)> = vec![
        (b"GET /run HTTP/1.1\r\n\r\n".to_vec(), 400),
        (long_target.into_bytes(), 414),
        (big_head.into_bytes(), 431),
        (b"POST /run HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n".to_vec(), 413),
        (b"POST /run HTTP/1.1\r\nHost: t\r\nExpect: nope\r\n\r\n".to_vec(), 417),
        (b"POST /run HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        (b"GET /run HTTP/3.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (b"POST /run HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
    ];
    let mut count = 0;
    for round in 0..rounds {
        // Connection churn: one request per connection.
        let mut c = Client::connect(addr);
        c.send(b"GET /run HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
        count += 1;
        if round % 5 == 0 {
            for (raw, status) in &errors {
                let mut c = Client::connect(addr);
                c.send(raw);
                assert_eq!(c.read_response().status, *status);
                count += 1;
            }
            let mut c = Client::connect(addr);
            for (raw, status) in [
                (&b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"[..], 404),
                (b"PUT /health HTTP/1.1\r\nHost: t\r\n\r\n", 405),
                (b"BREW /run HTTP/1.1\r\nHost: t\r\n\r\n", 501),
                (b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 200),
            ] {
                c.send(raw);
                assert_eq!(c.read_response().status, status);
                count += 1;
            }
        }
    }
    count
}

/// Requests that ask the runners for slow service, many at once: some must be shed.
fn shedding(addr: SocketAddr) -> usize {
    let clients: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut raw = Vec::new();
                for _ in 0..16 {
                    raw.extend_from_slice(
                        b"GET /run HTTP/1.1\r\nHost: t\r\nX-Delay-Ms: 10\r\n\r\n",
                    );
                }
                c.send(&raw);
                (0..16)
                    .map(|_| c.read_response().status)
                    .filter(|&s| s == 503)
                    .count()
            })
        })
        .collect();
    let shed: usize = clients.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(shed > 0, "no request was shed");
    160
}

/// Connections that stall in the head, in the body, or idle: all time out.
fn timeouts(addr: SocketAddr) -> usize {
    let mut head: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
    let mut body: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
    let mut idle: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
    for c in &mut head {
        c.send(b"GET /run HTTP/1.1\r\nHo");
    }
    for c in &mut body {
        c.send(b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\nabc");
    }
    for c in &mut idle {
        c.send(b"GET /run HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
    }
    for c in head.iter_mut().chain(&mut body) {
        assert_eq!(c.read_response().status, 408);
    }
    for c in &mut idle {
        assert!(c.is_closed_by_server());
    }
    30
}

/// At least 20,000 requests through every path, several clients at once.
fn mixed_workload(addr: SocketAddr) -> usize {
    let workers = vec![
        thread::spawn(move || echo_keep_alive(addr, 3000)),
        thread::spawn(move || pipelined(addr, 250).0),
        thread::spawn(move || pipelined(addr, 250).0),
        thread::spawn(move || pipelined(addr, 250).0),
        thread::spawn(move || framing_paths(addr, 600)),
        thread::spawn(move || churn_and_errors(addr, 1000)),
        thread::spawn(move || timeouts(addr)),
    ];
    let mut total: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    total += shedding(addr);
    total
}

#[test]
fn zero_allocations_after_startup_under_a_mixed_workload() {
    let _g = serial();
    let server = Server::start(MIXED_ARGS);
    let sent = mixed_workload(server.addr);
    let m = server.metrics();
    let answered = metric_in(&m, "httpd_runner_requests_total", "");
    let allocations = metric_in(&m, "httpd_runner_allocations_after_startup_total", "");
    let reallocations = metric_in(&m, "httpd_runner_reallocations_after_startup_total", "");
    eprintln!("mixed workload: {sent} requests sent, {answered} answered, {allocations} allocations and {reallocations} reallocations after startup");
    assert_eq!(
        metric_in(&m, "httpd_runner_allocator_counting", ""),
        1,
        "the counting allocator is installed"
    );
    assert!(
        sent >= 20_000 && answered >= 20_000,
        "{sent} sent, {answered} answered"
    );
    for (label, name) in [
        ("shed", "httpd_runner_shed_total"),
        ("408", "httpd_runner_timeouts_total"),
    ] {
        assert!(metric_in(&m, name, "") > 0, "{label} path not exercised");
    }
    assert_eq!(allocations, 0, "heap allocations after startup");
    assert_eq!(reallocations, 0, "heap reallocations after startup");
}

#[test]
fn resident_memory_stays_flat_and_within_the_reservation() {
    let _g = serial();
    let server = Server::start(MIXED_ARGS);
    let pid = server.pid();
    // Reserved memory is pre-faulted at startup, so this already includes it.
    let at_start = rss_bytes(pid);
    let reserved = reserved_from_banner(&server.log());
    mixed_workload(server.addr);
    let warm = rss_bytes(pid);
    // 100,000 more requests: pipelined small ones and keep-alive ones up to the body limit.
    let addr = server.addr;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                if w == 0 {
                    echo_keep_alive(addr, 4000)
                } else {
                    pipelined(addr, 2000).0
                }
            })
        })
        .collect();
    let more: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let after = rss_bytes(pid);
    let growth = after as i64 - warm as i64;
    eprintln!(
        "memory: at start {at_start} B, after warm-up {warm} B, after {more} more requests {after} B (growth {growth} B); reserved {reserved} B"
    );
    assert!(more >= 100_000);
    assert!(
        growth.unsigned_abs() < 1 << 20,
        "RSS moved by {growth} bytes"
    );
    // The binary's baseline: the same binary and threads with the smallest reservations.
    let baseline = binary_baseline_rss(MIXED_ARGS);
    eprintln!(
        "memory: binary baseline {baseline} B; limit reserved + baseline = {} B",
        reserved + baseline
    );
    // Slack for what differs between the loaded server and the idle baseline process beyond
    // the reservation: stack pages its threads touched under load and the allocator's page
    // rounding. Measured here at 40-200 KB run to run; 256 KiB is 0.45 % of the reservation,
    // so a leak, growth or an under-reported reservation of that size still fails.
    const PAGE_SLACK: u64 = 256 << 10;
    assert!(
        after < reserved + baseline + PAGE_SLACK,
        "RSS {after} over reserved {reserved} + baseline {baseline} + {PAGE_SLACK}"
    );
}

#[test]
fn shutdown_under_load_truncates_nothing() {
    let _g = serial();
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..64)
        .map(|w| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut complete = 0u64;
                for i in 0.. {
                    let body = format!("client {w} request {i} {}", "z".repeat(i % 2000));
                    if !c.try_send(&post("/run", body.as_bytes())) {
                        break;
                    }
                    match c.try_read_response() {
                        Ok(r) => {
                            assert_eq!(r.status, 200);
                            assert_eq!(r.body, body.as_bytes(), "complete response");
                            complete += 1;
                        }
                        Err(0) => break,
                        Err(n) => panic!("client {w}: response truncated after {n} bytes"),
                    }
                    if stop.load(std::sync::atomic::Ordering::Relaxed) && i > 100_000 {
                        break;
                    }
                }
                complete
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let mut c = Client::connect(addr);
    let started = Instant::now();
    c.stream
        .write_all(b"POST /shutdown HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response().status, 200);
    let status = server
        .wait_exit(Duration::from_secs(6))
        .expect("exit within the shutdown timeout plus one second");
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: Vec<u64> = clients
        .into_iter()
        .map(|h| h.join().expect("no truncated response"))
        .collect();
    eprintln!("shutdown under load: exit {status:?} after {took:?}; {} complete responses over 64 connections", done.iter().sum::<u64>());
    assert!(status.success());
    assert!(
        done.iter().all(|&n| n > 0),
        "every connection was served before the shutdown"
    );
    assert!(server.log().contains("stopped (Request)"));
}
