//! The server end to end: echo, limits, keep-alive, concurrency, shutdown, threads.

use std::time::Duration;

use httpd_runner_tests::{body_of, metric_in, post, serial, Client, Server};

#[test]
fn echoes_bodies_byte_for_byte() {
    let _g = serial();
    let server = Server::start(&[]);
    let mut c = server.connect();
    for size in [0usize, 1, 1024, 100 * 1024] {
        let body = body_of(size);
        for method in ["POST", "GET"] {
            let mut req = format!("{method} /run HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\nContent-Type: application/x-test\r\n\r\n").into_bytes();
            req.extend_from_slice(&body);
            c.send(&req);
            let r = c.read_response();
            assert_eq!(r.status, 200, "{method} {size}");
            assert_eq!(r.body.len(), size, "{method} {size}");
            assert!(r.body == body, "{method} {size}: body differs");
            // Content-Type goes with content only (RFC 9110 §8.3).
            let expected = (size > 0).then_some("application/x-test");
            assert_eq!(r.header("content-type"), expected, "{method} {size}");
            assert!(r.header("x-runner").is_some());
        }
    }
    let r = server.request(b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(
        r.header("content-type"),
        Some("application/octet-stream"),
        "default content type"
    );
    // An empty echo has no Content-Type, whatever the request said.
    for req in [
        &b"GET /run HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Type: a/b\r\n\r\n",
    ] {
        let r = server.request(req);
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.header("content-type"), None, "empty echo");
        assert_eq!(r.header("content-length"), Some("0"));
    }
}

#[test]
fn one_byte_over_the_limit_is_413_and_closed() {
    let _g = serial();
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(&post("/run", &body_of(100 * 1024 + 1)));
    let r = c.read_response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_server());
    // A smaller configured limit applies too.
    let small = Server::start(&["--max-body-bytes", "10"]);
    assert_eq!(small.request(&post("/run", &body_of(10))).status, 200);
    assert_eq!(small.request(&post("/run", &body_of(11))).status, 413);
}

#[test]
fn a_thousand_requests_on_one_connection() {
    // Behaviour only: every answer, in order, on one connection. When the handler waits for
    // runners and when an idle runner polls are decided by `core::sched` and tested there
    // with explicit time; here the counters they leave must only be consistent.
    let _g = serial();
    let server = Server::start(&[]);
    let started = std::time::Instant::now();
    thousand_requests(&server);
    let took = started.elapsed().as_secs_f64();
    let m = server.metrics();
    let awaits = metric_in(&m, "httpd_runner_runner_awaits_total", "");
    let ran_out = metric_in(&m, "httpd_runner_runner_awaits_ran_out_total", "");
    assert!(ran_out <= awaits, "{ran_out} of {awaits} waits ran out");
    let seconds: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("httpd_runner_runner_await_seconds_total "))
        .and_then(|v| v.parse().ok())
        .expect("await seconds reported");
    assert!(seconds <= took, "{seconds} s of waits in {took} s");
    let polls = metric_in(&m, "httpd_runner_runner_polls_total", "");
    let hits = metric_in(&m, "httpd_runner_runner_poll_hits_total", "");
    assert!(hits <= polls, "{hits} hits in {polls} polls");
}

#[test]
fn a_handler_serving_one_connection_keeps_off_the_runner_core() {
    let _g = serial();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores < 2 {
        eprintln!("skipped: one core, the handler has nowhere else to go");
        return;
    }
    // Default options: one handler, runners pinned to cores 0.. (one runner on 2 cores).
    let server = Server::start(&[]);
    let runner_cores = task_cpus(server.pid(), "runner-0");
    assert_eq!(runner_cores.len(), 1, "runner-0 pinned: {runner_cores:?}");
    assert!(task_cpus(server.pid(), "handler-0").len() >= 2);
    one_at_a_time(&server, 1200);
    let handler_cores = task_cpus(server.pid(), "handler-0");
    assert!(
        !handler_cores.contains(&runner_cores[0]) && !handler_cores.is_empty(),
        "handler-0 may run on {handler_cores:?}, runner-0 is on {runner_cores:?}"
    );
    assert!(server.metric("httpd_runner_handler_moves_total", "") >= 1);
}

