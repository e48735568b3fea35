//! The connection's decisions under arbitrary event sequences: no panic; responses leave in
//! request order, whether written whole or a few bytes at a time; a peer that closes or
//! resets frees what it can never get, in every state; nothing is written after the
//! connection decided to close; requests in flight never exceed the bound; what is left to
//! write is always what was made ready minus what was written; and the read side's choices
//! (room in the buffer, the next read) stay inside the buffer. A request answered in its
//! runner's place (a deadline's 504) refuses the runner's answer when it comes back later.
#![no_main]
use httpd_runner_core::conn::input::{next_read, Input, ReadKind};
use httpd_runner_core::conn::{AfterRead, Conn, ConnConfig, ReadOutcome};
use httpd_runner_core::limits::MAX_PIPELINE;
use libfuzzer_sys::fuzz_target;

/// Bytes of the response for request `v` (failures, `u32::MAX`, have 3).
fn len(v: &u32) -> usize {
    if *v == u32::MAX {
        3
    } else {
        (*v % 7) as usize + 1
    }
}

static BYTES: [u8; 8] = *b"abcdefgh";

/// A response's parts: a head of half its bytes and a body of the rest.
fn split<'a>(v: &u32) -> [&'a [u8]; 2] {
    let n = len(v);
    [&BYTES[..n / 2], &BYTES[n / 2..n]]
}

/// Bytes left to write: by the ready responses' lengths, and by `unwritten`'s parts.
fn left(c: &mut Conn<u32>) -> (usize, usize) {
    let by_len = c.ready().map(|v| len(v)).sum::<usize>() - c.written();
    let mut by_parts = 0;
    c.unwritten(split, |p| {
        by_parts += p.len();
        true
    });
    (by_len, by_parts)
}

const BUF: usize = 64;

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
    // Requests answered 504 at their deadline whose runner has not answered yet.
    let mut late: Vec<u32> = Vec::new();
    let mut next_written = 0u32;
    let mut input = Input::default();
    for (op, arg) in events {
        now += u64::from(arg % 64);
        if c.should_close() {
            break;
        }
        match op % 13 {
            0 => c.on_data(now),
            1 | 2 => {
                if let Ok(seq) = c.begin_request(now, arg % 7 != 0, arg % 3 == 0) {
                    begun.push(seq);
                }
            }
            3 => c.body_complete(now),
            4 | 5 => {
                if arg % 5 == 0 && !late.is_empty() {
                    // A runner's answer comes back after its request's deadline passed and
                    // the server answered 504 in its place: it is handed back, never queued.
                    let seq = late.swap_remove(usize::from(arg) % late.len());
                    assert!(
                        c.complete(now, seq, seq, false).is_err(),
                        "late answer refused"
                    );
                } else if !begun.is_empty() {
                    let seq = begun.remove(usize::from(arg) % begun.len());
                    // Either the runner's answer, or (a deadline passed while the runner
                    // holds the request) the server's 504 in its place.
                    let expired = arg % 3 == 1;
                    if c.complete(now, seq, seq, !expired && arg % 11 == 0).is_ok() && expired {
                        late.push(seq);
                    }
                }
            }
            6 => {
                // A whole response written at once (the front one, if ready and untouched).
                if c.written() == 0 {
                    if let Some(v) = c.pop_written(now) {
                        check_order(v, &mut next_written);
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
            9 => {
                // A write of a few bytes, across responses.
                let (before, _) = left(&mut c);
                let n = usize::from(arg % 16).min(before);
                let mut done = Vec::new();
                c.wrote(now, n, len, |v| done.push(v));
                for v in done {
                    check_order(v, &mut next_written);
                }
                let (after, _) = left(&mut c);
                assert_eq!(after, before - n, "every written byte is accounted");
            }
            10 => {
                // The read side: consume some input, make room, choose a read, read.
                let consumed = usize::from(arg) % (input.end - input.start + 1);
                input.start += consumed;
                if let Some(moved) = input.make_room(BUF) {
                    assert!(moved.end == BUF && moved.start > 0);
                }
                assert!(input.start <= input.end && input.end <= BUF);
                let direct = (arg % 5 == 0).then_some(usize::from(arg % 9));
                match next_read(input, BUF, usize::from(arg % 80), arg % 4 == 0, direct) {
                    ReadKind::Buffer { to } => {
                        assert!(input.end < to && to <= BUF, "{input:?} to {to}");
                        input.end += (usize::from(arg) % (to - input.end)).max(1);
                    }
                    ReadKind::Full => assert_eq!(input.end, BUF),
                    ReadKind::Guess | ReadKind::Direct { .. } => assert_eq!(input.end, 0),
                }
            }
            11 => {
                // What the socket said, through the machine's own read side.
                let outcome = match arg % 6 {
                    0 => ReadOutcome::Bytes(usize::from(arg % 200)),
                    1 => ReadOutcome::Eof,
                    2 => ReadOutcome::WouldBlock,
                    3 => ReadOutcome::Interrupted,
                    4 => ReadOutcome::Reset,
                    _ => {
                        c.on_readable(arg % 12 == 5);
                        ReadOutcome::WouldBlock
                    }
                };
                let before = c.in_flight();
                match c.on_read(outcome, 100) {
                    AfterRead::Stop { drop_body, reset } => {
                        if drop_body {
                            assert_eq!(c.in_flight(), before - 1);
                            assert!(begun.pop().is_some());
                        }
                        if reset {
                            assert!(c.should_close(), "a reset closes now");
                        }
                        assert!(
                            !c.should_read(false, false, false),
                            "no read after a stop until the next event"
                        );
                    }
                    AfterRead::Got(n) => assert!(n > 0 && n <= 200),
                    AfterRead::Again => assert_eq!(outcome, ReadOutcome::Interrupted),
                }
            }
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
        let (by_len, by_parts) = left(&mut c);
        assert_eq!(by_len, by_parts, "unwritten parts match the lengths");
        let ready: Vec<u32> = c.ready().map(|v| *v).collect();
        let real: Vec<u32> = ready.iter().copied().filter(|&v| v != u32::MAX).collect();
        assert!(
            real.windows(2).all(|w| w[0] < w[1]),
            "ready prefix in order: {ready:?}"
        );
    }
});

/// Responses carry their own sequence number; failures use `u32::MAX`.
fn check_order(v: u32, next_written: &mut u32) {
    if v != u32::MAX {
        assert!(v >= *next_written, "out of order: {v} after {next_written}");
        *next_written = v + 1;
    }
}
