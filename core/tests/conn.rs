//! The connection state machine, driven by events with explicit times.

use httpd_runner_core::conn::{Conn, ConnConfig, Phase, Timeout};

const CFG: ConnConfig = ConnConfig {
    header_timeout_ms: 100,
    body_timeout_ms: 50,
    idle_timeout_ms: 1000,
    max_pipeline: 3,
};

#[test]
fn header_deadline_runs_from_accept_and_is_not_extended_by_trickling() {
    let mut c = Conn::<u8>::new(CFG, 0);
    for t in (10..100).step_by(10) {
        c.on_data(t);
        assert_eq!(c.tick(t), None, "t={t}");
    }
    assert_eq!(c.tick(100), Some(Timeout::Head));
    assert!(Timeout::Head.answers_408());
    c.fail(100, 0);
    assert!(!c.should_close(), "the 408 must be written first");
    assert_eq!(c.ready().count(), 1);
    assert_eq!(c.pop_written(101), Some(0));
    assert!(c.should_close());
}

#[test]
fn header_deadline_starts_at_the_first_byte_after_idle() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let seq = c.begin_request(10, true, false).unwrap();
    c.complete(11, seq, 1, false).unwrap();
    c.pop_written(12);
    assert_eq!(c.phase(), Phase::Idle);
    assert_eq!(c.tick(500), None, "idle, before the idle timeout");
    c.on_data(900);
    assert_eq!(c.phase(), Phase::Head);
    assert_eq!(c.tick(999), None);
    assert_eq!(c.tick(1000), Some(Timeout::Head));
}

#[test]
fn body_timeout_is_per_stall() {
    let mut c = Conn::<u8>::new(CFG, 0);
    c.begin_request(0, true, true).unwrap();
    for t in (40..400).step_by(40) {
        c.on_data(t);
        assert_eq!(c.tick(t + 10), None);
    }
    assert_eq!(c.tick(360 + 50), Some(Timeout::Body));
}

#[test]
fn idle_timeout_closes_without_response() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, true, false).unwrap();
    c.complete(1, s, 1, false).unwrap();
    c.pop_written(2);
    assert_eq!(c.tick(1001), None);
    assert_eq!(c.tick(1002), Some(Timeout::Idle));
    assert!(!Timeout::Idle.answers_408());
    assert!(c.should_close());
}

#[test]
fn no_idle_timeout_while_a_runner_works() {
    let mut c = Conn::<u8>::new(CFG, 0);
    c.begin_request(0, true, false).unwrap();
    assert_eq!(c.tick(10_000), None);
}

#[test]
fn responses_leave_in_request_order() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let a = c.begin_request(0, true, false).unwrap();
    let b = c.begin_request(0, true, false).unwrap();
    let d = c.begin_request(0, true, false).unwrap();
    assert!(!c.accepts_requests(), "pipelining bound reached");
    c.complete(1, d, 3, false).unwrap();
    c.complete(1, b, 2, false).unwrap();
    assert_eq!(c.ready().count(), 0, "the first is not ready yet");
    c.complete(2, a, 1, false).unwrap();
    assert_eq!(c.ready().map(|p| *p).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(c.pop_written(3), Some(1));
    assert!(c.accepts_requests());
    assert_eq!(
        c.complete(3, a, 9, false),
        Err(9),
        "stale completion is handed back"
    );
}

#[test]
fn connection_close_stops_reading_and_closes_after_the_response() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, false, false).unwrap();
    assert!(!c.accepts_requests());
    assert!(c.closes_after(s));
    assert!(!c.should_close());
    c.complete(1, s, 7, false).unwrap();
    assert_eq!(c.pop_written(2), Some(7));
    assert!(c.should_close());
}

#[test]
fn keep_alive_response_does_not_say_close() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, true, false).unwrap();
    assert!(!c.closes_after(s));
}

