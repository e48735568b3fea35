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
