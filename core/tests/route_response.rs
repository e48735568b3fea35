//! Router and response writer tables.

use httpd_runner_core::msg::Slot;
use httpd_runner_core::parse::Method;
use httpd_runner_core::response::{
    has_content, imf_fixdate, write_head, write_simple, ResponseHead, Simple,
};
use httpd_runner_core::route::{fnv1a, pick_runner, route, shutdown_permitted, Route, RUN_ALLOW};
use httpd_runner_core::text::{FixedBuf, HeaderError, HeaderLines};

#[test]
fn routes() {
    let table: &[(Method, &str, Route<'_>)] = &[
        (Method::Get, "/run", Route::Run { key: None }),
        (Method::Post, "/run", Route::Run { key: None }),
        (Method::Head, "/run", Route::Run { key: None }),
        (
            Method::Put,
            "/run/user-7",
            Route::Run {
                key: Some("user-7"),
            },
        ),
        (Method::Post, "/shutdown", Route::Shutdown),
        (
            Method::Get,
            "/shutdown",
            Route::MethodNotAllowed {
                allow: "POST, OPTIONS",
            },
        ),
        (Method::Get, "/metrics", Route::Metrics),
        (Method::Head, "/health", Route::Health),
        (
            Method::Post,
            "/health",
            Route::MethodNotAllowed {
                allow: "GET, HEAD, OPTIONS",
            },
        ),
        (
            Method::Patch,
            "/run",
            Route::MethodNotAllowed { allow: RUN_ALLOW },
        ),
        (Method::Get, "/", Route::NotFound),
        (Method::Options, "/run", Route::Options { allow: RUN_ALLOW }),
        (Method::Options, "*", Route::Options { allow: RUN_ALLOW }),
        (Method::Options, "/nope", Route::NotFound),
        (Method::Get, "/runner", Route::NotFound),
        (Method::Other, "/run", Route::NotImplemented),
        (Method::Connect, "a:443", Route::NotImplemented),
    ];
    for (m, p, want) in table {
        assert_eq!(route(*m, p), *want, "{m:?} {p}");
    }
    let long = format!("/run/{}", "k".repeat(200));
    assert_eq!(route(Method::Get, &long), Route::KeyTooLong);
}

#[test]
fn keyless_requests_go_to_the_least_loaded_runner_and_ties_rotate() {
    let mut turn = 0;
    assert_eq!(pick_runner(None, &[5], &mut turn), 0);
    assert_eq!(pick_runner(None, &[5], &mut turn), 0);
    // Ties rotate: each call starts one further on.
    let mut turn = 0;
    let picks: Vec<usize> = (0..6)
        .map(|_| pick_runner(None, &[0, 0, 0], &mut turn))
        .collect();
    assert_eq!(picks, [1, 2, 0, 1, 2, 0]);
    // The smallest wins wherever the turn starts; the first of equal smallest after it.
    // Looking from 1, 2, 3, 0: the first 1 met is at index 1, 3, 3, 1.
    for (start, want) in [(0, 1), (1, 3), (2, 3), (3, 1)] {
        let mut turn = start;
        assert_eq!(
            pick_runner(None, &[3, 1, 2, 1], &mut turn),
            want,
            "start {start}"
        );
    }
    // A turn beyond the runners (a handler's index) starts over.
    let mut turn = 7;
    assert_eq!(pick_runner(None, &[0, 0], &mut turn), 0);
    assert_eq!(turn, 0);
}

#[test]
fn a_key_always_meets_the_same_runner_whatever_the_load() {
    // The published FNV-1a 64-bit test vectors.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    let mut counts = [0usize; 4];
    for i in 0..1000 {
        let key = format!("user-{i}");
        let mut turn = 0;
        let first = pick_runner(Some(key.as_bytes()), &[0, 0, 0, 0], &mut turn);
        // Load, the turn and earlier picks do not move a key; a keyed pick leaves the turn.
        let again = pick_runner(Some(key.as_bytes()), &[9, 0, 9, 0], &mut turn);
        assert_eq!(first, again, "{key}");
        assert_eq!(turn, 0, "{key}");
        assert_eq!(first as u64, fnv1a(key.as_bytes()) % 4, "{key}");
        counts[first] += 1;
    }
    // The keys spread over all runners (a hash that ignored its input would not).
    assert!(
        counts.iter().all(|&c| (200..=300).contains(&c)),
        "{counts:?}"
    );
    // One runner: every key goes to it.
    assert_eq!(pick_runner(Some(b"user-1"), &[3], &mut 0), 0);
}

#[test]
fn dates_are_imf_fixdate() {
    assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        &imf_fixdate(1_798_761_599),
        b"Thu, 31 Dec 2026 23:59:59 GMT"
    );
}

const DATE: [u8; 29] = *b"Sun, 06 Nov 1994 08:49:37 GMT";