#[test]
fn failure_after_pipelined_requests_comes_last() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let a = c.begin_request(0, true, false).unwrap();
    c.fail(0, 40);
    assert!(!c.accepts_requests());
    assert_eq!(
        c.ready().count(),
        0,
        "the 400 waits for the earlier response"
    );
    c.complete(1, a, 1, false).unwrap();
    assert_eq!(c.ready().map(|p| *p).collect::<Vec<_>>(), vec![1, 40]);
    c.pop_written(2);
    assert!(!c.should_close());
    c.pop_written(3);
    assert!(c.should_close());
}

#[test]
fn body_failure_answers_in_its_own_place() {
    let mut c = Conn::<u8>::new(CFG, 0);
    c.begin_request(0, true, true).unwrap();
    c.fail(5, 13);
    assert_eq!(c.in_flight(), 1);
    assert_eq!(c.pop_written(6), Some(13));
    assert!(c.should_close());
}

#[test]
fn write_stall_times_out() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, true, false).unwrap();
    c.complete(10, s, 1, false).unwrap();
    c.write_progress(500);
    assert_eq!(c.tick(1400), None);
    assert_eq!(c.tick(1500), Some(Timeout::Write));
    assert!(c.should_close());
}

#[test]
fn shutdown_closes_idle_at_once_and_busy_after_in_flight() {
    let mut idle = Conn::<u8>::new(CFG, 0);
    idle.shutdown();
    assert!(idle.should_close());
    let mut busy = Conn::<u8>::new(CFG, 0);
    let s = busy.begin_request(0, true, false).unwrap();
    busy.shutdown();
    assert!(!busy.should_close());
    assert!(busy.closes_after(s), "last response before close says so");
    busy.complete(1, s, 1, false).unwrap();
    busy.pop_written(2);
    assert!(busy.should_close());
}

#[test]
fn at_shutdown_a_fresh_connection_waits_a_grace_for_its_first_request() {
    use httpd_runner_core::limits::FIRST_REQUEST_GRACE_MS as GRACE;
    let fresh = Conn::<u8>::new(CFG, 0);
    assert!(fresh.is_fresh());
    // Shutdown started at 1000: kept until the grace has passed.
    assert!(!fresh.closes_at_shutdown(1000, 1000));
    assert!(!fresh.closes_at_shutdown(1000, 1000 + GRACE - 1));
    assert!(fresh.closes_at_shutdown(1000, 1000 + GRACE));
    // A connection that has had a request is idle keep-alive: it closes at once.
    let mut used = Conn::<u8>::new(CFG, 0);
    let s = used.begin_request(0, true, false).unwrap();
    used.complete(1, s, 1, false).unwrap();
    used.pop_written(2);
    assert!(!used.is_fresh());
    assert!(used.closes_at_shutdown(1000, 1000));
}

#[test]
fn peer_close_answers_what_is_in_flight() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, true, false).unwrap();
    assert!(!c.peer_closed(), "a complete request is not abandoned");
    assert!(!c.should_close());
    c.complete(1, s, 1, false).unwrap();
    c.pop_written(2);
    assert!(c.should_close());
}

#[test]
fn peer_close_mid_body_drops_that_request_and_closes_at_once() {
    // The body never arrives: the request is dropped (its slot freed by the shell), and
    // with nothing else in flight the connection closes now, not at some timeout.
    let mut c = Conn::<u8>::new(CFG, 0);
    c.begin_request(0, true, true).unwrap();
    assert_eq!(c.phase(), Phase::Body);
    assert!(c.peer_closed(), "the half-received request is abandoned");
    assert_eq!(c.in_flight(), 0);
    assert!(c.should_close());
    assert_eq!(c.tick(1_000_000), None, "nothing left to time out");

    // Requests read before it are still answered, in order, then the connection closes.
    let mut c = Conn::<u8>::new(CFG, 0);
    let first = c.begin_request(0, true, false).unwrap();
    c.begin_request(0, true, true).unwrap();
    assert!(c.peer_closed());
    assert_eq!(c.in_flight(), 1);
    assert!(!c.should_close());
    c.complete(1, first, 7, false).unwrap();
    assert_eq!(c.pop_written(2), Some(7));
    assert!(c.should_close());
}

