//! Incremental HTTP/1.1 request parsing (RFC 9112), sans I/O.
//!
//! [`parse_head`] looks at the bytes received so far in a caller-owned buffer and returns
//! [`Status::Partial`] (read more), [`Status::Complete`] with a [`Head`] that borrows from the
//! buffer, or an [`Error`] that names the status to answer with. The request line and header
//! fields go through httparse; on top of it this module enforces what httparse leaves to the
//! caller: one way to frame every message (Content-Length and Transfer-Encoding rules), Host,
//! target syntax, and the size limits. Bytes after the head are left alone: a body follows,
//! or the next pipelined request.
//!
//! Chunked bodies are decoded by [`ChunkedDecoder`], length-framed bodies need no decoder.

mod chunked;
mod error;
mod fields;

pub use chunked::{ChunkedDecoder, Progress};
pub use error::Error;
pub use fields::is_head_request;

use fields::{valid_host, Expect, Fields, TransferEncoding};
pub use httparse::Header;

use core::mem::MaybeUninit;

use crate::limits::{Limits, MAX_HEADERS, MAX_METHOD_BYTES};
use crate::text::is_target_byte;

/// The array of header slots [`parse_head`] fills, owned by the caller. It starts
/// uninitialized: the parser writes only the slots it uses, so a request with three fields
/// costs three slot writes, not `MAX_HEADERS`.
pub type HeaderSlots<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS];

/// A fresh [`HeaderSlots`] array (no bytes written).
#[must_use]
#[inline]
pub const fn header_slots<'b>() -> HeaderSlots<'b> {
    [MaybeUninit::uninit(); MAX_HEADERS]
}

/// Whether a parse finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Done; the value says what was found.
    Complete(T),
    /// The bytes so far are a valid prefix; read more and call again with all of them.
    Partial,
}

/// A request method. Methods are case-sensitive tokens; unknown ones are [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// Any other token.
    Other,
}

impl Method {
    /// The method for a token from the request line.
    #[must_use]
    pub fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            "PATCH" => Self::Patch,
            "TRACE" => Self::Trace,
            "CONNECT" => Self::Connect,
            _ => Self::Other,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes follow the head.
    Length(usize),
    /// `Transfer-Encoding: chunked`: decode with [`ChunkedDecoder`].
    Chunked,
    /// A Content-Length larger than the body limit. The head is valid, the body will not be
    /// accepted: answer 413 ([`Error::PayloadTooLarge`]) without reading it, as soon as the
    /// client commits to sending it (it sent `Expect: 100-continue`, or body bytes arrived).
    TooLarge(u64),
}

/// A parsed request head, borrowing from the caller's buffer and header slots.
#[derive(Debug, Clone, Copy)]
pub struct Head<'h, 'b> {
    /// The method.
    pub method: Method,
    /// The method token as sent.
    pub method_token: &'b str,
    /// The request target as sent.
    pub target: &'b str,
    /// The path of the target (for absolute-form, the part after the authority).
    pub path: &'b str,
    /// The query (after `?`, without it), if any.
    pub query: Option<&'b str>,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// How the body is framed.
    pub framing: Framing,
    /// Whether the connection may stay open after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// Length of the head in bytes (where the body or the next request starts).
    pub head_len: usize,
    /// The request's own budget from `X-Deadline-Ms` (the smallest, if several), cut to
    /// [`MAX_DEADLINE_MS`](crate::limits::MAX_DEADLINE_MS).
    pub deadline_ms: Option<u64>,
    /// The header fields in the order received.
    pub headers: &'h [Header<'b>],
}

impl<'b> Head<'_, 'b> {
    /// The value of the first field named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Parses the request head at the start of `buf`.
