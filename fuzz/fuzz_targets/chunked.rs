//! The chunked decoder on arbitrary bytes in arbitrary pieces: no panic, never writes past the
//! limit, consumes what it is given at most, and decodes the same whatever the pieces.
#![no_main]
use httpd_runner_core::parse::{ChunkedDecoder, Error};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 256;

fn decode(data: &[u8], pieces: &[u8]) -> Result<(Vec<u8>, usize, bool), Error> {
    let mut d = ChunkedDecoder::new(MAX);
    let mut body = [0u8; MAX];
    let (mut filled, mut at, mut end) = (0, 0, 0);
    let mut pieces = pieces.iter().copied();
    while end < data.len() && !d.is_done() {
        end = (end + usize::from(pieces.next().unwrap_or(64)).max(1)).min(data.len());
        let p = d.decode(&data[at..end], &mut body[filled..])?;
        assert!(p.consumed <= end - at);
        at += p.consumed;
        filled += p.produced;
        assert!(filled <= MAX && filled == d.total());
    }
    Ok((body[..filled].to_vec(), at, d.is_done()))
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, pieces) = input;
    let whole = decode(&data, &[255]);
    let split = decode(&data, &pieces);
    match (&whole, &split) {
        (Ok(w), Ok(s)) if w.2 && s.2 => assert_eq!(w, s),
        (Err(a), Err(b)) => assert_eq!(a, b),
        // Incomplete input may end in different places; errors must agree when both finish.
        (Ok(w), Err(_)) | (Err(_), Ok(w)) => assert!(!w.2),
        _ => {}
    }
});
