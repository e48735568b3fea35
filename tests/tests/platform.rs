//! Runners as a platform, end to end: deadlines (504 whether queued, running or kept, the
//! connection still usable), the world example (frames, inputs answered at the frame's end,
//! long-polls) and the batch example (a batch leaves full or on its alarm), each with zero
//! allocations after startup.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use httpd_runner_tests::{built_example, metric_in, serial, Client, Server};

fn req(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn json_u64(body: &[u8], field: &str) -> u64 {
    let text = String::from_utf8_lossy(body);
    let at = text
        .find(&format!("\"{field}\":"))
        .unwrap_or_else(|| panic!("{field} in {text}"));
    text[at + field.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{field} in {text}"))
}

/// Waits (as a net, up to 20 s) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_deadline_gives_504_before_a_slow_runner_finishes_and_the_connection_goes_on() {
    let _g = serial();
    let server = Server::start(&["--runner", "delay=2000", "--runners", "1", "--no-pin"]);
    let mut c = server.connect();
    let started = Instant::now();
    c.send(&req("GET", "/run", "X-Deadline-Ms: 20\r\n", b""));
    let r = c.read_response();
    assert_eq!(r.status, 504);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered at the deadline, not after the runner's 2 s: {:?}",
        started.elapsed()
    );
    // The same connection: pipelined, answered in order.
    c.send(&req("GET", "/run", "X-Delay-Ms: 0\r\n", b""));
    c.send(&req("POST", "/run", "X-Delay-Ms: 0\r\n", b"next"));
    assert_eq!(c.read_response().status, 200);
    assert_eq!(c.read_response().body, b"next");
    // A bad budget is the client's error.
    c.send(&req("GET", "/run", "X-Deadline-Ms: soon\r\n", b""));
    assert_eq!(c.read_response().status, 400);
    eventually("the late answer counted as running", || {
        server.metric("httpd_runner_expired_total", "where=\"running\"") == 1
    });
}

#[test]
fn a_job_that_expired_in_its_queue_is_not_run_and_the_default_deadline_applies() {
    let _g = serial();
    let server = Server::start(&[
        "--runner",
        "delay=0",
        "--runners",
        "1",
        "--no-pin",
        "--request-timeout",
        "40ms",
        "--shed-after",
        "off",
    ]);
    // The runner is busy for 300 ms with a request that has its own, longer budget...
    let mut busy = server.connect();
    busy.send(&req(
        "GET",
        "/run",
        "X-Delay-Ms: 300\r\nX-Deadline-Ms: 5000\r\n",
        b"",
    ));
    std::thread::sleep(Duration::from_millis(50));
    // ...so this one (the default 40 ms) expires queued behind it.
    let mut queued = server.connect();
    queued.send(&req("GET", "/run", "X-Delay-Ms: 0\r\n", b""));
    assert_eq!(queued.read_response().status, 504);
    assert_eq!(busy.read_response().status, 200);
    eventually("counted as expired in the queue", || {
        server.metric("httpd_runner_expired_total", "where=\"queue\"") == 1
    });
    let jobs_run = server.metric("httpd_runner_runner_jobs_total", "");
    queued.send(&req("GET", "/run", "X-Delay-Ms: 0\r\n", b""));
    assert_eq!(queued.read_response().status, 200, "the connection goes on");
    assert_eq!(
        server.metric("httpd_runner_runner_jobs_total", ""),
        jobs_run + 1
    );
}

