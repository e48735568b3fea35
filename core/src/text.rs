//! Fixed-capacity text and byte buffers: nothing here grows past what it was given.
//!
//! [`FixedBuf`] tracks the filled part of a caller-owned slice (bodies, serialized heads);
//! [`HeaderLines`] holds response header lines a runner adds, checked as they go in;
//! [`RunnerKey`] is a request's affinity key, a heapless string.

use crate::limits::{MAX_RUNNER_KEY_BYTES, RUNNER_HEADER_BYTES};

/// A runner affinity key, copied out of the request.
pub type RunnerKey = heapless::String<MAX_RUNNER_KEY_BYTES>;

/// The buffer was too small for what was written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl core::fmt::Display for Full {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("fixed buffer full")
    }
}

/// A byte buffer over a caller-owned slice: `len` bytes filled, the rest spare.
///
/// Every write is all or nothing: bytes, a number or a whole `write!` either fit and are
/// appended, or leave the buffer as it was and mark it [`overflowed`](Self::overflowed).
///
/// A buffer may be offered one larger buffer in reserve ([`offer`](Self::offer)): a write
/// that does not fit then moves what was written into the reserve and goes on there, once.
/// The owner of both takes the larger one back with [`take_grown`](Self::take_grown).
#[derive(Debug)]
pub struct FixedBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
    /// Before growing: the larger buffer on offer. After: the buffer it started with.
    other: Option<&'a mut [u8]>,
    grown: bool,
}

impl<'a> FixedBuf<'a> {
    /// An empty buffer over `buf`; its capacity is `buf.len()`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            overflowed: false,
            other: None,
            grown: false,
        }
    }

    /// Offers `reserve` (a larger buffer) to grow into once; an earlier unused offer is
    /// returned. Nothing is offered to a buffer that already grew: `reserve` comes back.
    #[inline]
    pub fn offer(&mut self, reserve: &'a mut [u8]) -> Option<&'a mut [u8]> {
        if self.grown {
            return Some(reserve);
        }
        self.other.replace(reserve)
    }

    /// The reserve on offer, if the buffer did not grow into it.
    #[inline]
    pub fn take_offer(&mut self) -> Option<&'a mut [u8]> {
        if self.grown {
            None
        } else {
            self.other.take()
        }
    }

    /// Whether a reserve is on offer (a write past the capacity would grow into it).
    #[must_use]
    pub const fn can_grow(&self) -> bool {
        !self.grown && self.other.is_some()
    }

    /// Whether the buffer grew into its reserve.
    #[must_use]
    pub const fn grown(&self) -> bool {
        self.grown
    }

    /// After growing: goes back to the buffer it started with (emptied) and returns the
    /// larger one. `None` when it did not grow.
    #[inline]
    pub fn take_grown(&mut self) -> Option<&'a mut [u8]> {
        if !self.grown {
            return None;
        }
        let first = self.other.take()?;
        self.grown = false;
        self.len = 0;
        self.overflowed = false;
        Some(core::mem::replace(&mut self.buf, first))
    }

    /// Makes room for `end` filled bytes in all, past the capacity: true when the buffer
    /// grew into its reserve (copying what was written). Out of line: the writes that fit
    /// stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn room_for(&mut self, end: usize) -> bool {
        if end <= self.buf.len() {
            return true;
        }
        match self.other.take() {
            Some(bigger) if !self.grown && end <= bigger.len() => {
                bigger[..self.len].copy_from_slice(&self.buf[..self.len]);
                self.other = Some(core::mem::replace(&mut self.buf, bigger));
                self.grown = true;
                true
            }
            other => {
                self.other = other;
                false
            }
        }
    }

    /// Makes the spare part at least `n` bytes, growing into the reserve if need be, for a
    /// write through [`spare_mut`](Self::spare_mut) and [`advance`](Self::advance).
    ///
    /// # Errors
    /// [`Full`] when even the reserve is too small (the buffer is then marked overflowed).
    pub fn reserve(&mut self, n: usize) -> Result<(), Full> {
        match self.len.checked_add(n) {
            Some(end) if self.room_for(end) => Ok(()),
            _ => {
                self.overflowed = true;
                Err(Full)
            }
        }
    }

    /// Whether a write did not fit since the buffer was made or last cleared.
    #[must_use]
    pub const fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The filled bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The filled bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Bytes filled.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Nothing filled.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total room.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Empties the buffer (capacity unchanged) and forgets any overflow.
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Appends `bytes` whole, or nothing.
    ///
    /// # Errors
    /// [`Full`] when they do not fit; the buffer is unchanged.
    #[inline(always)]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), Full> {
        match self.len.checked_add(bytes.len()) {
            Some(end) if end <= self.buf.len() => {
                self.buf[self.len..end].copy_from_slice(bytes);
                self.len = end;
                Ok(())
            }
            _ => self.extend_past_capacity(bytes),
        }
    }

    /// [`extend_from_slice`](Self::extend_from_slice) past the capacity: into the reserve,
    /// or nothing.
    #[cold]
    #[inline(never)]
    fn extend_past_capacity(&mut self, bytes: &[u8]) -> Result<(), Full> {
        match self.len.checked_add(bytes.len()) {
            Some(end) if self.room_for(end) => {
                self.buf[self.len..end].copy_from_slice(bytes);
                self.len = end;
                Ok(())
            }
            _ => {
                self.overflowed = true;
                Err(Full)
            }
        }
    }

    /// Appends `n` in decimal.
    ///
    /// # Errors
    /// [`Full`] when it does not fit.
    #[inline]
    pub fn push_decimal(&mut self, n: u64) -> Result<(), Full> {
        // Digits go straight into place, last first (no scratch array and no copy call: this
        // runs twice per response head). One digit (a runner's index, an empty body's
        // length) skips the divisions.
        if n < 10 {
            return self.extend_from_slice(&[b'0' + n as u8]);
        }
        let mut width = 1;
        let mut rest = n / 10;
        while rest > 0 {
            width += 1;
            rest /= 10;
        }
        let Some(end) = self
            .len
            .checked_add(width)
            .filter(|&e| e <= self.buf.len() || self.room_for(e))
        else {
            self.overflowed = true;
            return Err(Full);
        };
        let mut n = n;
        for d in self.buf[self.len..end].iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len = end;
        Ok(())
    }

    /// The unfilled part, to read or decode into; then call [`advance`](Self::advance).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Marks `n` more bytes of the spare part as filled (clamped to the capacity).
    pub fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }
}

