//! What the server tells about itself: per-layer latency histograms and process series from
//! startup, `/metrics` at the most runners, the stall detector and its log line, the log
//! level, and the access log (every line, or every drop counted, with no allocation).

use std::io::Write;

use httpd_runner_tests::{metric_in, serial, Client, Server};

/// The value of the sample line that starts with `prefix` (name and labels), if any.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_have_every_layer_and_process_series_before_any_request() {
    let _serial = serial();
    let mut server = Server::start(&[]);
    let m = server.metrics();
    // Per layer, a bucket at or below 5 µs (1, 2 and 4 µs), at zero.
    for prefix in [
        r#"httpd_runner_queue_wait_seconds_bucket{runner="0",le="0.000004"}"#,
        r#"httpd_runner_service_seconds_bucket{runner="0",le="0.000001"}"#,
        r#"httpd_runner_time_to_last_byte_seconds_bucket{route="run",class="2xx",le="0.000002"}"#,
        r#"httpd_runner_time_to_last_byte_seconds_bucket{route="other",class="4xx",le="+Inf"}"#,
        r#"httpd_runner_service_seconds_count{runner="0"}"#,
        r#"httpd_runner_requests_total{route="health",code="503"}"#,
        r#"httpd_runner_runner_stalls_total{runner="0"}"#,
        r#"httpd_runner_expired_total{where="queue"}"#,
        r#"httpd_runner_log_lines_total{level="warn"}"#,
        "httpd_runner_access_log_dropped_total",
    ] {
        assert_eq!(sample(&m, prefix), Some(0.0), "{prefix} in:\n{m}");
    }
    let version = format!(
        r#"httpd_runner_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&m, &version), Some(1.0), "{m}");
    let rss = sample(&m, "process_resident_memory_bytes").unwrap_or(0.0);
    assert!(rss > 1e6, "resident memory {rss}");
    assert!(sample(&m, "process_open_fds").unwrap_or(0.0) >= 3.0, "{m}");
    assert!(
        sample(&m, "process_max_fds").unwrap_or(0.0) >= 1024.0,
        "{m}"
    );
    assert!(sample(&m, "process_cpu_seconds_total").is_some(), "{m}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = sample(&m, "process_start_time_seconds").unwrap_or(0.0);
    assert!(
        now - start >= 0.0 && now - start < 60.0,
        "start {start}, now {now}"
    );

    // One request: it lands in its layers' histograms, each counted once.
    let mut c = server.connect();
    c.send(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.read_response().status, 200);
    let m = server.metrics();
    for prefix in [
        r#"httpd_runner_queue_wait_seconds_count{runner="0"}"#,
        r#"httpd_runner_service_seconds_count{runner="0"}"#,
        r#"httpd_runner_time_to_last_byte_seconds_count{route="run",class="2xx"}"#,
        r#"httpd_runner_time_to_last_byte_seconds_bucket{route="run",class="2xx",le="+Inf"}"#,
    ] {
        assert_eq!(sample(&m, prefix), Some(1.0), "{prefix} in:\n{m}");
    }
    // A refusal written from the connection's own buffer is timed too, under `other`.
    let mut bad = server.connect();
    bad.send(b"GET /run HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n");
    assert_eq!(bad.read_response().status, 400);
    assert!(bad.is_closed_by_server());
    let m = server.metrics();
    let prefix = r#"httpd_runner_time_to_last_byte_seconds_count{route="other",class="4xx"}"#;
    assert_eq!(sample(&m, prefix), Some(1.0), "{m}");
    let (status, _) = server.shutdown();
    assert!(status.success());
}

#[test]
fn metrics_answer_whole_at_the_most_runners() {
    let _serial = serial();
    let runners = httpd_runner::core::limits::MAX_RUNNERS.to_string();
    let mut server = Server::start(&[
        "--runners",
        &runners,
        "--max-body-bytes",
        "1024",
        "--scratch",
        "0",
        "--frame-scratch",
        "0",
        "--max-connections",
        "16",
        "--slots",
        "16",
    ]);
    let r = server.request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let m = String::from_utf8(r.body).unwrap();
    let last = format!(
        r#"httpd_runner_service_seconds_count{{runner="{}"}}"#,
        runners.parse::<u16>().unwrap() - 1
    );
    assert_eq!(sample(&m, &last), Some(0.0), "{} bytes, no {last}", m.len());
    assert!(m.ends_with("\n") && m.contains("httpd_runner_build_info"));
    let (status, _) = server.shutdown();
    assert!(status.success());
}

#[test]
fn a_stalled_run_is_counted_and_logged_once_naming_its_runner() {
    let _serial = serial();
    let mut server = Server::start(&["--runner", "delay=50", "--stall-threshold", "10ms"]);
    let r = server.request(b"GET /run HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let m = server.metrics();
    assert_eq!(
        metric_in(&m, "httpd_runner_runner_stalls_total", r#"runner="0""#),
        1
    );
    // Detecting, counting and logging it allocated nothing.
    let allocations = metric_in(&m, "httpd_runner_allocations_after_startup_total", "");
    assert_eq!(allocations, 0);
    assert_eq!(
        metric_in(&m, "httpd_runner_log_lines_total", r#"level="warn""#),
        1
    );
    let longest = sample(&m, r#"httpd_runner_runner_stall_max_seconds{runner="0"}"#);
    assert!(
        longest.is_some_and(|s| (0.05..5.0).contains(&s)),
        "{longest:?}"
    );
    let (status, _) = server.shutdown();
    assert!(status.success());
    let log = server.log();
    let stalls: Vec<&str> = log.lines().filter(|l| l.contains("stalled")).collect();
    assert_eq!(stalls.len(), 1, "{log}");
    assert!(
        stalls[0].contains(" WARN ") && stalls[0].contains("runner 0 stalled: run took 5"),
        "{}",
        stalls[0]
    );

    // Quick calls are no stalls; with the log off, a stall is still counted. Neither logs.
    let quick = &["--stall-threshold", "10ms", "--log-level", "off"][..];
    let slow = &[
        "--runner",
        "delay=20",
        "--stall-threshold",
        "10ms",
        "--log-level",
        "off",
    ][..];
    for (args, stalls) in [(quick, 0), (slow, 1)] {
        let (counted, log) = stalls_after_one_run(args);
        assert_eq!(counted, stalls, "{args:?}");
        assert!(!log.contains("stalled") && !log.contains(" INFO "), "{log}");
    }
}

/// Starts a server with `args`, sends one `/run` request, and returns the stalls counted at
/// runner 0 and everything the server printed on stderr until its clean exit.
fn stalls_after_one_run(args: &[&str]) -> (u64, String) {
    let mut server = Server::start(args);
    let r = server.request(b"GET /run HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let stalls = server.metric("httpd_runner_runner_stalls_total", r#"runner="0""#);
    let (status, _) = server.shutdown();
    assert!(status.success());
    (stalls, server.log())
}

#[test]
fn bad_observation_options_are_refused_by_name() {
    for (args, named) in [
        (&["--log-level", "loud"][..], "--log-level"),
        (&["--access-log", ""][..], "--access-log"),
        (&["--stall-threshold", "soon"][..], "--stall-threshold"),
        (
            &["--access-log", "/nonexistent-dir/x.log"][..],
            "--access-log",
        ),
    ] {
        let out = std::process::Command::new(httpd_runner_tests::server_binary())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

/// 10,000 requests on 8 keep-alive connections, pipelined 10 deep: every one is a line of
/// the access log or a counted drop, the lines parse field by field, and nothing allocates.
#[test]
fn the_access_log_has_a_line_per_request_or_counts_the_drop() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("httpd-runner-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    let path_arg = path.to_str().unwrap().to_owned();
    let mut server = Server::start(&["--access-log", &path_arg]);
    let addr = server.addr;
    const CONNS: usize = 8;
    const PER_CONN: usize = 1250;
    const DEPTH: usize = 10;
    std::thread::scope(|s| {
        for k in 0..CONNS {
            s.spawn(move || {
                let mut c = Client::connect(addr);
                for batch in 0..PER_CONN / DEPTH {
                    let mut wire = Vec::new();
                    for i in 0..DEPTH {
                        let n = batch * DEPTH + i;
                        write!(wire, "GET /run/c{k}?n={n} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    }
                    c.send(&wire);
                    for _ in 0..DEPTH {
                        assert_eq!(c.read_response().status, 200);
                    }
                }
            });
        }
    });
    let requests = (CONNS * PER_CONN) as u64;
    assert_eq!(requests, 10_000);
    let m = server.metrics();
    assert_eq!(
        metric_in(&m, "httpd_runner_allocations_after_startup_total", ""),
        0
    );
    let (status, _) = server.shutdown();
    assert!(status.success(), "{}", server.log());
    let dropped = metric_in(&m, "httpd_runner_access_log_dropped_total", "");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The /metrics request itself is logged too (after its scrape was rendered).
    let runs: Vec<&&str> = lines.iter().filter(|l| l.contains(" /run/")).collect();
    println!(
        "access log: {} lines for {requests} requests, {dropped} dropped, {} bytes",
        runs.len(),
        text.len()
    );
    assert_eq!(runs.len() as u64 + dropped, requests);
    for line in &runs {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 8, "{line}");
        assert!(f[0].ends_with('Z') && f[0].len() == 27, "{line}");
        assert!(f[1].starts_with("127.0.0.1:"), "{line}");
        assert_eq!((f[2], f[4], f[7]), ("GET", "200", "0"), "{line}");
        assert!(f[3].starts_with("/run/c") && f[3].contains("?n="), "{line}");
        assert!(f[5].parse::<u64>().unwrap() > 0, "{line}");
        assert!(f[6].parse::<u64>().is_ok(), "{line}");
    }
    // Each connection's lines are in its requests' order.
    for k in 0..CONNS {
        let tag = format!(" /run/c{k}?n=");
        let ns: Vec<usize> = runs
            .iter()
            .filter_map(|l| l.split(&tag).nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "connection {k} out of order"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