///
/// `headers` (see [`header_slots`]) receives the fields found; [`Head::headers`] borrows them.
/// Empty lines before the request line are skipped (RFC 9112 §2.2).
///
/// # Errors
/// An [`Error`] naming the status to answer with; the connection must then be closed, since
/// the framing of anything after a bad head cannot be trusted.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    limits: &Limits,
) -> Result<Status<Head<'h, 'b>>, Error> {
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return partial(buf, limits),
        Err(e) => return Err(classify(buf, limits, e)),
    };
    let (Some(method_token), Some(target), Some(minor)) = (req.method, req.path, req.version)
    else {
        return Err(Error::Syntax);
    };
    // httparse accepts one thing RFC 9112 lets this server refuse: a bare LF as a line end.
    if !lines_end_in_crlf(&buf[..head_len], target, req.headers) {
        return Err(Error::BareLf);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method = Method::from_token(method_token);
    // The request line is the more specific problem: check it before the head's size.
    if target.len() > limits.max_target_bytes {
        return Err(Error::UriTooLong);
    }
    if head_len > limits.max_head_bytes {
        return Err(Error::HeadTooLarge);
    }
    let (path, query) = split_target(method, target)?;
    let fields = Fields::scan(req.headers)?;

    if version == Version::Http11 {
        match fields.hosts {
            0 => return Err(Error::MissingHost),
            1 => {}
            _ => return Err(Error::DuplicateHost),
        }
    } else if fields.hosts > 1 {
        return Err(Error::DuplicateHost);
    }
    let framing = match (fields.content_length, fields.transfer_encoding) {
        (_, TransferEncoding::Absent) => match fields.content_length {
            Some(n) if n > limits.max_body_bytes as u64 => Framing::TooLarge(n),
            Some(0) | None => Framing::None,
            // The cast cannot truncate: n <= max_body_bytes, a usize.
            Some(n) => Framing::Length(n as usize),
        },
        (Some(_), _) => return Err(Error::ContentLengthWithTransferEncoding),
        (None, _) if version == Version::Http10 => return Err(Error::TransferEncodingOnHttp10),
        (None, TransferEncoding::Chunked) => Framing::Chunked,
        (None, TransferEncoding::NotFinal) => return Err(Error::ChunkedNotFinal),
        (None, TransferEncoding::Unsupported) => return Err(Error::UnsupportedTransferCoding),
    };
    let expect_continue = match fields.expect {
        Expect::None => false,
        // RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
        Expect::Continue => version == Version::Http11,
        Expect::Other => return Err(Error::ExpectationFailed),
    };
    let keep_alive = match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };
    Ok(Status::Complete(Head {
        method,
        method_token,
        target,
        path,
        query,
        version,
        framing,
        keep_alive,
        expect_continue,
        head_len,
        deadline_ms: fields.deadline_ms,
        headers: req.headers,
    }))
}

/// A valid prefix so far: decide whether it may still grow into an acceptable head.
fn partial<'h, 'b>(buf: &[u8], limits: &Limits) -> Result<Status<Head<'h, 'b>>, Error> {
    let seen = &buf[..buf.len().min(limits.max_head_bytes)];
    scan_forbidden(seen)?;
    let start = seen
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(seen.len());
    let line = &seen[start..];
    let line_done = line.contains(&b'\n');
    // No method is this long: a request line without a space this far in is garbage.
    if !line[..line.len().min(MAX_METHOD_BYTES + 1)].contains(&b' ')
        && line.len() > MAX_METHOD_BYTES
    {
        return Err(Error::Syntax);
    }
    // Method, two spaces and "HTTP/1.1" take at most 32 bytes beside the target.
    if !line_done && seen.len() - start > limits.max_target_bytes + 32 {
        return Err(Error::UriTooLong);
    }
    if buf.len() >= limits.max_head_bytes {
        return Err(if line_done {
            Error::HeadTooLarge
        } else {
            Error::UriTooLong
        });
    }
    Ok(Status::Partial)
}

/// Names the failure behind an httparse error as precisely as the bytes allow.
fn classify(buf: &[u8], limits: &Limits, e: httparse::Error) -> Error {
    let seen = &buf[..buf.len().min(limits.max_head_bytes)];
    if let Err(specific) = scan_forbidden(seen) {
        return specific;
    }
    match e {
        httparse::Error::TooManyHeaders => Error::HeadTooLarge,
        httparse::Error::Version if version_is_well_formed(seen) => Error::VersionNotSupported,
        httparse::Error::HeaderName | httparse::Error::HeaderValue if has_obs_fold(seen) => {
            Error::ObsFold
        }
        _ => Error::Syntax,
    }
}

