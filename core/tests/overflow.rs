//! Bodies that outgrow their buffer: every write is all or nothing, and a runner's response
//! that overflowed while it still says success is never sent truncated.

use core::fmt::Write;

use httpd_runner_core::msg::Slot;
use httpd_runner_core::text::FixedBuf;

#[test]
fn bytes_that_do_not_fit_leave_the_buffer_as_it_was() {
    let mut store = [0u8; 8];
    let mut b = FixedBuf::new(&mut store);
    b.extend_from_slice(b"abcde").unwrap();
    assert!(b.extend_from_slice(b"fghij").is_err());
    assert_eq!(b.as_slice(), b"abcde");
    assert!(b.overflowed());
}

#[test]
fn a_formatted_write_that_does_not_fit_leaves_none_of_its_pieces() {
    let mut store = [0u8; 16];
    let mut b = FixedBuf::new(&mut store);
    write!(b, "n={}", 7).unwrap();
    assert!(!b.overflowed());
    // Its first pieces would fit; the whole does not.
    let name = "a-long-name";
    assert!(write!(b, ", id={}, name={name}", 123_456).is_err());
    assert_eq!(b.as_slice(), b"n=7");
    assert!(b.overflowed());
}

#[test]
fn a_number_that_does_not_fit_leaves_no_digits() {
    let mut store = [0u8; 4];
    let mut b = FixedBuf::new(&mut store);
    b.extend_from_slice(b"x").unwrap();
    assert!(b.push_decimal(123_456).is_err());
    assert_eq!(b.as_slice(), b"x");
    assert!(b.overflowed());
}

#[test]
fn clearing_forgets_the_overflow() {
    let mut store = [0u8; 2];
    let mut b = FixedBuf::new(&mut store);
    assert!(b.extend_from_slice(b"abc").is_err());
    b.clear();
    assert!(!b.overflowed());
}

fn slot_run(status: u16, body: &[u8], reset_after: bool) -> (u16, Vec<u8>, bool) {
    let (mut head, mut req_body, mut resp_body) = ([0u8; 64], [0u8; 64], [0u8; 48]);
    let mut slot = Slot::new(&mut head, &mut req_body, &mut resp_body);
    slot.serve(|_, resp| {
        resp.set_status(status);
        let _ = resp.write(body);
        if reset_after {
            resp.reset();
            resp.set_status(507);
        }
    });
    let refused = slot.refuse_truncated(false);
    (
        slot.response.status(),
        slot.response_body().to_vec(),
        refused,
    )
}

#[test]
fn an_ignored_overflow_under_200_becomes_a_500() {
    let (status, body, refused) = slot_run(200, &[b'x'; 100], false);
    assert!(refused);
    assert_eq!(status, 500);
    assert_eq!(body, b"response body over the limit\n");
}

#[test]
fn a_body_that_fits_is_kept() {
    assert_eq!(
        slot_run(200, b"hello", false),
        (200, b"hello".to_vec(), false)
    );
}

#[test]
fn a_runner_that_answers_another_status_keeps_it() {
    let (status, _, refused) = slot_run(200, &[b'x'; 100], true);
    assert!(!refused);
    assert_eq!(status, 507);
}

#[test]
fn an_overflow_under_an_error_status_is_left_alone() {
    let (status, _, refused) = slot_run(503, &[b'x'; 100], false);
    assert!(!refused);
    assert_eq!(status, 503);
}

#[test]
fn a_write_past_the_capacity_grows_into_the_reserve_once() {
    let (mut small, mut large) = ([0u8; 4], [0u8; 16]);
    let mut b = FixedBuf::new(&mut small);
    assert!(!b.can_grow());
    assert!(b.offer(&mut large).is_none());
    assert!(b.can_grow());
    b.extend_from_slice(b"abc").unwrap();
    assert!(!b.grown(), "a write that fits does not grow");
    write!(b, "{}", 12_345_678).unwrap();
    assert!(b.grown());
    assert_eq!(b.as_slice(), b"abc12345678");
    assert_eq!(b.capacity(), 16);
    assert!(b.take_offer().is_none(), "the reserve is in use");
    assert!(
        b.extend_from_slice(b"0123456789").is_err(),
        "past the reserve"
    );
    assert_eq!(b.as_slice(), b"abc12345678");
    let mut other = [0u8; 32];
    assert!(
        b.offer(&mut other).is_some(),
        "a grown buffer takes no second offer"
    );
    let back = b.take_grown().expect("grown");
    assert_eq!(back.len(), 16);
    assert_eq!((b.capacity(), b.len(), b.grown()), (4, 0, false));
    assert!(b.take_grown().is_none());
}

