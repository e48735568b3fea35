//! The connection's byte-level decisions: body framing and progress, `100 Continue`, the
//! read size after a large body, written-bytes accounting across queued responses, gather
//! or `writev`, and how a connection ends. One named test per case.

use httpd_runner_core::conn::body::{
    body_start, continue_due, head_read_after, BodyError, BodyFraming, BodyStart,
};
use httpd_runner_core::conn::{ending, should_gather, Conn, ConnConfig, Ending};
use httpd_runner_core::limits::{GATHER_BYTES, HEAD_READ_AFTER_LARGE_BODY_BYTES, LINGER_MS};
use httpd_runner_core::parse::{Error, Framing};

fn start(framing: Framing, in_place: usize) -> BodyStart {
    body_start(framing, in_place, 1000)
}

#[test]
fn no_framing_is_no_body() {
    assert!(matches!(start(Framing::None, 0), BodyStart::None));
}

#[test]
fn a_length_counts_what_was_read_in_place() {
    assert!(matches!(
        start(Framing::Length(10), 4),
        BodyStart::Read(BodyFraming::Length(6))
    ));
}

#[test]
fn chunked_gets_a_decoder() {
    assert!(matches!(
        start(Framing::Chunked, 0),
        BodyStart::Read(BodyFraming::Chunked(_))
    ));
}

#[test]
fn too_large_is_refused_as_soon_as_the_head_is_parsed() {
    assert!(matches!(
        start(Framing::TooLarge(5000), 0),
        BodyStart::RefuseNow
    ));
    assert!(matches!(
        start(Framing::TooLarge(5000), 10),
        BodyStart::RefuseNow
    ));
}

#[test]
fn a_length_body_takes_what_it_needs_and_leaves_the_rest() {
    let mut f = BodyFraming::Length(5);
    let mut spare = [0u8; 16];
    let p = f.advance(b"abc", &mut spare).unwrap();
    assert_eq!((p.consumed, p.produced, p.done), (3, 3, false));
    assert_eq!(&spare[..3], b"abc");
    let p = f.advance(b"deGET", &mut spare[3..]).unwrap();
    assert_eq!((p.consumed, p.produced, p.done), (2, 2, true));
    assert_eq!(&spare[..5], b"abcde");
}

#[test]
fn a_length_body_larger_than_its_room_is_refused() {
    let mut f = BodyFraming::Length(5);
    let mut spare = [0u8; 2];
    assert_eq!(f.advance(b"abcde", &mut spare), Err(BodyError::TooLarge));
}

#[test]
fn a_chunked_body_decodes_and_reports_malformed_sizes() {
    let BodyStart::Read(mut f) = start(Framing::Chunked, 0) else {
        panic!("not read");
    };
    let mut spare = [0u8; 16];
    let p = f.advance(b"3\r\nabc\r\n0\r\n\r\n", &mut spare).unwrap();
    assert!(p.done);
    assert_eq!(&spare[..p.produced], b"abc");
    let BodyStart::Read(mut bad) = start(Framing::Chunked, 0) else {
        panic!("not read");
    };
    assert!(matches!(
        bad.advance(b"zz\r\n", &mut spare),
        Err(BodyError::Malformed(Error::InvalidChunk))
    ));
}

#[test]
fn only_a_length_body_is_read_straight_into_the_slot() {
    let mut f = BodyFraming::Length(100);
    assert_eq!(f.direct_read(40), Some(40));
    f.took_direct(40);
    assert_eq!(f.direct_read(1000), Some(60));
    let BodyStart::Read(chunked) = start(Framing::Chunked, 0) else {
        panic!("not read");
    };
    assert_eq!(chunked.direct_read(10), None);
}

macro_rules! continues {
    ($($name:ident: ($expect:expr, $arrived:expr, $in_flight:expr, $written:expr) => $due:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(continue_due($expect, $arrived, $in_flight, $written), $due);
        }
    )*};
}

