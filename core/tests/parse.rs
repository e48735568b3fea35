//! Table-driven tests of the request parser and the chunked decoder.

use httpd_runner_core::limits::Limits;
use httpd_runner_core::parse::{
    header_slots, parse_head, ChunkedDecoder, Error, Framing, Method, Status, Version,
};

/// What a parse came to, owned so results can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Partial,
    Err(Error),
    Done {
        method: Method,
        path: String,
        query: Option<String>,
        version: Version,
        framing: Framing,
        keep_alive: bool,
        expect_continue: bool,
        head_len: usize,
        headers: usize,
    },
}

fn parse_with(buf: &[u8], limits: &Limits) -> Outcome {
    let mut headers = header_slots();
    match parse_head(buf, &mut headers, limits) {
        Ok(Status::Partial) => Outcome::Partial,
        Err(e) => Outcome::Err(e),
        Ok(Status::Complete(h)) => Outcome::Done {
            method: h.method,
            path: h.path.to_owned(),
            query: h.query.map(str::to_owned),
            version: h.version,
            framing: h.framing,
            keep_alive: h.keep_alive,
            expect_continue: h.expect_continue,
            head_len: h.head_len,
            headers: h.headers.len(),
        },
    }
}

fn parse(buf: &[u8]) -> Outcome {
    parse_with(buf, &Limits::DEFAULT)
}

fn err(buf: &[u8]) -> Error {
    match parse(buf) {
        Outcome::Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// A valid request: (name, bytes, method, path, query, framing, keep_alive).
type ValidCase = (
    &'static str,
    &'static [u8],
    Method,
    &'static str,
    Option<&'static str>,
    Framing,
    bool,
);

/// One named test per valid request (httparse's `req!` style), and the table of them all
/// for the tests that go through every case (split points).
macro_rules! valid {
    ($($name:ident: $bytes:expr => ($method:expr, $path:expr, $query:expr, $framing:expr, $keep:expr);)*) => {
        const VALID: &[ValidCase] = &[$((stringify!($name), $bytes, $method, $path, $query, $framing, $keep)),*];
        mod valid {
            use super::*;
            $(
                #[test]
                fn $name() {
                    check_valid(&(stringify!($name), $bytes, $method, $path, $query, $framing, $keep));
                }
            )*
        }
    };
}

valid! {
    simple_get: b"GET /run HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/run", None, Framing::None, true);
    query: b"GET /run?x=1&y HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/run", Some("x=1&y"), Framing::None, true);
    encoded_line_breaks_and_nul_in_the_query: b"GET /run?t=a%0D%0Ab%0a%00 HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/run", Some("t=a%0D%0Ab%0a%00"), Framing::None, true);
    other_escapes_in_the_path: b"GET /a%20b%0b%0E%2F%d0 HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/a%20b%0b%0E%2F%d0", None, Framing::None, true);
    the_same_content_type_twice: b"POST /run HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 2\r\ncontent-type:  text/plain \r\n\r\nhi" => (Method::Post, "/run", None, Framing::Length(2), true);
    values_padded_with_spaces_and_tabs: b"POST /run HTTP/1.1\r\nHost:\t a:80 \t\r\nContent-Length: \t5\t \r\nExpect:  100-continue\t\r\nConnection: \tclose \r\n\r\nhello" => (Method::Post, "/run", None, Framing::Length(5), false);
    post_with_length: b"POST /run HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" => (Method::Post, "/run", None, Framing::Length(5), true);
    zero_length: b"POST /run HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" => (Method::Post, "/run", None, Framing::None, true);
    same_length_twice: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" => (Method::Post, "/", None, Framing::Length(3), true);
    chunked: b"POST /run HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" => (Method::Post, "/run", None, Framing::Chunked, true);
    chunked_any_case: b"POST /run HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n" => (Method::Post, "/run", None, Framing::Chunked, true);
    connection_close: b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" => (Method::Get, "/", None, Framing::None, false);
    http_1_0_closes: b"GET / HTTP/1.0\r\n\r\n" => (Method::Get, "/", None, Framing::None, false);
    http_1_0_keep_alive: b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" => (Method::Get, "/", None, Framing::None, true);
    leading_empty_line: b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/", None, Framing::None, true);
    absolute_form: b"GET http://a/run?q HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/run", Some("q"), Framing::None, true);
    absolute_form_no_path: b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/", None, Framing::None, true);
    options_star: b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Options, "*", None, Framing::None, true);
    unknown_method_token: b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Other, "/pot", None, Framing::None, true);
    percent_encoded: b"GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n" => (Method::Get, "/a%20b", None, Framing::None, true);
    host_with_port: b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n" => (Method::Get, "/", None, Framing::None, true);
    ipv6_host: b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n" => (Method::Get, "/", None, Framing::None, true);
}

