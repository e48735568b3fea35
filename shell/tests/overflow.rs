//! A runner whose response outgrows the body limit: the client gets a 500, never a truncated
//! 200, and `/metrics` counts it; a runner that answers the overflow itself keeps its answer.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use httpd_runner::{Builder, Config, Request, Response};

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[test]
fn an_ignored_overflow_is_a_counted_500_and_a_handled_one_keeps_its_status() {
    let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap())
        .max_body_bytes(1024)
        .runners(Some(1))
        .pin(false);
    let server = Builder::new(cfg)
        .runner(|_| {
            |req: &Request<'_>, resp: &mut Response<'_, '_>| {
                let handled = req.path() == "/run/handled";
                for i in 0..100_000u32 {
                    if writeln!(resp.body_mut(), "line {i}").is_err() {
                        if handled {
                            resp.reset();
                            resp.set_status(507);
                        }
                        break;
                    }
                }
            }
        })
        .start()
        .expect("starts");
    let (status, text) = get(server.local_addr, "/run/ignored");
    assert_eq!(status, 500, "{text}");
    assert!(text.ends_with("response body over the limit\n"), "{text}");
    let (status, _) = get(server.local_addr, "/run/handled");
    assert_eq!(status, 507);
    let (_, metrics) = get(server.local_addr, "/metrics");
    assert!(
        metrics.contains("httpd_runner_runner_overflows_total{runner=\"0\"} 1"),
        "{metrics}"
    );
    server.shutdown();
    server.wait().expect("stops cleanly");
}

/// Responses longer than a slot's own buffer grow into the runner's spare buffers, whole,
/// through `write!`, `write` and `reserve` with `spare_mut`; the spares come back once each
/// response is written, so far more long responses than spares are answered in a row.
#[test]
fn long_responses_grow_into_spares_that_come_back() {
    let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap())
        .runners(Some(1))
        .pin(false);
    let server = Builder::new(cfg)
        .runner(|_| {
            |req: &Request<'_>, resp: &mut Response<'_, '_>| {
                let n: usize = req
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                let body = resp.body_mut();
                match req.query() {
                    Some("fmt") => {
                        for i in 0..n {
                            let _ = write!(body, "{}", i % 10);
                        }
                    }
                    Some("spare") => {
                        if body.reserve(n).is_ok() {
                            for (i, b) in body.spare_mut()[..n].iter_mut().enumerate() {
                                *b = b'0' + (i % 10) as u8;
                            }
                            body.advance(n);
                        }
                    }
                    _ => {
                        let digits: Vec<u8> = (0..n).map(|i| b'0' + (i % 10) as u8).collect();
                        let _ = resp.write(&digits);
                    }
                }
            }
        })
        .start()
        .expect("starts");
    let want = |n: usize| -> String { (0..n).map(|i| char::from(b'0' + (i % 10) as u8)).collect() };
    for round in 0..12 {
        for (n, how) in [(60_000, ""), (9_000, "?fmt"), (100 * 1024, "?spare")] {
            let (status, text) = get(server.local_addr, &format!("/run/{n}{how}"));
            assert_eq!(status, 200, "round {round}, {n}{how}");
            assert!(
                text.ends_with(&want(n)),
                "round {round}, {n}{how}: body differs"
            );
        }
    }
    // Past the limit is still a 500, never truncated.
    let (status, _) = get(server.local_addr, "/run/102401");
    assert_eq!(status, 500);
    server.shutdown();
    server.wait().expect("stops cleanly");
}