continues! {
    continue_when_the_client_waits_alone: (true, false, 1, 0) => true;
    continue_not_without_expect: (false, false, 1, 0) => false;
    continue_not_once_body_bytes_arrived: (true, true, 1, 0) => false;
    continue_not_behind_another_request: (true, false, 2, 0) => false;
    continue_not_inside_a_partly_written_response: (true, false, 1, 7) => false;
}

#[test]
fn after_a_body_larger_than_the_buffer_the_next_head_read_is_short() {
    assert_eq!(
        head_read_after(Framing::Length(70_000), 24_576),
        HEAD_READ_AFTER_LARGE_BODY_BYTES
    );
    assert_eq!(head_read_after(Framing::Length(100), 24_576), 24_576);
    assert_eq!(head_read_after(Framing::Chunked, 24_576), 24_576);
    assert_eq!(head_read_after(Framing::None, 24_576), 24_576);
}

macro_rules! gathers {
    ($($name:ident: ($parts:expr, $bytes:expr) => $gather:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(should_gather($parts, $bytes), $gather);
        }
    )*};
}

gathers! {
    gather_three_small_parts: (3, 100) => true;
    gather_up_to_the_buffer: (8, GATHER_BYTES) => true;
    no_gather_past_the_buffer: (8, GATHER_BYTES + 1) => false;
    no_gather_for_one_response: (2, 100) => false;
}

macro_rules! endings {
    ($($name:ident: ($now:expr, $eof:expr, $lingering:expr, $deadline:expr) => $end:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(ending($now, $eof, $lingering, $deadline), $end);
        }
    )*};
}

endings! {
    end_by_lingering: (100, false, false, None) => Ending::Linger { until_ms: 100 + LINGER_MS };
    end_now_after_the_peer_closed: (100, true, false, None) => Ending::Now;
    end_now_when_already_lingering: (100, false, true, None) => Ending::Now;
    end_lingering_no_later_than_shutdown: (100, false, false, Some(150)) => Ending::Linger { until_ms: 150 };
    end_now_at_the_shutdown_deadline: (150, false, false, Some(150)) => Ending::Now;
}

const CFG: ConnConfig = ConnConfig {
    header_timeout_ms: 100,
    body_timeout_ms: 100,
    idle_timeout_ms: 1000,
    max_pipeline: 8,
};

/// A connection with `n` ready responses, each `(head, body)` from `RESPONSES`.
const RESPONSES: [(&[u8], &[u8]); 3] = [(b"H1", b"body1"), (b"H22", b""), (b"H333", b"b3")];

fn ready(n: usize) -> Conn<usize> {
    let mut c = Conn::new(CFG, 0);
    for i in 0..n {
        let seq = c.begin_request(0, true, false).unwrap();
        c.complete(0, seq, i, false).unwrap();
    }
    c
}

fn split<'a>(i: &usize) -> [&'a [u8]; 2] {
    let (h, b) = RESPONSES[*i];
    [h, b]
}

fn len(i: &usize) -> usize {
    RESPONSES[*i].0.len() + RESPONSES[*i].1.len()
}

fn unwritten(c: &Conn<usize>, room: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    c.unwritten(split, |p| {
        parts.push(p);
        parts.len() + 2 <= room
    });
    parts
}

#[test]
fn unwritten_parts_skip_empty_bodies() {
    let c = ready(3);
    assert_eq!(
        unwritten(&c, 64),
        [&b"H1"[..], b"body1", b"H22", b"H333", b"b3"]
    );
}

#[test]
fn unwritten_parts_stop_when_there_is_no_room_for_another_response() {
    let c = ready(3);
    assert_eq!(unwritten(&c, 3), [&b"H1"[..], b"body1"]);
    assert_eq!(unwritten(&c, 4), [&b"H1"[..], b"body1", b"H22"]);
}

#[test]
fn a_partial_write_leaves_the_front_response_queued() {
    let mut c = ready(3);
    let mut done = Vec::new();
    c.wrote(1, 4, len, |o| done.push(o));
    assert!(done.is_empty());
    assert_eq!(c.written(), 4);
    assert_eq!(unwritten(&c, 64)[..2], [&b"dy1"[..], b"H22"]);
}

