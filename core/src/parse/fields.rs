//! The header fields the server acts on (Host, framing, Connection, Expect, Content-Type) and
//! the rules each must follow.

use super::{Error, Header};
use crate::text::is_reg_name_byte;

/// A Host value: `reg-name` or `[IP-literal]`, optionally `:port`; no userinfo.
pub(super) fn valid_host(v: &[u8]) -> bool {
    if v.first() == Some(&b'[') {
        return valid_ip_literal_host(v);
    }
    // The port is the digits after the last colon. Walk back over trailing digits (at most
    // one more than a port may hold): a colon before them starts the port; anything else
    // means the digits belong to the host, which the fold below then checks as a whole. A
    // reg-name holds no colon, so the fold refuses a colon anywhere else, and a port that
    // is too long or not all digits leaves a colon in the host.
    let mut start = v.len();
    while start > 0 && v.len() - start <= 5 && v[start - 1].is_ascii_digit() {
        start -= 1;
    }
    let host = match start.checked_sub(1) {
        Some(colon) if v[colon] == b':' && v.len() - start <= 5 => &v[..colon],
        _ => v,
    };
    // No early exit: hosts are short and almost always valid.
    host.iter().fold(true, |ok, &b| ok & is_reg_name_byte(b))
}

/// `[IP-literal]`, optionally `:port`.
pub(super) fn valid_ip_literal_host(v: &[u8]) -> bool {
    let Some(close) = v.iter().position(|&b| b == b']') else {
        return false;
    };
    let literal = &v[1..close];
    let literal_ok = !literal.is_empty()
        && literal
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
    literal_ok && valid_port(&v[close + 1..])
}

