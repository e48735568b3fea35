//! Size classes under pressure: every class filled at once (a thousand connections with heads
//! longer than their own read buffer, more large bodies than large slots, chunked bodies
//! that outgrow a small slot) gets back-pressure or a 503 with `Retry-After`, every request
//! the server takes is answered whole, nothing is allocated after startup, and resident
//! memory stays flat and within the reservation.

use std::net::{SocketAddr, TcpStream};
use std::thread;

use httpd_runner_tests::{
    binary_baseline_rss, body_of, metric_in, reserved_from_banner, rss_bytes, serial, Client,
    Server,
};

/// A body of `n` bytes that differs per connection, so a mixed-up answer cannot pass.
fn body_for(conn: usize, n: usize) -> Vec<u8> {
    let mut b = body_of(n);
    for (i, byte) in format!("<{conn}>").bytes().enumerate() {
        if i < b.len() {
            b[i] = byte;
        }
    }
    b
}

/// A POST of `body` to `/run`, its head padded past a connection's own 4 KiB read buffer
/// when `long_head`.
fn request(body: &[u8], long_head: bool) -> Vec<u8> {
    let pad = if long_head {
        "h".repeat(6000)
    } else {
        String::new()
    };
    let mut r = format!(
        "POST /run HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// `n` POSTs of `len`-byte bodies (each its own), heads long when `long_head`, with the
/// body each should get back.
fn posts(n: usize, len: usize, long_head: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let b = body_for(i, len);
            (request(&b, long_head), b)
        })
        .collect()
}

/// A chunked POST of `body` in chunks of `chunk` bytes.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut r = b"POST /run HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(chunk) {
        r.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        r.extend_from_slice(piece);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

/// How the requests of one wave were answered.
#[derive(Debug, Default)]
struct Tally {
    echoed: usize,
    shed: usize,
}

/// Opens one connection per request, sends every request before reading any answer (so they
/// all wait on the server at once), then checks each answer: the body echoed byte for byte,
/// or a 503 with `Retry-After`. Anything else (another status, a wrong body, a connection
/// closed without an answer) fails.
fn wave(addr: SocketAddr, requests: &[(Vec<u8>, Vec<u8>)]) -> Tally {
    let mut clients: Vec<Client> = requests
        .iter()
        .map(|(wire, _)| {
            let mut c = Client::from_stream(TcpStream::connect(addr).expect("connect"));
            c.send(wire);
            c
        })
        .collect();
    let mut tally = Tally::default();
    for (i, (c, (_, body))) in clients.iter_mut().zip(requests).enumerate() {
        let r = c
            .try_read_response()
            .unwrap_or_else(|n| panic!("request {i}: closed after {n} bytes, no answer"));
        match r.status {
            200 => {
                assert!(r.body == *body, "request {i}: the echo differs");
                tally.echoed += 1;
            }
            503 => {
                assert!(
                    r.header("retry-after").is_some(),
                    "request {i}: 503 without Retry-After"
                );
                tally.shed += 1;
            }
            s => panic!("request {i}: status {s}"),
        }
    }
    tally
}