/// The cores the server's thread named `name` may run on (its `Cpus_allowed_list`).
fn task_cpus(pid: u32, name: &str) -> Vec<usize> {
    let list = task_cpu_list(pid, name);
    let mut cores = Vec::new();
    for part in list.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (usize, usize) = (first.parse().unwrap(), last.parse().unwrap());
        cores.extend(first..=last);
    }
    cores
}

fn task_cpu_list(pid: u32, name: &str) -> String {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            return status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_owned();
        }
    }
    panic!("no thread named {name}");
}

#[test]
fn runners_never_poll_with_spin_off() {
    let _g = serial();
    let server = Server::start(&["--spin-us", "0"]);
    one_at_a_time(&server, 100);
    let m = server.metrics();
    assert!(
        m.contains("httpd_runner_runner_polls_total{runner=\"0\"} 0"),
        "{m}"
    );
    assert!(
        metric_in(&m, "httpd_runner_runner_sleeps_total", "") > 0,
        "{m}"
    );
    // Every one of the requests was a stretch of one job, after which the rings were empty.
    assert!(
        metric_in(&m, "httpd_runner_runner_idles_total", "") >= 100,
        "{m}"
    );
}

#[test]
fn handlers_sleep_instead_of_waiting_for_slow_runners() {
    let _g = serial();
    let server = Server::start(&["--runner", "delay=2"]);
    one_at_a_time(&server, 20);
    // 2 ms jobs are far above the 50 µs a handler waits for: it sleeps until the answer.
    assert_eq!(server.metric("httpd_runner_runner_awaits_total", ""), 0);
}

#[test]
fn polling_runners_serve_and_stop_like_sleeping_ones() {
    let _g = serial();
    let mut server = Server::start(&["--spin-us", "200", "--runners", "2", "--no-pin"]);
    thousand_requests(&server);
    let (status, took) = server.shutdown();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// `n` small POSTs on one connection, each sent after the answer to the one before.
fn one_at_a_time(server: &Server, n: usize) {
    let mut c = server.connect();
    for i in 0..n {
        c.send(&post("/run", format!("{i}").as_bytes()));
        assert_eq!(c.read_response().status, 200, "request {i}");
    }
}

fn thousand_requests(server: &Server) {
    let mut c = server.connect();
    for i in 0..1000 {
        let body = format!("request {i}");
        c.send(&post("/run", body.as_bytes()));
        let r = c.read_response();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, body.as_bytes()),
            "request {i}"
        );
    }
    assert_eq!(
        server.metric("httpd_runner_connections_accepted_total", ""),
        2,
        "one connection for all of them, plus the metrics request"
    );
}

#[test]
fn two_hundred_connections_fifty_requests_each() {
    let _g = serial();
    let server = Server::start(&[]);
    let addr = server.addr;
    let workers: Vec<_> = (0..200)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..50 {
                    let body = format!("worker {w} request {i} {}", "x".repeat((w * 7 + i) % 300));
                    c.send(&post("/run", body.as_bytes()));
                    let r = c.read_response();
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body, body.as_bytes(), "worker {w} request {i}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(
        server.metric("httpd_runner_requests_total", "route=\"run\",code=\"200\""),
        200 * 50
    );
}

#[test]
fn post_shutdown_exits_zero_and_closes_the_port() {
    let _g = serial();
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let mut idle = server.connect();
    let (status, took) = server.shutdown();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        idle.is_closed_by_server(),
        "idle keep-alive connection closed"
    );
    assert!(std::net::TcpStream::connect(addr).is_err(), "port closed");
    let log = server.log();
    assert!(log.contains("stopped (Request)"), "{log}");
}

