//! Micro-benchmarks of the pieces on the hot path: ring hand-off between two threads
//! (throughput and round trip), request parsing (small GET, 1 KiB POST) and response head
//! writing. `cargo bench` runs them.

#![allow(missing_docs)] // criterion_group! generates an undocumented public fn

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use httpd_runner::core::limits::Limits;
use httpd_runner::core::parse::{header_slots, parse_head, ChunkedDecoder, Status};
use httpd_runner::core::response::{imf_fixdate, write_head, ResponseHead};
use httpd_runner::core::ring::Ring;
use httpd_runner::core::text::{FixedBuf, HeaderLines};

const SMALL_GET: &[u8] =
    b"GET /run HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

fn post_1k() -> Vec<u8> {
    let mut r = b"POST /run HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n".to_vec();
    r.extend(std::iter::repeat_n(b'x', 1024));
    r
}

fn parsing(c: &mut Criterion) {
    let limits = Limits::DEFAULT;
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("small GET", |b| {
        b.iter(|| {
            let mut headers = header_slots();
            match parse_head(black_box(SMALL_GET), &mut headers, &limits) {
                Ok(Status::Complete(h)) => black_box(h.head_len),
                _ => unreachable!(),
            }
        });
    });
    let post = post_1k();
    g.bench_function("1 KiB POST (head + body copy)", |b| {
        let mut body = vec![0u8; 1024];
        b.iter(|| {
            let mut headers = header_slots();
            let Ok(Status::Complete(h)) = parse_head(black_box(&post), &mut headers, &limits)
            else {
                unreachable!()
            };
            body.copy_from_slice(&post[h.head_len..]);
            black_box(&body);
        });
    });
    let chunked = b"400\r\n"
        .iter()
        .chain(&[b'y'; 1024])
        .chain(b"\r\n0\r\n\r\n")
        .copied()
        .collect::<Vec<u8>>();
    g.bench_function("1 KiB chunked body", |b| {
        let mut body = vec![0u8; 2048];
        b.iter(|| {
            let mut d = ChunkedDecoder::new(2048);
            let p = d.decode(black_box(&chunked), &mut body).unwrap();
            black_box(p.produced)
        });
    });
    g.finish();
}

fn response_head(c: &mut Criterion) {
    let date = imf_fixdate(1_790_000_000);
    let mut store = [0u8; 512];
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Elements(1));
    g.bench_function("write head", |b| {
        b.iter(|| {
            let mut out = FixedBuf::new(&mut store);
            let head = ResponseHead {
                status: 200,
                content_length: black_box(1024),
                keep_alive: true,
                date: &date,
                content_type: None,
                allow: None,
                retry_after_secs: None,
                runner: Some(1),
                extra: b"Content-Type: application/octet-stream\r\n",
            };
            write_head(&mut out, &head).unwrap();
            black_box(out.len())
        });
    });
    g.bench_function("runner header line (Content-Type)", |b| {
        let mut lines = HeaderLines::new();
        b.iter(|| {
            lines.clear();
            lines
                .push(
                    black_box("Content-Type"),
                    black_box(b"application/octet-stream"),
                )
                .unwrap();
            black_box(lines.as_bytes().len())
        });
    });
    g.bench_function("imf_fixdate", |b| {
        b.iter(|| black_box(imf_fixdate(black_box(1_790_000_000))))
    });
    g.finish();
}

/// Sends `iters` values to a consumer thread, publishing every `batch` staged values (or
/// when the ring is full). Returns the producer's time.
fn hand_off(iters: u64, batch: u64) -> Duration {
    let mut ring = Ring::<u64, 1024>::new();
    let (mut tx, mut rx) = ring.split();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut got = 0;
            while got < iters {
                if rx.pop().is_some() {
                    got += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let start = Instant::now();
        for i in 0..iters {
            let mut v = i;
            while let Err(back) = tx.stage(v) {
                v = back;
                tx.publish();
                std::hint::spin_loop();
            }
            if (i + 1) % batch == 0 {
                tx.publish();
            }
        }
        tx.publish();
        start.elapsed()
    })
}

fn rings(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hand-off to another thread (messages/s)", |b| {
        b.iter_custom(|iters| hand_off(iters, 1));
    });
    g.bench_function(
        "hand-off in batches of 16, one publish each (messages/s)",
        |b| {
            b.iter_custom(|iters| hand_off(iters, 16));
        },
    );
    g.bench_function("round trip through two rings", |b| {
        b.iter_custom(|iters| {
            let mut there = Ring::<u64, 8>::new();
            let mut back = Ring::<u64, 8>::new();
            let (mut to, mut from_main) = there.split();
            let (mut reply, mut from_echo) = back.split();
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let stop = &stop;
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(v) = from_main.pop() {
                            while reply.push(v).is_err() {}
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                });
                let start = Instant::now();
                for i in 0..iters {
                    to.push(i).unwrap();
                    loop {
                        if let Some(v) = from_echo.pop() {
                            debug_assert_eq!(v, i);
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
                let took = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                took
            })
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = parsing, response_head, rings
}
criterion_main!(benches);