#[test]
fn peer_close_mid_head_closes_at_once() {
    let mut c = Conn::<u8>::new(CFG, 0);
    c.on_data(5);
    assert!(!c.peer_closed());
    assert!(c.should_close());
}

#[test]
fn peer_reset_closes_now_whatever_is_in_flight() {
    let mut c = Conn::<u8>::new(CFG, 0);
    let s = c.begin_request(0, true, false).unwrap();
    c.begin_request(0, true, true).unwrap();
    c.peer_reset();
    assert!(c.should_close());
    assert!(!c.accepts_requests());
    // A runner's late answer is refused or dropped by the shell; nothing panics.
    let _ = c.complete(1, s, 1, false);
    assert_eq!(c.tick(1_000_000), None);
}

#[test]
fn one_request_at_a_time_reuses_the_queue_entry() {
    // With many connections each queue entry touched is a cache miss: a connection that
    // empties its queue starts over at the first entry instead of walking all of them.
    let mut c = Conn::<u8>::new(CFG, 0);
    let mut places = Vec::new();
    for i in 0..5u8 {
        let seq = c.begin_request(0, true, false).unwrap();
        c.complete(0, seq, i, false).unwrap();
        let front = c.ready().next().expect("ready") as *const u8;
        places.push(front as usize);
        assert_eq!(c.pop_written(0), Some(i));
    }
    assert!(places.iter().all(|&p| p == places[0]), "{places:?}");
    // With two in flight the second entry is used, and the queue still restarts once empty.
    let a = c.begin_request(0, true, false).unwrap();
    let b = c.begin_request(0, true, false).unwrap();
    c.complete(0, a, 1, false).unwrap();
    c.complete(0, b, 2, false).unwrap();
    let fronts: Vec<usize> = c.ready().map(|p| p as *const u8 as usize).collect();
    assert_eq!(fronts.len(), 2);
    assert_eq!(fronts[0], places[0]);
    assert_ne!(fronts[1], places[0]);
    assert_eq!((c.pop_written(0), c.pop_written(0)), (Some(1), Some(2)));
    let seq = c.begin_request(0, true, false).unwrap();
    c.complete(0, seq, 3, false).unwrap();
    assert_eq!(
        c.ready().next().map(|p| p as *const u8 as usize),
        Some(places[0])
    );
}

/// A deadline passes while the runner holds the request: the server's 504 takes the
/// request's place in order, the pipeline behind it goes on, and the runner's answer, when it
/// comes back, is handed back instead of queued (`deadline`'s protocol, as the handler runs
/// it with its `Watchlist`).
#[test]
fn an_answer_after_its_deadline_is_handed_back_and_order_holds() {
    use httpd_runner_core::deadline::{Watch, Watchlist};
    let mut c: Conn<&str> = Conn::new(ConnConfig::default(), 0);
    let slow = c.begin_request(0, true, false).unwrap();
    let quick = c.begin_request(0, true, false).unwrap();
    let mut watch = Watchlist::new([Watch::FREE; 2]);
    watch.arm(
        0,
        Watch {
            due_us: 20_000,
            conn: 0,
            generation: 1,
            seq: slow,
            head_only: false,
            fired: false,
        },
    );
    c.complete(1, quick, "quick", false).unwrap();
    assert_eq!(c.ready().count(), 0, "the slow one is first");
    let mut fired = None;
    watch.fire(20_000, |w| fired = Some(w.seq));
    assert_eq!(fired, Some(slow));
    c.complete(20, slow, "504", false).unwrap();
    let ready: Vec<&str> = c.ready().map(|s| *s).collect();
    assert_eq!(ready, ["504", "quick"], "in request order");
    assert_eq!(c.pop_written(21), Some("504"));
    // The runner finishes later: its answer is refused, and its slot knows it fired.
    assert_eq!(c.complete(200, slow, "late", false), Err("late"));
    assert_eq!(watch.disarm(0), Some(true));
    assert_eq!(c.pop_written(201), Some("quick"));
    assert!(!c.should_close(), "the connection goes on");
}