#[test]
fn every_class_filled_at_once_waits_or_sheds_and_answers_whole() {
    let _g = serial();
    let server = Server::start(&[]);
    let addr = server.addr;
    let pid = server.pid();
    let reserved = reserved_from_banner(&server.log());
    let at_start = rss_bytes(pid);

    // 1. A thousand heads longer than a connection's own buffer: 16 large head buffers and
    // 16 large slots serve them in turns.
    let heads = posts(1000, 200, true);
    let t1 = wave(addr, &heads);
    // 2. More bodies too long for a small slot than there are large slots.
    let bodies = posts(64, 60_000, false);
    let t2 = wave(addr, &bodies);
    // 3. Chunked bodies that start in a small slot and outgrow it: alone, every one starts
    // small (48 of 112 small slots) and moves to a large slot.
    let grown: Vec<_> = (0..48)
        .map(|i| {
            let b = body_for(i, 30_000);
            (chunked(&b, 7000), b)
        })
        .collect();
    let t3 = wave(addr, &grown);
    assert_eq!(
        server.metric("httpd_runner_slot_moves_total", ""),
        t3.echoed as u64,
        "every chunked body moved from a small slot to a large one"
    );
    // 4. Then all of it at once: the chunked bodies again (some may start in a large slot
    // when the small ones are taken) while small and long-head waves run on another thread.
    let again = thread::spawn(move || {
        let small = posts(200, 1000, false);
        (wave(addr, &small), wave(addr, &heads[..300]))
    });
    let t6 = wave(addr, &grown);
    let (t4, t5) = again.join().expect("second waves");
    eprintln!(
        "long heads {t1:?}, long bodies {t2:?}, growing chunked {t3:?}, small {t4:?}, long heads again {t5:?}, chunked again {t6:?}"
    );
    for (what, t) in [
        ("long heads", &t1),
        ("long bodies", &t2),
        ("chunked", &t3),
        ("chunked again", &t6),
    ] {
        assert!(t.echoed > 0, "{what}: nothing served");
    }

    let m = server.metrics();
    eprintln!(
        "large head waits {}, slot moves {}, large slot waits {}, small slot waits {}",
        metric_in(&m, "httpd_runner_large_head_waits_total", ""),
        metric_in(&m, "httpd_runner_slot_moves_total", ""),
        metric_in(&m, "httpd_runner_slot_waits_large_total", ""),
        metric_in(&m, "httpd_runner_slot_waits_small_total", ""),
    );
    // Every class ran out at least once, and each was waited for rather than grown.
    assert!(metric_in(&m, "httpd_runner_large_head_waits_total", "") > 0);
    assert!(metric_in(&m, "httpd_runner_slot_waits_large_total", "") > 0);
    assert!(metric_in(&m, "httpd_runner_slot_moves_total", "") >= t3.echoed as u64);
    assert_eq!(
        metric_in(&m, "httpd_runner_large_head_buffers_in_use", ""),
        0
    );
    assert_eq!(
        metric_in(&m, "httpd_runner_allocations_after_startup_total", ""),
        0
    );
    assert_eq!(
        metric_in(&m, "httpd_runner_allocated_bytes_after_startup_total", ""),
        0
    );

    // Resident memory: the reservation was touched at startup, so serving moves it little,
    // and it stays within the reservation plus what the binary and its threads use idle
    // (measured on the smallest reservation, as `guarantees.rs` does).
    let after = rss_bytes(pid);
    let growth = after as i64 - at_start as i64;
    let baseline = binary_baseline_rss(&[]);
    eprintln!(
        "memory: reserved {reserved} B, at start {at_start} B, after {after} B (growth {growth} B), binary baseline {baseline} B"
    );
    // Stack and socket-buffer pages a thousand connections touch, beyond the idle baseline.
    const SLACK: u64 = 1 << 20;
    assert!(growth < SLACK as i64, "RSS grew by {growth} bytes");
    assert!(
        after < reserved + baseline + SLACK,
        "RSS {after} over reserved {reserved} + baseline {baseline} + {SLACK}"
    );
}

/// `--memory`: the defaults fit in 16 MB; a smaller budget lowers connections and slots to
/// fit (the banner says so) and the server still echoes a body at the limit; a budget too
/// small for one connection and one slot, or a malformed size, is refused with exit 2.
#[test]
fn memory_budgets_fit_the_pools_or_are_refused_by_name() {
    let _g = serial();
    let server = Server::start(&["--memory", "16M"]);
    let log = server.log();
    let reserved = reserved_from_banner(&log);
    eprintln!("{log}");
    assert!(reserved <= 16_000_000, "defaults reserve {reserved} bytes");
    assert!(!log.contains("to fit --memory"), "{log}");
    assert!(log.contains("small request slots: 112 x"), "{log}");
    assert!(log.contains("large request slots: 16 x"), "{log}");
    assert!(log.contains("large head buffers: 16 x"), "{log}");
    let big = body_of(100 * 1024);
    assert_eq!(server.request(&request(&big, false)).body, big);
    assert_eq!(
        server
            .request(&request(&body_of(100 * 1024 + 1), false))
            .status,
        413
    );
    drop(server);

    let server = Server::start(&["--memory", "6M"]);
    let log = server.log();
    let reserved = reserved_from_banner(&log);
    assert!(
        reserved <= 6 << 20,
        "--memory 6M reserved {reserved}: {log}"
    );
    assert!(
        log.contains("to fit --memory, --max-connections 1024 became"),
        "{log}"
    );
    assert_eq!(server.request(&request(&big, false)).body, big);
    drop(server);

    let server = Server::start(&["--large-slots", "40"]);
    let log = server.log();
    assert!(log.contains("small request slots: 88 x"), "{log}");
    assert!(log.contains("large request slots: 40 x"), "{log}");
    drop(server);

    let bin = httpd_runner_tests::server_binary();
    let out = std::process::Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--large-slots", "200"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("large_slots"), "{err}");
    for (size, says) in [
        ("100K", "runner scratch"),
        ("12Q", "--memory"),
        ("0", "--memory"),
    ] {
        let out = std::process::Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--memory", size])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--memory {size}: {err}");
        assert!(err.contains(says), "--memory {size}: {err}");
        assert!(!err.contains("panicked"), "--memory {size}: {err}");
    }
}