#[test]
fn shutdown_needs_post() {
    let _g = serial();
    let mut server = Server::start(&["--shutdown-token", "s3cret"]);
    let r = server.request(b"GET /shutdown HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, OPTIONS")));
    assert_eq!(
        server
            .request(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        200,
        "still running"
    );
    // With a token every peer needs it, loopback included (other peers are tested in the
    // core, `route::shutdown_permitted`: these tests may only use 127.0.0.1).
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let r = server.request(
            format!("POST /shutdown HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 403, "{auth:?}");
    }
    let r = server.request(b"POST /shutdown HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(server
        .wait_exit(Duration::from_secs(5))
        .expect("exit")
        .success());
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    let _g = serial();
    for sig in ["TERM", "INT"] {
        let mut server = Server::start(&[]);
        let mut c = server.connect();
        c.send(&post("/run", b"before"));
        assert_eq!(c.read_response().body, b"before");
        server.signal(sig);
        let status = server
            .wait_exit(Duration::from_secs(5))
            .expect("exited within 5 s");
        assert!(status.success(), "SIG{sig}: {status:?}");
        assert!(
            server.log().contains("stopped (Signal)"),
            "{}",
            server.log()
        );
        assert!(std::net::TcpStream::connect(server.addr).is_err());
    }
}

#[test]
fn threads_are_named_and_runners_pinned() {
    let _g = serial();
    let server = Server::start(&["--handlers", "2", "--runners", "2"]);
    let pid = server.pid();
    let mut names = Vec::new();
    let mut runner_cpus = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm"))
            .unwrap()
            .trim()
            .to_owned();
        if name.starts_with("runner-") {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_owned();
            runner_cpus.push((name.clone(), cpus));
        }
        names.push(name);
    }
    for want in ["listener", "handler-0", "handler-1", "runner-0", "runner-1"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let log = server.log();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for (name, cpus) in runner_cpus {
        let index: usize = name["runner-".len()..].parse().unwrap();
        if log.contains(&format!("{name}: core ")) {
            assert_eq!(
                cpus,
                (index % cores).to_string(),
                "{name} pinned to its core"
            );
        } else {
            assert!(
                log.contains(&format!("{name}: not pinned")),
                "banner says why {name} is not pinned:\n{log}"
            );
        }
    }
    let unpinned = Server::start(&["--no-pin"]);
    assert!(unpinned.log().contains("not pinned (--no-pin)"));
}

#[test]
fn banner_reports_address_counts_pinning_and_memory() {
    let _g = serial();
    let server = Server::start(&["--runners", "1", "--max-connections", "64"]);
    let log = server.log();
    assert!(
        log.contains(&format!("listening on http://{}", server.addr)),
        "{log}"
    );
    assert!(server.addr.port() != 0);
    assert!(log.contains("handlers: 1, runners: 1"), "{log}");
    assert!(log.contains("runner-0: "), "{log}");
    assert!(log.contains("memory reserved at startup: "), "{log}");
    assert!(
        log.contains("max connections: 64, max body: 102400 bytes"),
        "{log}"
    );
    assert!(
        !log.contains("note: --slots"),
        "defaults need no note: {log}"
    );
    assert!(
        log.contains("request slots per handler: 128, queue per runner: 128"),
        "the runner queue follows --slots: {log}"
    );
    // More slots than one runner's queue takes: a pipelining client could get 503s from an
    // idle server, so the banner says so. Without --ring-capacity the queue follows the slots
    // up to the ring's size.
    for (args, note) in [
        (&["--slots", "300"][..], None),
        (
            &["--slots", "300", "--ring-capacity", "256"][..],
            Some("note: --slots 300 is above --ring-capacity 256"),
        ),
        (
            &["--slots", "2000"][..],
            Some("note: --slots 2000 is above --ring-capacity 1024"),
        ),
    ] {
        let wide = Server::start(&[&["--runners", "1"][..], args].concat());
        let log = wide.log();
        match note {
            Some(note) => assert!(log.contains(note), "{args:?}: {log}"),
            None => assert!(!log.contains("note: --slots"), "{args:?}: {log}"),
        }
    }
}