#[test]
fn a_write_across_responses_completes_them_in_order() {
    let mut c = ready(3);
    let mut done = Vec::new();
    c.wrote(1, 7 + 3 + 1, len, |o| done.push(o));
    assert_eq!(done, [0, 1]);
    assert_eq!(c.written(), 1);
    assert_eq!(unwritten(&c, 64), [&b"333"[..], b"b3"]);
    c.wrote(2, 5, len, |o| done.push(o));
    assert_eq!(done, [0, 1, 2]);
    assert_eq!((c.written(), c.in_flight()), (0, 0));
}

#[test]
fn a_response_not_ready_stops_the_accounting() {
    let mut c = Conn::new(CFG, 0);
    let a = c.begin_request(0, true, false).unwrap();
    let _b = c.begin_request(0, true, false).unwrap();
    c.complete(0, a, 0usize, false).unwrap();
    let mut done = Vec::new();
    c.wrote(1, 7, len, |o| done.push(o));
    assert_eq!(done, [0]);
    assert!(
        unwritten(&c, 64).is_empty(),
        "the second is still at a runner"
    );
}

// The socket's side of the machine: what a read means, whether to read, how it ends.

use httpd_runner_core::conn::input::Input;
use httpd_runner_core::conn::{AfterRead, ReadOutcome};

fn fresh() -> Conn<usize> {
    Conn::new(CFG, 0)
}

const STOP: AfterRead = AfterRead::Stop {
    drop_body: false,
    reset: false,
};

#[test]
fn a_short_read_drains_the_socket() {
    let mut c = fresh();
    assert!(c.should_read(false, false, false), "a new connection reads");
    assert_eq!(c.on_read(ReadOutcome::Bytes(10), 100), AfterRead::Got(10));
    assert!(
        !c.should_read(false, false, false),
        "no read until the next event"
    );
    c.on_readable(false);
    assert!(c.should_read(false, false, false));
}

#[test]
fn a_full_read_keeps_reading() {
    let mut c = fresh();
    assert_eq!(c.on_read(ReadOutcome::Bytes(100), 100), AfterRead::Got(100));
    assert!(c.should_read(false, false, false));
}

#[test]
fn after_a_fin_a_short_read_reads_on_to_the_eof() {
    let mut c = fresh();
    c.on_readable(true);
    assert_eq!(c.on_read(ReadOutcome::Bytes(10), 100), AfterRead::Got(10));
    assert!(c.should_read(false, false, false), "the EOF is read next");
    assert_eq!(c.on_read(ReadOutcome::Eof, 100), STOP);
    assert!(!c.should_read(false, false, false));
    assert!(c.should_close(), "nothing owed: closes now");
}

#[test]
fn eof_while_a_body_arrives_drops_that_request() {
    let mut c = fresh();
    c.begin_request(0, true, true).unwrap();
    assert_eq!(
        c.on_read(ReadOutcome::Eof, 100),
        AfterRead::Stop {
            drop_body: true,
            reset: false
        }
    );
    assert_eq!(c.in_flight(), 0);
    assert!(c.should_close());
}

#[test]
fn eof_after_a_whole_request_answers_it_first() {
    let mut c = fresh();
    c.begin_request(0, true, false).unwrap();
    assert_eq!(
        c.on_read(ReadOutcome::Bytes(0), 100),
        STOP,
        "0 bytes is EOF"
    );
    assert!(!c.should_close(), "its response is still owed");
}

#[test]
fn would_block_waits_for_the_next_event() {
    let mut c = fresh();
    assert_eq!(c.on_read(ReadOutcome::WouldBlock, 100), STOP);
    assert!(!c.should_read(false, false, false));
    assert!(!c.should_close());
}

