//! The read side's decisions: room in the buffer, which read comes next, whether a read
//! drained the socket, whether a guessed read stands, and whether a connection wants input
//! or queues for a slot. One named test per case.

use httpd_runner_core::conn::input::{
    drained, joins_slot_queue, may_guess, next_read, Input, ReadKind, Wants,
};
use httpd_runner_core::parse::Framing;
use httpd_runner_core::place::{Guess, Plan};

const LEN: usize = 100;

fn input(start: usize, end: usize) -> Input {
    Input { start, end }
}

#[test]
fn an_emptied_buffer_starts_over_at_its_front() {
    let mut i = input(40, 40);
    assert_eq!(i.make_room(LEN), None);
    assert_eq!(i, input(0, 0));
}

#[test]
fn a_full_buffer_moves_its_rest_to_the_front() {
    let mut i = input(30, LEN);
    assert_eq!(i.make_room(LEN), Some(30..LEN));
    assert_eq!(i, input(0, 70));
}

#[test]
fn a_buffer_with_room_at_its_end_stays() {
    let mut i = input(30, 60);
    assert_eq!(i.make_room(LEN), None);
    assert_eq!(i, input(30, 60));
}

#[test]
fn a_full_buffer_from_its_front_has_no_room() {
    let mut i = input(0, LEN);
    assert_eq!(i.make_room(LEN), None);
    assert_eq!(next_read(i, LEN, LEN, false, None), ReadKind::Full);
}

macro_rules! reads {
    ($($name:ident: ($start:expr, $end:expr, $head_read:expr, $planned:expr, $direct:expr) => $kind:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(next_read(input($start, $end), LEN, $head_read, $planned, $direct), $kind);
        }
    )*};
}

reads! {
    read_on_a_guess_into_an_empty_buffer: (0, 0, LEN, true, None) => ReadKind::Guess;
    read_no_guess_with_input_buffered: (0, 10, LEN, true, None) => ReadKind::Buffer { to: LEN };
    read_a_body_straight_into_its_slot: (0, 0, LEN, false, Some(500)) => ReadKind::Direct { body: 500 };
    read_a_body_into_the_buffer_behind_input: (0, 10, LEN, false, Some(500)) => ReadKind::Buffer { to: LEN };
    read_a_short_head_after_a_large_body: (0, 0, 40, false, None) => ReadKind::Buffer { to: 40 };
    read_at_least_a_byte: (0, 0, 0, false, None) => ReadKind::Buffer { to: 1 };
    read_the_rest_of_a_partly_filled_buffer: (20, 50, 40, false, None) => ReadKind::Buffer { to: LEN };
}

macro_rules! guesses {
    ($($name:ident: ($end:expr, $body:expr, $waiters:expr) => $may:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(may_guess(input(0, $end), $body, $waiters), $may);
        }
    )*};
}

guesses! {
    guess_into_an_empty_buffer: (0, false, false) => true;
    guess_not_with_input_buffered: (5, false, false) => false;
    guess_not_while_a_body_arrives: (0, true, false) => false;
    guess_not_while_others_wait_for_a_slot: (0, false, true) => false;
}

macro_rules! drains {
    ($($name:ident: ($n:expr, $asked:expr, $fin:expr) => $drained:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(drained($n, $asked, $fin), $drained);
        }
    )*};
}

drains! {
    a_short_read_drains: (10, 100, false) => true;
    a_full_read_may_leave_more: (100, 100, false) => false;
    a_short_read_after_a_fin_reads_the_eof_next: (10, 100, true) => false;
}

#[test]
fn a_guess_stands_for_a_head_of_its_length_announcing_its_body() {
    let g = Guess {
        head: 50,
        body: 300,
    };
    let plan = Plan::new(g, 1000, 4096).expect("a plan");
    let spot = plan.spot(50 + 300).expect("a spot");
    assert!(spot.confirmed_by(50, Framing::Length(300)));
    assert!(
        spot.confirmed_by(50, Framing::Length(5000)),
        "more body to come"
    );
    assert!(
        !spot.confirmed_by(51, Framing::Length(300)),
        "another head length"
    );
    assert!(
        !spot.confirmed_by(50, Framing::Length(299)),
        "less body than read"
    );
    assert!(!spot.confirmed_by(50, Framing::Chunked));
    assert!(!spot.confirmed_by(50, Framing::None));
}

fn wants(body: bool, accepts: bool, queued: bool, blocked: bool) -> Wants {
    Wants {
        body_under_way: body,
        accepts_requests: accepts,
        queued,
        write_blocked: blocked,
    }
}

macro_rules! wanting {
    ($($name:ident: ($body:expr, $accepts:expr, $queued:expr, $blocked:expr) => $input:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(wants($body, $accepts, $queued, $blocked).input(), $input);
        }
    )*};
}

wanting! {
    wants_input_for_its_next_request: (false, true, false, false) => true;
    wants_its_body_whatever_else: (true, false, true, true) => true;
    wants_nothing_at_its_pipelining_bound: (false, false, false, false) => false;
    wants_nothing_while_queued: (false, true, true, false) => false;
    wants_nothing_while_its_client_does_not_read: (false, true, false, true) => false;
}

#[test]
fn after_a_write_a_connection_with_input_gets_a_turn() {
    assert!(wants(false, true, false, false).retry_after_write(true));
    assert!(!wants(false, true, false, false).retry_after_write(false));
    assert!(!wants(false, false, false, false).retry_after_write(true));
    assert!(!wants(false, true, true, false).retry_after_write(true));
    assert!(!wants(false, true, false, true).retry_after_write(true));
}

macro_rules! queueing {
    ($($name:ident: ($retrying:expr, $queued:expr, $body:expr, $waiting:expr, $free:expr) => $joins:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(joins_slot_queue($retrying, $queued, $body, $waiting, $free), $joins);
        }
    )*};
}

queueing! {
    a_newcomer_joins_the_queue_when_waiters_take_every_free_slot: (false, false, false, 3, 3) => true;
    a_newcomer_reads_when_slots_outnumber_waiters: (false, false, false, 2, 3) => false;
    nobody_waiting_means_no_queue: (false, false, false, 0, 0) => false;
    a_connection_served_from_the_queue_reads: (true, false, false, 5, 0) => false;
    a_queued_connection_is_not_queued_twice: (false, true, false, 5, 0) => false;
    a_body_in_progress_keeps_reading: (false, false, true, 5, 0) => false;
}