/// What may follow a Host's host part: nothing, or `:` and at most five digits.
pub(super) fn valid_port(rest: &[u8]) -> bool {
    match rest {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransferEncoding {
    Absent,
    /// Exactly `chunked` (possibly over several fields).
    Chunked,
    /// `chunked` not last, or repeated, or an empty list.
    NotFinal,
    /// Some coding other than `chunked`, with `chunked` last or absent.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    None,
    Continue,
    Other,
}

/// What the header fields say about framing and connection management.
#[derive(Debug)]
pub(super) struct Fields {
    pub(super) hosts: usize,
    pub(super) content_length: Option<u64>,
    pub(super) transfer_encoding: TransferEncoding,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) expect: Expect,
    /// `X-Deadline-Ms`, cut to the server's maximum.
    pub(super) deadline_ms: Option<u64>,
}

impl Fields {
    pub(super) fn scan(headers: &[Header<'_>]) -> Result<Self, Error> {
        let mut f = Self {
            hosts: 0,
            content_length: None,
            transfer_encoding: TransferEncoding::Absent,
            close: false,
            keep_alive: false,
            expect: Expect::None,
            deadline_ms: None,
        };
        let mut codings = Codings::default();
        let mut content_type: Option<&[u8]> = None;
        for h in headers {
            let name = h.name.as_bytes();
            // httparse trims a value's whitespace on both sides (it skips what follows the
            // colon, and cuts SP/HTAB before the line end): no second trim per field. Were
            // that to change, a padded value would fail the checks below (400), not pass.
            let value = h.value;
            debug_assert_eq!(value, trim_ows(value), "httparse left whitespace");
            // One comparison per field at most: the length picks the candidate.
            let is = |known: &[u8]| known.len() == name.len() && token_is(name, known);
            if is(b"host") {
                f.hosts += 1;
                if value.is_empty() || !valid_host(value) {
                    return Err(Error::InvalidHost);
                }
            } else if is(b"content-length") {
                let n = parse_content_length(value)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(Error::ConflictingContentLength);
                }
                f.content_length = Some(n);
            } else if is(b"transfer-encoding") {
                codings.add(value);
            } else if is(b"content-type") {
                if content_type.is_some_and(|prev| prev != value) {
                    return Err(Error::ConflictingContentType);
                }
                content_type = Some(value);
            } else if mimics_framing_field(name) {
                return Err(Error::AmbiguousFramingField);
            } else if is(b"connection") {
                for token in list(value) {
                    f.close |= token.eq_ignore_ascii_case(b"close");
                    f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if is(b"expect") {
                f.expect =
                    if value.eq_ignore_ascii_case(b"100-continue") && f.expect != Expect::Other {
                        Expect::Continue
                    } else {
                        Expect::Other
                    };
            } else if is(b"x-deadline-ms") {
                let ms =
                    crate::deadline::parse_budget_ms(value).map_err(|_| Error::InvalidDeadline)?;
                f.deadline_ms = Some(f.deadline_ms.map_or(ms, |prev: u64| prev.min(ms)));
            }
        }
        f.transfer_encoding = codings.verdict();
        Ok(f)
    }
}

/// Whether `name` (not itself `content-length` or `transfer-encoding`) becomes one of them
/// when its letters are folded and every other byte is dropped. Only names of 13 to 32 bytes
/// that start with `c` or `t` are looked at, so ordinary fields cost one length check.
pub(super) fn mimics_framing_field(name: &[u8]) -> bool {
    const TARGETS: [&[u8]; 2] = [b"contentlength", b"transferencoding"];
    if !(13..=32).contains(&name.len()) || !matches!(name[0] | 0x20, b'c' | b't') {
        return false;
    }
    let mut folded = [0u8; 16];
    let mut len = 0;
    for &b in name.iter().filter(|b| b.is_ascii_alphanumeric()) {
        let Some(at) = folded.get_mut(len) else {
            return false;
        };
        *at = b.to_ascii_lowercase();
        len += 1;
    }
    TARGETS.contains(&&folded[..len])
}

/// Whether the field name `token` is `lower`, ignoring ASCII case. `lower` is lowercase
/// letters and `-`; `token` is a token httparse accepted (tchar only), so setting bit 0x20 of
/// each byte folds exactly the letters: the only other byte it could turn into `-` is CR,
/// which no token holds. Both have the same length. No early exit: the compiler compares
/// many bytes per instruction.
pub(super) fn token_is(token: &[u8], lower: &[u8]) -> bool {
    token
        .iter()
        .zip(lower)
        .fold(0u8, |diff, (&t, &l)| diff | ((t | 0x20) ^ l))
        == 0
}

/// Accumulates Transfer-Encoding codings across fields.
#[derive(Debug, Default)]
pub(super) struct Codings {
    seen: bool,
    count: usize,
    chunked_count: usize,
    last_is_chunked: bool,
    other: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) {
        self.seen = true;
        for token in list(value) {
            // A coding may carry parameters (`gzip;q=1`): only the name matters here.
            let name_end = token.iter().position(|&b| b == b';').unwrap_or(token.len());
            let name = trim_ows(&token[..name_end]);
            let chunked = name.eq_ignore_ascii_case(b"chunked");
            self.count += 1;
            self.chunked_count += usize::from(chunked);
            self.other |= !chunked;
            self.last_is_chunked = chunked && name_end == token.len();
        }
    }

    fn verdict(&self) -> TransferEncoding {
        if !self.seen {
            TransferEncoding::Absent
        } else if self.count == 0 || self.chunked_count > 1 {
            TransferEncoding::NotFinal
        } else if self.other && (self.last_is_chunked || self.chunked_count == 0) {
            TransferEncoding::Unsupported
        } else if self.last_is_chunked {
            TransferEncoding::Chunked
        } else {
            TransferEncoding::NotFinal
        }
    }
}

/// Non-empty, OWS-trimmed elements of a comma-separated list.
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

pub(super) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// `Content-Length = 1*DIGIT`, without overflow, and without leading zeros: the grammar
/// allows `007`, but no client sends it, and a front proxy that reads `0200` as octal would
/// frame a different body than this server.
pub(super) fn parse_content_length(v: &[u8]) -> Result<u64, Error> {
    if v.is_empty() || (v.len() > 1 && v[0] == b'0') {
        return Err(Error::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(Error::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Error::InvalidContentLength)?;
    }
    Ok(n)
}

/// Whether the bytes of a request (complete or not, valid or not) begin with the method
/// `HEAD`: the answer to it, refusals and timeouts included, must carry no body (RFC 9110
/// §9.3.2), even when the rest of its head is missing or malformed.
#[must_use]
pub fn is_head_request(raw: &[u8]) -> bool {
    raw.starts_with(b"HEAD ")
}
