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
    let refused = slot.refuse_truncated();
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