/// Whether the request line ends in a well-formed `HTTP/D.D` other than 1.0 and 1.1.
fn version_is_well_formed(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let line = &line[..end];
    // Exactly `method SP target SP version`.
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    match &line[sp + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

/// Whether some line of the head starts with SP or HTAB (a folded field line).
fn has_obs_fold(buf: &[u8]) -> bool {
    buf.windows(2)
        .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'))
}

/// Eight bytes of CR, and of LF, to compare a word of head bytes with ([`zeros`]).
const CRS: u64 = u64::from_le_bytes([b'\r'; 8]);
const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);

/// 0x80 in exactly the bytes of `v` that are zero (no carries between bytes).
const fn zeros(v: u64) -> u64 {
    const LOWS: u64 = u64::from_le_bytes([0x7f; 8]);
    !(((v & LOWS).wrapping_add(LOWS)) | v | LOWS)
}

/// Whether every line of a head httparse accepted ends in CRLF (none in a bare LF).
///
/// In such a head an LF can only end a line: httparse refuses NUL and bare CR, and LF in a
/// token, target or field value (the `parse_head` fuzz target checks every accepted head
/// for all three). So it is enough to look at each line's end, where httparse left it:
/// after the request line's version (exactly `SP HTTP/1.x` after the target), after each
/// field value and the spaces or tabs it trimmed from it (an empty value points at its
/// line end), and the last line's. A head that starts with empty lines, which httparse
/// skips, is scanned whole. It costs fewer instructions per request than the word-by-word
/// scan of the whole head it replaced (`docs/performance.md`).
fn lines_end_in_crlf(head: &[u8], target: &str, headers: &[httparse::Header<'_>]) -> bool {
    if matches!(head.first(), Some(b'\r' | b'\n')) {
        return !has_bare_lf(head);
    }
    // Offsets from addresses: every slice httparse returned lies in `head`. Were one not to,
    // `get` fails and the head is refused, not misread.
    let at = |s: &[u8]| {
        (s.as_ptr() as usize)
            .wrapping_sub(head.as_ptr() as usize)
            .wrapping_add(s.len())
    };
    let cr_at = |i: usize| head.get(i) == Some(&b'\r');
    let mut ok = cr_at(at(target.as_bytes()).wrapping_add(" HTTP/1.1".len()));
    for h in headers {
        let mut end = at(h.value);
        while matches!(head.get(end), Some(b' ' | b'\t')) {
            end += 1;
        }
        ok &= cr_at(end);
    }
    ok & cr_at(head.len().wrapping_sub(2))
}

/// Whether `bytes` hold an LF without a CR before it.
fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// Refuses NUL anywhere, CR not followed by LF, and LF not preceded by CR in head bytes.
///
/// Eight bytes at a time, without branching on the bytes: exact per-byte masks of NUL, CR and
/// LF show whether the word holds a NUL, a CR whose next byte (possibly the next word's first)
/// is not LF, or an LF whose previous byte (possibly the last word's last) is not CR. Only
/// such a word, which is refused, is looked at byte by byte to name the error. A CR as the
/// very last byte passes: its LF may not have arrived yet.
fn scan_forbidden(head: &[u8]) -> Result<(), Error> {
    let check = |i: usize| match head[i] {
        0 => Err(Error::Nul),
        b'\r' if i + 1 < head.len() && head[i + 1] != b'\n' => Err(Error::BareCr),
        b'\n' if i == 0 || head[i - 1] != b'\r' => Err(Error::BareLf),
        _ => Ok(()),
    };
    let words = head.chunks_exact(8);
    let tail_start = head.len() - words.remainder().len();
    let mut prev_is_cr = false;
    for (w, word) in words.enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let v = u64::from_le_bytes(bytes);
        let crs = zeros(v ^ CRS);
        let lfs = zeros(v ^ LFS);
        // Byte k of `lf_after` flags an LF at byte k + 1 (the next word's first for k = 7;
        // past the end counts as LF); byte k of `cr_before` flags a CR at byte k - 1.
        let next_is_lf = head.get(w * 8 + 8).is_none_or(|&b| b == b'\n');
        let lf_after = (lfs >> 8) | (u64::from(next_is_lf) << 63);
        let cr_before = (crs << 8) | (u64::from(prev_is_cr) << 7);
        let bad = zeros(v) | (crs & !lf_after) | (lfs & !cr_before);
        if bad != 0 {
            (w * 8..w * 8 + 8).try_for_each(check)?;
        }
        prev_is_cr = bytes[7] == b'\r';
    }
    (tail_start..head.len()).try_for_each(check)
}

/// Splits a target into path and query, checking its form and characters.
fn split_target(method: Method, target: &str) -> Result<(&str, Option<&str>), Error> {
    let bytes = target.as_bytes();
    // One pass over the bytes, without early exit; escapes are looked at only if there is one.
    let (valid, escaped) = bytes.iter().fold((true, false), |(valid, escaped), &b| {
        (valid & is_target_byte(b), escaped | (b == b'%'))
    });
    if !valid || (escaped && !percent_encoding_ok(bytes)) {
        return Err(Error::InvalidTarget);
    }
    let origin = if bytes.first() == Some(&b'/') {
        target
    } else if target == "*" && method == Method::Options {
        return Ok(("*", None));
    } else if method == Method::Connect {
        // authority-form: host:port, only for CONNECT (which the router then refuses).
        return Ok((target, None));
    } else {
        absolute_path(target)?
    };
    Ok(match origin.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin, None),
    })
}

