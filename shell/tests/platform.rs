//! The runner platform in process: errors returned from `run`, requests kept and answered
//! later (from `run`, a tick or an alarm), ticks, and what a panic does to kept requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use httpd_runner::{Builder, Config, Context, Error, Kept, Request, Response, Runner};

fn send(addr: SocketAddr, path: &str, extra: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    c
}

fn read(mut c: TcpStream) -> (u16, String) {
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    read(send(addr, path, ""))
}

fn metric(addr: SocketAddr, series: &str) -> u64 {
    let (_, text) = get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

/// `/run/keep` is kept; `/run/release` answers every kept request with "released"; `/run/fail`
/// returns 429, `/run/not-an-error` a 200 "error" (sent as 500); `/run/panic` panics; the tick
/// counts frames and panics once when asked; `/run/alarm` is kept and answered by an alarm.
struct Platform {
    kept: heapless::Vec<Kept, 64>,
    alarmed: Option<Kept>,
    panic_in_tick: bool,
}

impl Runner for Platform {
    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }

    fn run(
        &mut self,
        cx: &mut Context<'_>,
        req: &Request<'_>,
        resp: &mut Response<'_, '_>,
    ) -> Result<(), Error> {
        match req.path() {
            "/run/keep" => {
                let k = cx.keep()?;
                assert!(cx.keep().is_err(), "one entry per request");
                self.kept.push(k).map_err(|_| Error::status(503))?;
                let _ = resp.write(b"discarded: the request was kept");
            }
            "/run/release" => {
                let mut n = 0;
                for k in std::mem::take(&mut self.kept) {
                    if cx.answer(k, |_, r| {
                        r.write(b"released").map_err(|_| Error::status(500))
                    }) {
                        n += 1;
                    }
                    assert!(!cx.answer(k, |_, _| Ok(())), "a handle answers once");
                }
                let _ = std::fmt::Write::write_fmt(resp.body_mut(), format_args!("{n}"));
            }
            "/run/fail" => return Err(Error::with_message(429, "slow down")),
            "/run/not-an-error" => return Err(Error::status(200)),
            "/run/panic" => panic!("asked to"),
            "/run/tick-panic" => self.panic_in_tick = true,
            "/run/alarm" => {
                self.alarmed = Some(cx.keep()?);
                cx.alarm_in(Duration::from_millis(30));
            }
            "/run/scratch" => {
                let s = cx.scratch().alloc_str("from scratch");
                resp.write(s.as_bytes()).map_err(|_| Error::status(500))?;
            }
            _ => return Err(Error::status(404)),
        }
        Ok(())
    }

    fn tick(&mut self, _cx: &mut Context<'_>) {
        if std::mem::take(&mut self.panic_in_tick) {
            panic!("tick asked to panic");
        }
    }

    fn alarm(&mut self, cx: &mut Context<'_>) {
        if let Some(k) = self.alarmed.take() {
            cx.answer(k, |_, r| r.write(b"alarm").map_err(|_| Error::status(500)));
        }
    }
}

fn start() -> httpd_runner::Server {
    let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap())
        .runners(Some(1))
        .pin(false);
    Builder::new(cfg)
        .runner(|_| Platform {
            kept: heapless::Vec::new(),
            alarmed: None,
            panic_in_tick: false,
        })
        .start()
        .expect("starts")
}

#[test]
fn kept_requests_are_answered_later_in_any_order_of_connections() {
    let server = start();
    let addr = server.local_addr;
    let waiting: Vec<TcpStream> = (0..3).map(|_| send(addr, "/run/keep", "")).collect();
    // Kept requests are taken by the runner before the release arrives (same runner, in
    // order of arrival at it); wait until all three are kept.
    while metric(addr, "httpd_runner_runner_kept{runner=\"0\"}") < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(addr, "/run/release"), (200, "3".to_owned()));
    for c in waiting {
        assert_eq!(read(c), (200, "released".to_owned()));
    }
    assert_eq!(metric(addr, "httpd_runner_runner_kept{runner=\"0\"}"), 0);
    server.shutdown();
    server.wait().expect("stops cleanly");
}

#[test]
fn errors_are_sent_as_their_status_and_counted() {
    let server = start();
    let addr = server.local_addr;
    assert_eq!(get(addr, "/run/fail"), (429, "slow down\n".to_owned()));
    assert_eq!(
        get(addr, "/run/not-an-error").0,
        500,
        "200 is not an error status"
    );
    assert_eq!(get(addr, "/run/nope"), (404, "Not Found\n".to_owned()));
    assert_eq!(get(addr, "/run/scratch"), (200, "from scratch".to_owned()));
    assert_eq!(
        metric(addr, "httpd_runner_runner_errors_total{runner=\"0\"}"),
        3
    );
    server.shutdown();
    server.wait().expect("stops cleanly");
}

#[test]
fn a_panic_answers_the_kept_requests_500_and_ticks_go_on() {
    let server = start();
    let addr = server.local_addr;
    let kept = send(addr, "/run/keep", "");
    while metric(addr, "httpd_runner_runner_kept{runner=\"0\"}") < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(addr, "/run/tick-panic").0, 200);
    let (status, body) = read(kept);
    assert_eq!(
        (status, body.as_str()),
        (500, "runner panicked\n"),
        "its instance is gone"
    );
    assert_eq!(
        metric(addr, "httpd_runner_runner_panics_total{runner=\"0\"}"),
        1
    );
    let ticks = metric(addr, "httpd_runner_ticks_total{runner=\"0\"}");
    while metric(addr, "httpd_runner_ticks_total{runner=\"0\"}") < ticks + 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(addr, "/run/panic").0, 500);
    assert_eq!(get(addr, "/run/fail").0, 429, "rebuilt and serving");
    server.shutdown();
    server.wait().expect("stops cleanly");
}

#[test]
fn an_alarm_answers_a_kept_request_and_a_deadline_beats_it() {
    let server = start();
    let addr = server.local_addr;
    assert_eq!(get(addr, "/run/alarm"), (200, "alarm".to_owned()));
    // Kept with a 10 ms budget: the server answers 504 before anyone releases it.
    let (status, _) = read(send(addr, "/run/keep", "X-Deadline-Ms: 10\r\n"));
    assert_eq!(status, 504);
    while metric(addr, "httpd_runner_expired_total{where=\"kept\"}") < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        get(addr, "/run/release"),
        (200, "0".to_owned()),
        "expired, not answered"
    );
    server.shutdown();
    server.wait().expect("stops cleanly");
}

#[test]
fn shutdown_answers_kept_requests_503() {
    let server = start();
    let addr = server.local_addr;
    let kept = send(addr, "/run/keep", "");
    while metric(addr, "httpd_runner_runner_kept{runner=\"0\"}") < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.shutdown();
    assert_eq!(read(kept).0, 503);
    server.wait().expect("stops cleanly");
}
