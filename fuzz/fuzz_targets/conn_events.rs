//! The connection state machine under arbitrary event sequences: no panic, responses leave in
//! request order, a peer that closes or resets frees what it can never get, nothing is written after the connection decided to close, and the number
//! of requests in flight never exceeds the bound.
#![no_main]
use httpd_runner_core::conn::{Conn, ConnConfig};
use httpd_runner_core::limits::MAX_PIPELINE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|events: Vec<(u8, u16)>| {
    let cfg = ConnConfig {
        header_timeout_ms: 100,
        body_timeout_ms: 50,
        idle_timeout_ms: 300,
        max_pipeline: 4,
    };
    let mut now = 0u64;
    let mut c = Conn::<u32>::new(cfg, now);
    let mut begun: Vec<u32> = Vec::new();
    let mut next_written = 0u32;
    for (op, arg) in events {
        now += u64::from(arg % 64);
        if c.should_close() {
            break;
        }
        match op % 10 {
            0 => c.on_data(now),
            1 | 2 => {
                if let Ok(seq) = c.begin_request(now, arg % 7 != 0, arg % 3 == 0) {
                    begun.push(seq);
                }
            }
            3 => c.body_complete(now),
            4 | 5 => {
                if !begun.is_empty() {
                    let seq = begun.remove(usize::from(arg) % begun.len());
                    let _ = c.complete(now, seq, seq, arg % 11 == 0);
                }
            }
            6 => {
                if let Some(v) = c.pop_written(now) {
                    // Responses carry their own seq; failures use u32::MAX.
                    if v != u32::MAX {
                        assert!(v >= next_written, "out of order: {v} after {next_written}");
                        next_written = v + 1;
                    }
                }
            }
            7 => {
                if let Some(t) = c.tick(now) {
                    if t.answers_408() {
                        c.fail(now, u32::MAX);
                    }
                }
            }
            8 => c.fail(now, u32::MAX),
            _ => match arg % 3 {
                0 => {
                    let before = c.in_flight();
                    if c.peer_closed() {
                        // The request whose body was arriving is dropped: the newest begun.
                        assert_eq!(c.in_flight(), before - 1);
                        assert!(begun.pop().is_some());
                    }
                    if c.in_flight() == 0 {
                        assert!(
                            c.should_close(),
                            "a closed peer with nothing owed closes now"
                        );
                    }
                }
                1 => c.shutdown(),
                _ => {
                    c.peer_reset();
                    assert!(c.should_close(), "a reset closes now");
                }
            },
        }
        assert!(c.in_flight() <= MAX_PIPELINE);
        let ready: Vec<u32> = c.ready().map(|v| *v).collect();
        let real: Vec<u32> = ready.iter().copied().filter(|&v| v != u32::MAX).collect();
        assert!(
            real.windows(2).all(|w| w[0] < w[1]),
            "ready prefix in order: {ready:?}"
        );
    }
});