#[test]
fn an_interrupted_read_is_made_again() {
    let mut c = fresh();
    assert_eq!(c.on_read(ReadOutcome::Interrupted, 100), AfterRead::Again);
    assert!(c.should_read(false, false, false));
}

#[test]
fn a_reset_closes_now_with_everything_in_flight() {
    let mut c = fresh();
    c.begin_request(0, true, false).unwrap();
    assert_eq!(
        c.on_read(ReadOutcome::Reset, 100),
        AfterRead::Stop {
            drop_body: false,
            reset: true
        }
    );
    assert!(c.should_close());
}

#[test]
fn spilled_input_is_read_without_a_socket_event() {
    let mut c = fresh();
    c.on_read(ReadOutcome::WouldBlock, 100);
    assert!(c.should_read(true, false, false));
}

#[test]
fn a_queued_or_blocked_connection_reads_only_its_body() {
    let mut c = fresh();
    assert!(!c.should_read(false, false, true), "queued");
    c.write_drained(false);
    assert!(c.write_blocked());
    assert!(
        !c.should_read(false, false, false),
        "its client does not read"
    );
    assert!(
        c.should_read(false, true, false),
        "but a body keeps arriving"
    );
    c.write_drained(true);
    assert!(c.should_read(false, false, false));
}

#[test]
fn input_is_taken_head_by_head_and_guessed_after_two_alike() {
    let mut c = fresh();
    c.input_ends_at(600);
    assert_eq!(c.input(), Input { start: 0, end: 600 });
    c.head_taken(100, Framing::Length(300), 1000);
    assert_eq!(c.input().start, 100);
    assert_eq!(c.guess(false, false), None, "one head is no pattern");
    c.consumed(300);
    c.head_taken(100, Framing::Length(300), 1000);
    assert_eq!(c.input().start, 500);
    c.discard_input();
    assert!(c.input().is_empty());
    assert_eq!(c.make_room(1000), None);
    let g = c.guess(false, false).expect("two heads alike");
    assert_eq!((g.head, g.body), (100, 300));
    assert_eq!(c.guess(true, false), None, "not while a body arrives");
    assert_eq!(
        c.guess(false, true),
        None,
        "not while others wait for a slot"
    );
}

#[test]
fn a_head_after_a_large_body_is_read_short() {
    let mut c = fresh();
    c.input_ends_at(50);
    c.head_taken(50, Framing::Length(70_000), 1000);
    c.make_room(1000);
    assert_eq!(
        c.next_read(1000, false, None),
        httpd_runner_core::conn::input::ReadKind::Buffer {
            to: HEAD_READ_AFTER_LARGE_BODY_BYTES.min(1000)
        }
    );
}

#[test]
fn a_partial_head_waits_for_bytes_before_a_turn_after_a_write() {
    let mut c = fresh();
    c.input_ends_at(10);
    c.on_read(ReadOutcome::WouldBlock, 100);
    c.head_partial(1);
    assert!(
        !c.retry_after_write(false, false),
        "nothing parses until bytes arrive"
    );
    c.input_ends_at(20);
    assert!(c.retry_after_write(false, false));
}

#[test]
fn the_end_lingers_once_and_then_closes() {
    let mut c = fresh();
    assert_eq!(
        c.end(10, None),
        Ending::Linger {
            until_ms: 10 + LINGER_MS
        }
    );
    assert_eq!(c.lingering(), Some(10 + LINGER_MS));
    assert_eq!(c.end(20, None), Ending::Now);
}

#[test]
fn the_end_is_at_once_after_the_peer_closed() {
    let mut c = fresh();
    c.on_read(ReadOutcome::Eof, 100);
    assert_eq!(c.end(10, None), Ending::Now);
    assert_eq!(c.lingering(), None);
}

#[test]
fn a_connection_with_nothing_under_way_is_quiet() {
    let mut c = fresh();
    assert!(c.is_quiet(false));
    assert!(!c.is_quiet(true), "a body arrives");
    c.input_ends_at(5);
    assert!(!c.is_quiet(false), "bytes are buffered");
}