#[test]
fn world_example_steps_frames_answers_inputs_and_long_polls() {
    let _g = serial();
    let server = Server::start_program_env(
        &built_example("world"),
        &[("WORLD_TICK_HZ", "100")],
        &["--runners", "2", "--no-pin"],
    );
    let mut c = server.connect();
    c.send(&req("POST", "/run/lobby", "", b"5"));
    let first = c.read_response();
    assert_eq!(
        first.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(json_u64(&first.body, "value"), 5);
    let f1 = json_u64(&first.body, "frame");
    c.send(&req("POST", "/run/lobby", "", b"3"));
    let second = c.read_response();
    assert_eq!(json_u64(&second.body, "value"), 8);
    assert!(
        json_u64(&second.body, "frame") > f1,
        "applied at a later frame"
    );
    // A long-poll for a frame ten frames ahead returns with the first frame after it.
    let ahead = json_u64(&second.body, "frame") + 10;
    c.send(&req("GET", &format!("/run/lobby?after={ahead}"), "", b""));
    let polled = c.read_response();
    assert_eq!(polled.status, 200);
    assert_eq!(json_u64(&polled.body, "frame"), ahead + 1);
    assert_eq!(json_u64(&polled.body, "value"), 8);
    // A poll that cannot be answered before its deadline gets 504; the connection goes on.
    c.send(&req(
        "GET",
        "/run/lobby?after=99999999",
        "X-Deadline-Ms: 30\r\n",
        b"",
    ));
    assert_eq!(c.read_response().status, 504);
    c.send(&req("GET", "/run/lobby", "", b""));
    assert_eq!(c.read_response().status, 200);
    // Rooms are sharded over both runners, each ticking.
    let mut runners = BTreeSet::new();
    for room in 0..16 {
        c.send(&req("POST", &format!("/run/room-{room}"), "", b"1"));
        let r = c.read_response();
        assert_eq!(r.status, 200);
        runners.insert(r.header("x-runner").unwrap().to_owned());
    }
    assert_eq!(runners.len(), 2, "{runners:?}");
    // Ticks keep coming while clients load the server.
    let before = server.metric("httpd_runner_ticks_total", "");
    let load: Vec<_> = (0..4)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..100 {
                    c.send(&req("POST", &format!("/run/load-{t}-{}", i % 8), "", b"1"));
                    assert_eq!(c.read_response().status, 200);
                }
            })
        })
        .collect();
    for l in load {
        l.join().expect("load client");
    }
    assert!(server.metric("httpd_runner_ticks_total", "") > before);
    let m = server.metrics();
    assert_eq!(
        metric_in(&m, "httpd_runner_expired_total", "where=\"kept\""),
        1
    );
    assert!(metric_in(&m, "httpd_runner_tick_lateness_seconds_count", "") > 0);
    assert_eq!(
        metric_in(&m, "httpd_runner_allocations_after_startup_total", ""),
        0,
        "ticks, kept requests, expiry and frame memory allocate nothing"
    );
}

#[test]
fn batch_example_sends_a_full_batch_at_once_and_a_lone_request_on_its_alarm() {
    let _g = serial();
    let server = Server::start_program_env(
        &built_example("batch"),
        &[
            ("BATCH_SIZE", "4"),
            ("BATCH_WAIT_US", "100000"),
            ("BATCH_COST_US", "0"),
        ],
        &["--runners", "1", "--no-pin"],
    );
    let mut clients: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&req("POST", "/run", "", format!("input {i}").as_bytes()));
    }
    let mut positions = BTreeSet::new();
    let mut batches = BTreeSet::new();
    for c in &mut clients {
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(json_u64(&r.body, "size"), 4);
        positions.insert(json_u64(&r.body, "position"));
        batches.insert(json_u64(&r.body, "batch"));
    }
    assert_eq!(positions, (0..4).collect(), "one batch of four");
    assert_eq!(batches.len(), 1);
    // Alone, a request leaves when the batch's wait runs out.
    let mut c = server.connect();
    c.send(&req("POST", "/run", "", b"alone"));
    let r = c.read_response();
    assert_eq!((r.status, json_u64(&r.body, "size")), (200, 1));
    assert_eq!(json_u64(&r.body, "bytes"), 5);
    assert_eq!(
        server.metric("httpd_runner_allocations_after_startup_total", ""),
        0
    );
}