/// The path and query of an absolute-form target (`http://host/path?q`).
fn absolute_path(target: &str) -> Result<&str, Error> {
    let lower_scheme = |s: &str| {
        target.len() > s.len() && target.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
    };
    let rest = if lower_scheme("http://") {
        &target[7..]
    } else if lower_scheme("https://") {
        &target[8..]
    } else {
        return Err(Error::InvalidTarget);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') || !valid_host(authority.as_bytes()) {
        return Err(Error::InvalidTarget);
    }
    Ok(if end == rest.len() { "/" } else { &rest[end..] })
}

/// Whether every `%` starts a `%XX` escape, and no escape in the path (before `?`) encodes
/// NUL, CR or LF. No resource is named by those bytes, and a runner that decodes the path
/// into a C string, a file name or a header must never meet them; a query may carry them
/// (a form field with line breaks).
fn percent_encoding_ok(bytes: &[u8]) -> bool {
    let mut i = 0;
    let mut in_path = true;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return false;
                };
                if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                    return false;
                }
                if in_path && hi == b'0' && matches!(lo, b'0' | b'a' | b'A' | b'd' | b'D') {
                    return false;
                }
                i += 3;
            }
            b'?' => {
                in_path = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::fields::*;
    use super::*;
    use crate::text::is_reg_name_byte;

    #[test]
    fn content_length_rules() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"42"), Ok(42));
        assert_eq!(
            parse_content_length(b"0042"),
            Err(Error::InvalidContentLength)
        );
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_content_length(b"18446744073709551616"),
            Err(Error::InvalidContentLength)
        );
        assert_eq!(
            parse_content_length(b"+5"),
            Err(Error::InvalidContentLength)
        );
        assert_eq!(
            parse_content_length(b"5 5"),
            Err(Error::InvalidContentLength)
        );
        assert_eq!(parse_content_length(b""), Err(Error::InvalidContentLength));
    }

    #[test]
    fn host_values() {
        for ok in [
            &b"example.com"[..],
            b"a:80",
            b"[::1]:8080",
            b"127.0.0.1",
            b"",
        ] {
            assert!(valid_host(ok), "{ok:?}");
        }
        for bad in [&b"a b"[..], b"u@h", b"h:x", b"[zz]", b"h/p", b"h:123456"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    /// The Host check as it was first written (split at the last colon, then check each
    /// side), the model the single-pass [`valid_host`] must agree with.
    fn valid_host_model(v: &[u8]) -> bool {
        if v.first() == Some(&b'[') {
            return valid_ip_literal_host(v);
        }
        let (host, port) = match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &v[v.len()..]),
        };
        host.iter().all(|&b| is_reg_name_byte(b)) && valid_port(port)
    }

    #[test]
    fn host_check_agrees_with_its_model_on_every_short_value() {
        // Every value of up to six bytes over an alphabet of the bytes that matter (three
        // under miri, which is about a thousand times slower), and longer ports and hosts
        // built from them.
        const ALPHABET: &[u8] = b"a1:[]. @%";
        let max_len: u32 = if cfg!(miri) { 3 } else { 6 };
        let mut checked = 0;
        let mut value = [0u8; 6];
        for len in 0..=max_len {
            for n in 0..ALPHABET.len().pow(len) {
                let mut k = n;
                for b in &mut value[..len as usize] {
                    *b = ALPHABET[k % ALPHABET.len()];
                    k /= ALPHABET.len();
                }
                let v = &value[..len as usize];
                assert_eq!(valid_host(v), valid_host_model(v), "{v:?}");
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            (0..=max_len).map(|l| ALPHABET.len().pow(l)).sum::<usize>()
        );
        for v in [
            &b"host:65535"[..],
            b"host:123456",
            b"12345678:1",
            b"h:1234567",
            b"1234567",
            b"h::80",
            b"h:80:",
            b"[::1]:123456",
        ] {
            assert_eq!(valid_host(v), valid_host_model(v), "{v:?}");
        }
    }

    #[test]
    fn error_table_is_complete() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!((400..600).contains(&e.status()));
        }
    }
}
