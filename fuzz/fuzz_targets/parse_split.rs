//! The parser fed the same bytes in arbitrary pieces reaches the same outcome as when fed
//! them whole: each prefix is Partial until the whole head is there, or fails the same way.
#![no_main]
use httpd_runner_core::limits::Limits;
use httpd_runner_core::parse::{header_slots, parse_head, Error, Status};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Outcome {
    Partial,
    Done(usize, String, usize),
    Failed(Error),
}

fn outcome(data: &[u8], limits: &Limits) -> Outcome {
    let mut headers = header_slots();
    match parse_head(data, &mut headers, limits) {
        Ok(Status::Partial) => Outcome::Partial,
        Ok(Status::Complete(h)) => Outcome::Done(h.head_len, h.path.to_owned(), h.headers.len()),
        Err(e) => Outcome::Failed(e),
    }
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let limits = Limits {
        max_head_bytes: 2048,
        max_target_bytes: 512,
        max_body_bytes: 4096,
    };
    let whole = outcome(&data, &limits);
    // Grow the buffer piece by piece, as reads would, re-parsing from the start each time.
    let mut end = 0;
    let mut cuts = cuts.into_iter();
    loop {
        end = (end + usize::from(cuts.next().unwrap_or(255)).max(1)).min(data.len());
        let got = outcome(&data[..end], &limits);
        match (&got, &whole) {
            (Outcome::Partial, _) if end < data.len() => {}
            (Outcome::Done(n, ..), Outcome::Done(m, ..)) => {
                assert_eq!(
                    got, whole,
                    "a complete head parses the same from any longer prefix"
                );
                assert!(n == m);
                break;
            }
            (Outcome::Failed(_), _) => {
                // An error on a prefix must also be an error on the whole.
                assert!(
                    matches!(whole, Outcome::Failed(_)),
                    "{got:?} on a prefix, {whole:?} whole"
                );
                break;
            }
            _ => {
                assert_eq!(got, whole);
                break;
            }
        }
    }
});
