//! The parser on arbitrary bytes: no panic, and a complete head never claims more bytes than
//! it was given, its path and target come from inside the buffer, and it holds no NUL, bare
//! CR or bare LF; a head refused for a bare LF has one.
#![no_main]
use httpd_runner_core::limits::Limits;
use httpd_runner_core::parse::{header_slots, parse_head, Error, Status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_bytes: 4096,
        max_target_bytes: 1024,
        max_body_bytes: 65536,
    };
    let mut headers = header_slots();
    match parse_head(data, &mut headers, &limits) {
        Ok(Status::Complete(h)) => {
            assert!(h.head_len <= data.len());
            assert!(h.head_len <= limits.max_head_bytes);
            assert!(h.target.len() <= limits.max_target_bytes);
            let range = data.as_ptr_range();
            assert!(range.contains(&h.path.as_ptr()) || h.path.is_empty() || h.path == "/");
            // No NUL, no CR without LF after it, no LF without CR before it (the success path
            // checks only the last and relies on httparse for the others).
            let head = &data[..h.head_len];
            for (i, &b) in head.iter().enumerate() {
                assert_ne!(b, 0, "NUL at {i}");
                if b == b'\r' {
                    assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR at {i}");
                }
                if b == b'\n' {
                    assert!(i > 0 && head[i - 1] == b'\r', "bare LF at {i}");
                }
            }
        }
        Ok(Status::Partial) => assert!(data.len() < limits.max_head_bytes),
        Err(e) => {
            assert!((400..=505).contains(&e.status()));
            // A head refused for a bare LF has one (the success path looks at line ends only).
            if e == Error::BareLf {
                let has_bare_lf = data
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
                assert!(has_bare_lf, "BareLf without a bare LF");
            }
        }
    }
});