#[test]
fn head_has_framing_and_date() {
    let mut store = [0u8; 512];
    let mut out = FixedBuf::new(&mut store);
    let mut extra = HeaderLines::new();
    extra.push("X-Trace", b"1").unwrap();
    write_head(
        &mut out,
        &ResponseHead {
            status: 200,
            content_length: 5,
            keep_alive: true,
            date: &DATE,
            content_type: Some(b"text/plain"),
            allow: None,
            retry_after_secs: None,
            runner: Some(3),
            extra: extra.as_bytes(),
        },
    )
    .unwrap();
    let text = std::str::from_utf8(out.as_slice()).unwrap();
    assert_eq!(text, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nX-Runner: 3\r\nX-Trace: 1\r\n\r\n");
}

#[test]
fn simple_responses_and_head_only() {
    let mut store = [0u8; 512];
    let mut out = FixedBuf::new(&mut store);
    write_simple(
        &mut out,
        &Simple {
            status: 405,
            keep_alive: false,
            head_only: false,
            date: &DATE,
            allow: Some("GET, HEAD"),
            retry_after_secs: None,
        },
    )
    .unwrap();
    let text = std::str::from_utf8(out.as_slice()).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nAllow: GET, HEAD\r\n") && text.contains("\r\nConnection: close\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nMethod Not Allowed\n"), "{text}");
    let mut store = [0u8; 512];
    let mut out = FixedBuf::new(&mut store);
    write_simple(
        &mut out,
        &Simple {
            status: 503,
            keep_alive: true,
            head_only: true,
            date: &DATE,
            allow: None,
            retry_after_secs: Some(1),
        },
    )
    .unwrap();
    let text = std::str::from_utf8(out.as_slice()).unwrap();
    assert!(
        text.contains("Content-Length: 20\r\n") && text.contains("Retry-After: 1\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "HEAD: no body: {text}");
}

#[test]
fn too_small_buffer_is_an_error_not_a_panic() {
    for size in 0..120 {
        let mut store = vec![0u8; size];
        let mut out = FixedBuf::new(&mut store);
        let r = write_simple(
            &mut out,
            &Simple {
                status: 404,
                keep_alive: true,
                head_only: false,
                date: &DATE,
                allow: None,
                retry_after_secs: None,
            },
        );
        assert!(r.is_err(), "{size}");
    }
}

#[test]
fn runner_headers_are_checked() {
    let mut h = HeaderLines::new();
    assert_eq!(h.push("Bad Name", b"v"), Err(HeaderError::InvalidName));
    assert_eq!(
        h.push("X", b"a\r\nInjected: 1"),
        Err(HeaderError::InvalidValue)
    );
    for reserved in ["content-length", "Transfer-Encoding", "CONNECTION", "Date"] {
        assert_eq!(
            h.push(reserved, b"1"),
            Err(HeaderError::Reserved),
            "{reserved}"
        );
    }
    assert!(h.as_bytes().is_empty());
    assert_eq!(h.push("X-Big", &[b'v'; 2000]), Err(HeaderError::Full));
    h.push("Content-Type", b"text/plain").unwrap();
    assert!(h.contains("content-type"));
    // The server sends no Server field; a runner may.
    h.push("Server", b"edge-7").unwrap();
    assert_eq!(
        h.as_bytes(),
        b"Content-Type: text/plain\r\nServer: edge-7\r\n"
    );
    // Every byte, at the start, middle and end of a value: HTAB, SP..~ and obs-text pass.
    for b in 0..=255u8 {
        let allowed = b == b'\t' || (b >= b' ' && b != 0x7f);
        for value in [[b, b'a', b'z'], [b'a', b, b'z'], [b'a', b'z', b]] {
            let mut h = HeaderLines::new();
            let got = h.push("X-Byte", &value);
            assert_eq!(got.is_ok(), allowed, "value byte {b:#04x} in {value:?}");
        }
        // Names: tchar only.
        let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if let Ok(name) = core::str::from_utf8(&[b'X', b, b'Y']) {
            let mut h = HeaderLines::new();
            let got = h.push(name, b"v");
            assert_eq!(got.is_ok(), token, "name byte {b:#04x}");
        }
    }
}

#[test]
fn shutdown_permission() {
    let t = Some(&b"s3cret"[..]);
    /// (peer is local: loopback, not proxied; configured token; Authorization; allowed)
    type Case<'a> = (bool, Option<&'a [u8]>, Option<&'a [u8]>, bool);
    let table: &[Case<'_>] = &[
        (true, None, None, true),
        (true, t, None, false),
        (true, t, Some(b"Bearer nope"), false),
        (true, t, Some(b"Bearer s3cret"), true),
        (false, None, None, false),
        (false, None, Some(b"Bearer s3cret"), false),
        (false, t, None, false),
        (false, t, Some(b"Bearer s3cret"), true),
        (false, t, Some(b"bearer s3cret"), true),
        (false, t, Some(b"Bearer s3cre"), false),
        (false, t, Some(b"Bearer s3cretX"), false),
        (false, t, Some(b"Basic s3cret"), false),
        (false, Some(b""), Some(b"Bearer "), false),
    ];
    for (loopback, token, auth, want) in table {
        assert_eq!(
            shutdown_permitted(*loopback, *token, *auth),
            *want,
            "{loopback} {token:?} {auth:?}"
        );
    }
}

#[test]
fn proxy_fields_mark_a_request_as_proxied() {
    use httpd_runner_core::route::proxied;
    for names in [
        &["host", "Forwarded"][..],
        &["X-Forwarded-For"],
        &["x-real-ip", "accept"],
        &["VIA"],
    ] {
        assert!(proxied(names.iter().copied()), "{names:?}");
    }
    for names in [
        &["host", "accept"][..],
        &[],
        &["x-forwarded"],
        &["forwarded-for"],
    ] {
        assert!(!proxied(names.iter().copied()), "{names:?}");
    }
}

#[test]
fn decimals_are_written_in_place_or_not_at_all() {
    for n in [
        0u64,
        7,
        9,
        10,
        99,
        100,
        1_024,
        65_536,
        999_999,
        1_000_000,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut store = [b'#'; 24];
        let mut out = FixedBuf::new(&mut store);
        out.extend_from_slice(b"n=").unwrap();
        out.push_decimal(n).unwrap();
        assert_eq!(out.as_slice(), format!("n={n}").as_bytes());
        // One byte short: refused, and the buffer is unchanged.
        let digits = n.to_string().len();
        let mut store = [b'#'; 24];
        let mut out = FixedBuf::new(&mut store[..1 + digits]);
        out.extend_from_slice(b"n").unwrap();
        out.push_decimal(n).unwrap();
        assert_eq!(out.push_decimal(n), Err(httpd_runner_core::text::Full));
        assert_eq!(out.as_slice(), format!("n{n}").as_bytes());
        let mut store = [b'#'; 24];
        let mut out = FixedBuf::new(&mut store[..digits]);
        out.extend_from_slice(b"n").unwrap();
        assert!(out.push_decimal(n).is_err(), "{n} must not fit");
        assert_eq!(out.as_slice(), b"n");
    }
}

#[test]
fn no_content_and_not_modified_carry_no_length_and_no_body() {
    for (status, content) in [
        (200, true),
        (201, true),
        (204, false),
        (304, false),
        (404, true),
    ] {
        assert_eq!(has_content(status), content, "{status}");
        let mut store = [0u8; 512];
        let mut out = FixedBuf::new(&mut store);
        write_head(
            &mut out,
            &ResponseHead {
                status,
                content_length: 5,
                keep_alive: true,
                date: &DATE,
                content_type: None,
                allow: None,
                retry_after_secs: None,
                runner: None,
                extra: b"",
            },
        )
        .unwrap();
        let text = std::str::from_utf8(out.as_slice()).unwrap();
        assert_eq!(
            text.contains("Content-Length: 5\r\n"),
            content,
            "{status}: {text}"
        );
    }
    // What a runner wrote after a 204 or 304 never reaches the wire; a HEAD request's body
    // neither.
    let (mut head, mut body, mut response_body) = ([0u8; 64], [0u8; 64], [0u8; 64]);
    let mut slot = Slot::new(&mut head, &mut body, &mut response_body);
    for (status, head_only, wire) in [
        (200, false, &b"hello"[..]),
        (200, true, b""),
        (204, false, b""),
        (304, false, b""),
        (500, false, b"hello"),
    ] {
        slot.ticket.head_only = head_only;
        slot.serve(|_, resp| {
            resp.set_status(status);
            resp.body_mut().extend_from_slice(b"hello").unwrap();
        });
        assert_eq!(slot.response_body(), b"hello");
        assert_eq!(slot.wire_body(), wire, "{status}, head only: {head_only}");
    }
}

#[test]
fn each_plane_reaches_only_its_resources() {
    use httpd_runner_core::route::{route_on, Plane};
    // (plane, method, path, expected route)
    let cases: &[(Plane, Method, &str, Route<'_>)] = &[
        (Plane::All, Method::Get, "/metrics", Route::Metrics),
        (Plane::All, Method::Post, "/shutdown", Route::Shutdown),
        (
            Plane::All,
            Method::Post,
            "/run/k",
            Route::Run { key: Some("k") },
        ),
        (
            Plane::Data,
            Method::Post,
            "/run/k",
            Route::Run { key: Some("k") },
        ),
        (Plane::Data, Method::Get, "/health", Route::Health),
        (Plane::Data, Method::Get, "/metrics", Route::NotFound),
        (Plane::Data, Method::Post, "/shutdown", Route::NotFound),
        // Not a 405 or an Allow list: the resource does not exist on this plane.
        (Plane::Data, Method::Get, "/shutdown", Route::NotFound),
        (Plane::Data, Method::Options, "/metrics", Route::NotFound),
        (Plane::Admin, Method::Get, "/metrics", Route::Metrics),
        (Plane::Admin, Method::Post, "/shutdown", Route::Shutdown),
        (Plane::Admin, Method::Get, "/health", Route::Health),
        (Plane::Admin, Method::Post, "/run", Route::NotFound),
        (Plane::Admin, Method::Get, "/run/k", Route::NotFound),
        (Plane::Admin, Method::Get, "/nothing", Route::NotFound),
    ];
    for &(plane, method, path, expected) in cases {
        assert_eq!(
            route_on(plane, method, path),
            expected,
            "{plane:?} {method:?} {path}"
        );
    }
}