impl core::fmt::Write for FixedBuf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.extend_from_slice(s.as_bytes())
            .map_err(|_| core::fmt::Error)
    }

    /// A whole `write!`, or nothing: a formatted write that does not fit leaves none of its
    /// pieces behind (no half-written number or field in a body).
    fn write_fmt(&mut self, args: core::fmt::Arguments<'_>) -> core::fmt::Result {
        let before = self.len;
        let written = core::fmt::write(self, args);
        if written.is_err() {
            self.len = before;
            self.overflowed = true;
        }
        written
    }
}

/// Why a header line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The name is not an HTTP token.
    InvalidName,
    /// The value holds CR, LF, NUL or another control byte.
    InvalidValue,
    /// The name is one the server writes itself (framing and connection management).
    Reserved,
    /// No room left for it.
    Full,
}

/// Response header lines (`name: value\r\n`...) a runner adds, validated on the way in so a
/// runner cannot split the response or override framing.
#[derive(Debug)]
pub struct HeaderLines {
    bytes: [u8; RUNNER_HEADER_BYTES],
    len: usize,
}

impl Default for HeaderLines {
    fn default() -> Self {
        Self::new()
    }
}

/// Header names the server owns; runners may not set them. `Server` is not among them: the
/// server sends none (it would name the software to every client and cost every response
/// its bytes), and a runner that wants one sets it.
const RESERVED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

impl HeaderLines {
    /// No lines.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; RUNNER_HEADER_BYTES],
            len: 0,
        }
    }

    /// Appends `name: value`.
    ///
    /// # Errors
    /// A [`HeaderError`]; nothing is appended then.
    pub fn push(&mut self, name: &str, value: &[u8]) -> Result<(), HeaderError> {
        if name.is_empty() || !name.bytes().fold(true, |ok, b| ok & is_token_byte(b)) {
            return Err(HeaderError::InvalidName);
        }
        if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(HeaderError::Reserved);
        }
        // No early exit, so the compiler checks many bytes per instruction (values are short
        // and almost always valid).
        let valid = value.iter().fold(true, |ok, &b| {
            ok & ((b == b'\t') | ((b >= b' ') & (b != 0x7f)))
        });
        if !valid {
            return Err(HeaderError::InvalidValue);
        }
        let end = [name.len(), 2, value.len(), 2]
            .iter()
            .try_fold(self.len, |at, &n| at.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(HeaderError::Full)?;
        let mut at = self.len;
        for part in [name.as_bytes(), b": ", value, b"\r\n"] {
            self.bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.len = end;
        Ok(())
    }

    /// The lines, each ending in CRLF.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether a field named `name` was added.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.as_bytes().split(|&b| b == b'\n').any(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()] == b':'
        })
    }

    /// Removes every line.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// `tchar` of RFC 9110 §5.6.2.
#[must_use]
#[inline]
pub const fn is_token_byte(b: u8) -> bool {
    CLASSES[b as usize] & TOKEN != 0
}

/// RFC 3986 `unreserved / sub-delims` and `%` (of pct-encoded): the characters of a host
/// name, and the core of every path segment.
#[must_use]
#[inline]
pub const fn is_reg_name_byte(b: u8) -> bool {
    CLASSES[b as usize] & REG_NAME != 0
}

/// RFC 3986 characters allowed in a request target (no fragment, no spaces, ASCII only).
#[must_use]
#[inline]
pub const fn is_target_byte(b: u8) -> bool {
    CLASSES[b as usize] & TARGET != 0
}

const TOKEN: u8 = 1;
const REG_NAME: u8 = 2;
const TARGET: u8 = 4;

/// One lookup per byte instead of a chain of comparisons (these run over every request line,
/// host and header name).
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let token = alnum
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        let reg_name = alnum
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        let target = reg_name || matches!(b, b':' | b'@' | b'/' | b'?');
        table[i] =
            ((token as u8) * TOKEN) | ((reg_name as u8) * REG_NAME) | ((target as u8) * TARGET);
        i += 1;
    }
    table
};