#[test]
fn an_unused_reserve_comes_back_and_spare_room_can_be_asked_for() {
    let (mut small, mut large) = ([0u8; 4], [0u8; 8]);
    let mut b = FixedBuf::new(&mut small);
    b.offer(&mut large);
    b.extend_from_slice(b"ab").unwrap();
    assert_eq!(b.take_offer().map(|r| r.len()), Some(8));
    assert!(b.reserve(3).is_err(), "no reserve left");
    let mut large = [0u8; 8];
    b.offer(&mut large);
    b.reserve(6).unwrap();
    assert!(b.grown());
    b.spare_mut()[..6].copy_from_slice(b"cdefgh");
    b.advance(6);
    assert_eq!(b.as_slice(), b"abcdefgh");
    assert!(b.reserve(1).is_err());
    assert!(b.overflowed());
}

#[test]
fn a_response_short_of_a_spare_is_a_503_to_retry_and_a_grown_one_is_whole() {
    let (mut head, mut req_body, mut resp_body) = ([0u8; 64], [0u8; 64], [0u8; 8]);
    let mut slot = Slot::new(&mut head, &mut req_body, &mut resp_body);
    slot.serve(|_, resp| {
        let _ = resp.write(&[b'x'; 20]);
    });
    assert!(slot.refuse_truncated(true));
    assert_eq!(slot.response.status(), 503);
    assert!(slot
        .response
        .header_lines()
        .as_bytes()
        .windows(14)
        .any(|w| w == b"Retry-After: 1"));

    let mut spare = [0u8; 32];
    assert!(slot.offer_response_reserve(&mut spare).is_none());
    slot.serve(|_, resp| {
        let _ = resp.write(&[b'y'; 20]);
    });
    assert!(!slot.refuse_truncated(false));
    assert!(slot.take_response_offer().is_none(), "in use");
    assert_eq!(slot.response_body(), &[b'y'; 20][..]);
    assert_eq!(slot.take_grown_response().map(|b| b.len()), Some(32));
    assert_eq!(slot.response_capacity(), 8);
}

#[test]
fn a_request_moves_whole_into_a_larger_slot() {
    use httpd_runner_core::parse::{header_slots, parse_head, Status};
    let raw = b"POST /run/k?q=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut fields = header_slots();
    let limits = httpd_runner_core::limits::Limits::DEFAULT;
    let Ok(Status::Complete(h)) = parse_head(raw, &mut fields, &limits) else {
        panic!("head parses");
    };
    let (mut head, mut body, mut resp) = ([0u8; 128], [0u8; 4], [0u8; 8]);
    let mut small = Slot::new(&mut head, &mut body, &mut resp);
    small.request.load(&h, raw, Some(&raw[10..11])).unwrap();
    small.request.body.extend_from_slice(b"abcd").unwrap();
    small.ticket.seq = 7;
    let (mut head2, mut body2, mut resp2) = ([0u8; 128], [0u8; 64], [0u8; 8]);
    let mut large = Slot::new(&mut head2, &mut body2, &mut resp2);
    let (mut head3, mut body3, mut resp3) = ([0u8; 16], [0u8; 64], [0u8; 8]);
    let mut tiny_head = Slot::new(&mut head3, &mut body3, &mut resp3);
    assert!(
        small.move_request_into(&mut tiny_head).is_err(),
        "head does not fit"
    );
    small.move_request_into(&mut large).unwrap();
    assert_eq!(small.request.body.len(), 0, "the small slot is left reset");
    large.request.body.extend_from_slice(b"efgh").unwrap();
    let r = large.request.view();
    assert_eq!(
        (r.path(), r.query(), r.key()),
        ("/run/k", Some("q=1"), Some(&b"k"[..]))
    );
    assert_eq!(r.header("host"), Some(&b"a"[..]));
    assert_eq!(r.body(), b"abcdefgh");
    assert_eq!(large.ticket.seq, 7);
}