/// Checks one valid request: it parses whole into what its case says.
fn check_valid(case: &ValidCase) {
    let (name, bytes, method, path, query, framing, keep_alive) = *case;
    match parse(bytes) {
        Outcome::Done {
            method: m,
            path: p,
            query: q,
            framing: f,
            keep_alive: k,
            head_len,
            ..
        } => {
            assert_eq!(
                (m, p.as_str(), q.as_deref(), f, k),
                (method, path, query, framing, keep_alive),
                "{name}"
            );
            let body = match framing {
                Framing::Length(n) => n,
                _ => 0,
            };
            assert!(
                head_len + body <= bytes.len(),
                "{name}: head_len {head_len}"
            );
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_split_point_parses_like_the_whole() {
    for (name, bytes, ..) in VALID {
        let whole = parse(bytes);
        let Outcome::Done { head_len, .. } = whole else {
            panic!("{name}")
        };
        for cut in 0..head_len {
            assert_eq!(
                parse(&bytes[..cut]),
                Outcome::Partial,
                "{name}: cut at {cut}"
            );
        }
        for cut in head_len..=bytes.len() {
            assert_eq!(parse(&bytes[..cut]), whole, "{name}: cut at {cut}");
        }
    }
}

/// One named test per invalid request, with the error (and so the status) it must get.
macro_rules! invalid {
    ($($name:ident: $bytes:expr => $want:expr;)*) => {
        mod invalid {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let got = err($bytes);
                    assert_eq!(got, $want);
                    assert_eq!(got.status(), $want.status());
                }
            )*
        }
    };
}

invalid! {
    no_host_on_1_1: b"GET / HTTP/1.1\r\n\r\n" => Error::MissingHost;
    two_hosts: b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => Error::DuplicateHost;
    host_with_space: b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => Error::InvalidHost;
    empty_host: b"GET / HTTP/1.1\r\nHost: \r\n\r\n" => Error::InvalidHost;
    host_with_userinfo: b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n" => Error::InvalidHost;
    cl_not_digits: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n" => Error::InvalidContentLength;
    cl_negative: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n" => Error::InvalidContentLength;
    cl_leading_zero: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\nhello" => Error::InvalidContentLength;
    cl_double_zero: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n" => Error::InvalidContentLength;
    cl_plus_sign: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n" => Error::InvalidContentLength;
    cl_list: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n" => Error::InvalidContentLength;
    cl_overflow: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n" => Error::InvalidContentLength;
    cl_differs: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n" => Error::ConflictingContentLength;
    content_types_differ: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx" => Error::ConflictingContentType;
    cl_and_te: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n" => Error::ContentLengthWithTransferEncoding;
    te_and_cl: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n" => Error::ContentLengthWithTransferEncoding;
    te_gzip: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" => Error::UnsupportedTransferCoding;
    te_gzip_chunked: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => Error::UnsupportedTransferCoding;
    te_chunked_gzip: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" => Error::ChunkedNotFinal;
    te_chunked_twice: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => Error::ChunkedNotFinal;
    te_empty: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n" => Error::ChunkedNotFinal;
    te_on_1_0: b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => Error::TransferEncodingOnHttp10;
    bare_cr_in_header: b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n" => Error::BareCr;
    bare_lf_after_request_line: b"GET / HTTP/1.1\nHost: a\r\n\r\n" => Error::BareLf;
    bare_lf_after_header: b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n" => Error::BareLf;
    bare_lf_ending_head: b"GET / HTTP/1.1\r\nHost: a\r\n\n" => Error::BareLf;
    bare_lf_lines_only: b"GET / HTTP/1.1\nHost: a\n\n" => Error::BareLf;
    leading_bare_lf: b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" => Error::BareLf;
    nul_in_header: b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n" => Error::Nul;
    nul_in_target: b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n" => Error::Nul;
    obs_fold: b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n" => Error::ObsFold;
    space_before_colon: b"GET / HTTP/1.1\r\nHost : a\r\n\r\n" => Error::Syntax;
    space_in_target: b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n" => Error::Syntax;
    fragment_in_target: b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    non_ascii_target: b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    bad_percent: b"GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    encoded_nul_in_path: b"GET /a%00.html HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    encoded_crlf_in_path: b"GET /a%0d%0aX:%20y HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    encoded_cr_in_path: b"GET /a%0D?q HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    encoded_lf_in_absolute_path: b"GET http://a/b%0A HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    relative_target: b"GET run HTTP/1.1\r\nHost: a\r\n\r\n" => Error::InvalidTarget;
    http_2_0: b"GET / HTTP/2.0\r\nHost: a\r\n\r\n" => Error::VersionNotSupported;
    http_1_2: b"GET / HTTP/1.2\r\nHost: a\r\n\r\n" => Error::VersionNotSupported;
    garbage_version: b"GET / HTTX/1.1\r\nHost: a\r\n\r\n" => Error::Syntax;
    lowercase_version: b"GET / http/1.1\r\nHost: a\r\n\r\n" => Error::Syntax;
    expect_other: b"POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n" => Error::ExpectationFailed;
    content_length: b"POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\nhello" => Error::AmbiguousFramingField;
    transfer_encoding: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n" => Error::AmbiguousFramingField;
    content_length_2: b"POST / HTTP/1.1\r\nHost: a\r\ncontent.length: 5\r\n\r\n" => Error::AmbiguousFramingField;
    contentlength: b"POST / HTTP/1.1\r\nHost: a\r\nCONTENTLENGTH: 5\r\n\r\n" => Error::AmbiguousFramingField;
    transfer_encoding_2: b"GET / HTTP/1.1\r\nHost: a\r\nTransfer--Encoding: x\r\n\r\n" => Error::AmbiguousFramingField;
    with_a_real_length: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent_Length: 5\r\n\r\n" => Error::AmbiguousFramingField;
}

/// Names near the framing fields that are ordinary fields, not framing in disguise.
#[test]
fn near_framing_names_stay_ordinary() {
    for name in [
        "Content-Lengths",
        "Content-Languag",
        "Transfer-Encodinx",
        "Trailer",
        "Content-Location",
        "X-Content-Length",
    ] {
        let wire = format!("GET / HTTP/1.1\r\nHost: a\r\n{name}: 5\r\n\r\n");
        assert!(
            matches!(parse(wire.as_bytes()), Outcome::Done { .. }),
            "{name}"
        );
    }
}

#[test]
fn head_requests_are_known_from_their_first_bytes() {
    assert!(httpd_runner_core::parse::is_head_request(
        b"HEAD / HTTP/1.1\r\n"
    ));
    assert!(httpd_runner_core::parse::is_head_request(b"HEAD /x"));
    assert!(!httpd_runner_core::parse::is_head_request(b"HEA"));
    assert!(!httpd_runner_core::parse::is_head_request(
        b"head / HTTP/1.1\r\n"
    ));
    assert!(!httpd_runner_core::parse::is_head_request(
        b"HEADER / HTTP/1.1\r\n"
    ));
    assert!(!httpd_runner_core::parse::is_head_request(
        b"GET / HTTP/1.1\r\n"
    ));
}

#[test]
fn statuses_match_the_rfc() {
    let table = [
        (Error::UriTooLong, 414),
        (Error::HeadTooLarge, 431),
        (Error::PayloadTooLarge, 413),
        (Error::UnsupportedTransferCoding, 501),
        (Error::VersionNotSupported, 505),
        (Error::ExpectationFailed, 417),
        (Error::BareCr, 400),
        (Error::BareLf, 400),
        (Error::MissingHost, 400),
    ];
    for (e, status) in table {
        assert_eq!(e.status(), status, "{e:?}");
    }
}

#[test]
fn limits_give_414_and_431() {
    let limits = Limits {
        max_head_bytes: 256,
        max_target_bytes: 64,
        max_body_bytes: 10,
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
    assert_eq!(
        parse_with(long_target.as_bytes(), &limits),
        Outcome::Err(Error::UriTooLong)
    );
    // Still receiving the request line, already too long for any target.
    let partial = format!("GET /{}", "a".repeat(120));
    assert_eq!(
        parse_with(partial.as_bytes(), &limits),
        Outcome::Err(Error::UriTooLong)
    );
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(300)
    );
    assert_eq!(
        parse_with(big_head.as_bytes(), &limits),
        Outcome::Err(Error::HeadTooLarge)
    );
    assert_eq!(
        parse_with(&big_head.as_bytes()[..260], &limits),
        Outcome::Err(Error::HeadTooLarge)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..70 {
        many.push_str(&format!("X{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(parse(many.as_bytes()), Outcome::Err(Error::HeadTooLarge));
    let body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    assert!(matches!(
        parse_with(body, &limits),
        Outcome::Done {
            framing: Framing::TooLarge(11),
            ..
        }
    ));
    let long_method = format!("{} / HTTP/1.1\r\n", "A".repeat(40));
    assert_eq!(
        parse_with(long_method.as_bytes(), &limits),
        Outcome::Err(Error::Syntax)
    );
    let url_8000 = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(7900));
    assert!(
        matches!(parse(url_8000.as_bytes()), Outcome::Done { .. }),
        "8000-octet request lines pass by default"
    );
}

#[test]
fn pipelined_bytes_stay_for_the_next_parse() {
    let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let Outcome::Done { head_len, path, .. } = parse(two) else {
        panic!()
    };
    assert_eq!(path, "/a");
    let Outcome::Done { path, .. } = parse(&two[head_len..]) else {
        panic!()
    };
    assert_eq!(path, "/b");
}

#[test]
fn expect_continue_only_on_1_1() {
    let r = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
    assert!(matches!(
        parse(r),
        Outcome::Done {
            expect_continue: true,
            ..
        }
    ));
    let r = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    assert!(matches!(
        parse(r),
        Outcome::Done {
            expect_continue: false,
            ..
        }
    ));
}

/// Decodes `input` fed in pieces of `piece` bytes; returns (body, consumed) or the error.
fn decode_in_pieces(input: &[u8], piece: usize, max: usize) -> Result<(Vec<u8>, usize), Error> {
    let mut d = ChunkedDecoder::new(max);
    let mut body = vec![0u8; max];
    let mut filled = 0;
    let mut at = 0;
    let mut end = 0;
    while !d.is_done() {
        if end == input.len() && at == end {
            return Err(Error::InvalidChunk); // ran out of input: incomplete
        }
        end = (end + piece).min(input.len());
        let p = d.decode(&input[at..end], &mut body[filled..])?;
        at += p.consumed;
        filled += p.produced;
        assert_eq!(filled, d.total());
    }
    body.truncate(filled);
    Ok((body, at))
}

#[test]
fn chunked_bodies_decode_at_any_split() {
    let cases: &[(&str, &[u8], &[u8])] = &[
        ("one chunk", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        ("two chunks", b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello"),
        ("upper hex", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        ("leading zeros", b"005\r\nhello\r\n000\r\n\r\n", b"hello"),
        (
            "extension",
            b"5;name=value\r\nhello\r\n0;last\r\n\r\n",
            b"hello",
        ),
        (
            "bws extension",
            b"5 ;a=\"q\"\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (
            "several extensions",
            b"5;a;b = c ;d=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (
            "trailers",
            b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n",
            b"hello",
        ),
        ("empty body", b"0\r\n\r\n", b""),
    ];
    for (name, input, want) in cases {
        let mut with_next = input.to_vec();
        with_next.extend_from_slice(b"GET / HTTP/1.1\r\n");
        for piece in 1..=with_next.len() {
            let (body, consumed) = decode_in_pieces(&with_next, piece, 64)
                .unwrap_or_else(|e| panic!("{name}/{piece}: {e:?}"));
            assert_eq!(body, *want, "{name}/{piece}");
            assert_eq!(
                consumed,
                input.len(),
                "{name}/{piece}: next request untouched"
            );
        }
    }
}

#[test]
fn chunked_errors() {
    let cases: &[(&str, &[u8], Error)] = &[
        ("no size", b"\r\nhello\r\n0\r\n\r\n", Error::InvalidChunk),
        ("bad hex", b"5g\r\nhello\r\n0\r\n\r\n", Error::InvalidChunk),
        ("negative", b"-5\r\nhello\r\n0\r\n\r\n", Error::InvalidChunk),
        (
            "bare lf after size",
            b"5\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "missing crlf after data",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "data too long",
            b"3\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        ("overflow", b"10000000000000000\r\n", Error::InvalidChunk),
        ("over limit", b"41\r\n", Error::PayloadTooLarge),
        (
            "sum over limit",
            b"20\r\n01234567890123456789012345678901\r\n21\r\n",
            Error::PayloadTooLarge,
        ),
        (
            "ctl in extension",
            b"5;a\x01\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "space after size",
            b"5 \r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "bare semicolon",
            b"5;\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "invalid ext token",
            b"5;bad[=x\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "ext without value",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "unterminated quote",
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            Error::InvalidChunk,
        ),
        (
            "folded trailer",
            b"0\r\nX: 1\r\n 2\r\n\r\n",
            Error::InvalidChunk,
        ),
        ("bare lf end", b"0\r\n\n", Error::InvalidChunk),
    ];
    for (name, input, want) in cases {
        for piece in [1, 3, input.len()] {
            assert_eq!(
                decode_in_pieces(input, piece, 64).map(|_| ()),
                Err(*want),
                "{name}/{piece}"
            );
        }
    }
    let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(2000));
    assert_eq!(
        decode_in_pieces(long_ext.as_bytes(), 7, 64).map(|_| ()),
        Err(Error::InvalidChunk)
    );
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(9000));
    assert_eq!(
        decode_in_pieces(long_trailer.as_bytes(), 100, 64).map(|_| ()),
        Err(Error::HeadTooLarge)
    );
}

#[test]
fn character_classes_match_the_rfc_sets() {
    use httpd_runner_core::text::{is_reg_name_byte, is_target_byte, is_token_byte};
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let tchar = b"!#$%&'*+-.^_`|~";
    let reg_name = b"-._~%!$&'()*+,;=";
    let target_extra = b":@/?";
    for b in 0..=255u8 {
        let token = alnum(b) || tchar.contains(&b);
        let host = alnum(b) || reg_name.contains(&b);
        let target = host || target_extra.contains(&b);
        assert_eq!(is_token_byte(b), token, "token byte {b:#04x}");
        assert_eq!(is_reg_name_byte(b), host, "reg-name byte {b:#04x}");
        assert_eq!(is_target_byte(b), target, "target byte {b:#04x}");
    }
}

#[test]
fn crlf_at_every_alignment_is_accepted() {
    // Line ends land at every position of the scanner's eight-byte words and across their
    // boundaries; none of them may look like a bare CR.
    for pad in 0..24 {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        req.extend(std::iter::repeat_n(b'v', pad));
        req.extend_from_slice(b"\r\nY: ");
        req.extend(std::iter::repeat_n(b'w', pad / 2));
        req.extend_from_slice(b"\r\n\r\n");
        let got = parse_with(&req, &Limits::default());
        assert!(matches!(got, Outcome::Done { .. }), "pad {pad}: {got:?}");
    }
}

#[test]
fn nul_or_bare_cr_or_bare_lf_anywhere_in_a_field_value_is_refused() {
    // Every offset inside the value, so the byte lands in every position of the scanner's
    // eight-byte words and in the tail.
    let value = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for at in 0..value.len() {
        for (bad, want) in [
            (0u8, Error::Nul),
            (b'\r', Error::BareCr),
            (b'\n', Error::BareLf),
        ] {
            let mut v = value.to_vec();
            v[at] = bad;
            let mut req = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n\r\n");
            let got = parse_with(&req, &Limits::default());
            assert!(
                matches!(got, Outcome::Err(e) if e == want),
                "byte {bad:#04x} at {at}: {got:?}"
            );
        }
    }
}

#[test]
fn a_bare_lf_ending_any_line_is_refused_and_only_then() {
    // Heads built line by line: an optional empty line first, a request line, up to three
    // fields (empty values, values with spaces and tabs around them), and each line ended
    // by CRLF or a bare LF, with or without spaces or tabs before it. The parser must call
    // BareLf exactly when some LF lacks its CR.
    let leading: [&[u8]; 3] = [b"", b"\r\n", b"\n"];
    let fields: [&[u8]; 3] = [b"Host: a", b"X:", b"Y:  v \t"];
    let spaces: [&[u8]; 3] = [b"", b" ", b"\t "];
    let ends: [&[u8]; 2] = [b"\r\n", b"\n"];
    let mut heads = Vec::new();
    for lead in leading {
        for line in [&b"GET /p HTTP/1.1"[..], b"POST /x?y HTTP/1.0"] {
            for end in ends {
                let mut head = lead.to_vec();
                head.extend_from_slice(line);
                head.extend_from_slice(end);
                heads.push(head);
            }
        }
    }
    let mut checked = 0;
    let mut bare_seen = 0;
    // Up to three fields: 148,200 heads; under miri (about a thousand times slower) none:
    // 24, the table tests above take fields through miri.
    let most_fields = if cfg!(miri) { 0 } else { 3 };
    for _ in 0..=most_fields {
        let mut longer = Vec::new();
        for head in &heads {
            for last in ends {
                let mut whole = head.clone();
                whole.extend_from_slice(last);
                let has_bare = whole
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'\n' && (i == 0 || whole[i - 1] != b'\r'));
                let got = parse_with(&whole, &Limits::default());
                assert_eq!(
                    got == Outcome::Err(Error::BareLf),
                    has_bare,
                    "{:?}: {got:?}",
                    String::from_utf8_lossy(&whole)
                );
                if !has_bare {
                    assert!(
                        !matches!(got, Outcome::Partial),
                        "{:?}",
                        String::from_utf8_lossy(&whole)
                    );
                }
                checked += 1;
                bare_seen += usize::from(has_bare);
            }
            for field in fields {
                for space in spaces {
                    for end in ends {
                        let mut next = head.clone();
                        next.extend_from_slice(field);
                        next.extend_from_slice(space);
                        next.extend_from_slice(end);
                        longer.push(next);
                    }
                }
            }
        }
        heads = longer;
    }
    assert!(
        checked >= if cfg!(miri) { 24 } else { 148_200 } && bare_seen > 0 && bare_seen < checked,
        "{checked} {bare_seen}"
    );
}
