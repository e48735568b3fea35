//! Streaming decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! Feed it whatever bytes arrived; it writes chunk data into the caller's fixed body buffer,
//! says how much input it consumed, and reports completion after the final CRLF, leaving any
//! following bytes (the next pipelined request) unconsumed. Sizes are bounded by the body
//! limit (413), chunk-size lines and trailers by [`MAX_CHUNK_LINE_BYTES`] and
//! [`MAX_TRAILER_BYTES`]; malformed or overflowing sizes and missing CRLFs are 400. Chunk
//! extensions and trailer fields are checked for forbidden bytes, bounded and ignored.

use super::Error;
use crate::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};

/// Where the decoder is in the chunked grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// Inside chunk extensions (RFC 9112 §7.1.1), up to CR.
    Ext(Ext),
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Copying chunk data; this many bytes left.
    Data(u64),
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Where the decoder is in `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Before `;` (after the size or a complete extension); `ws`: whitespace seen.
    BeforeSemicolon { ws: bool },
    /// After `;`, before the name.
    BeforeName,
    /// In the name.
    Name,
    /// Whitespace after the name.
    AfterName,
    /// After `=`, before the value.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedEscape,
}

/// What one call to [`ChunkedDecoder::decode`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes used (never more than given).
    pub consumed: usize,
    /// Body bytes written to the front of `out`.
    pub produced: usize,
    /// The final chunk and trailers are complete.
    pub done: bool,
}

/// Incremental chunked-body decoder with a fixed body limit.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read (valid in `Size`/`Ext`/`SizeLf`).
    size: u64,
    /// Significant hex digits of `size` so far (more than 16 overflows a u64).
    digits: u32,
    /// Any digit at all in the current size line.
    any_digit: bool,
    /// Bytes of the current size line so far.
    line_bytes: usize,
    /// Bytes of trailer fields so far.
    trailer_bytes: usize,
    /// Body bytes decoded so far.
    total: usize,
    max_body_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body_bytes` decoded bytes.
    #[must_use]
    pub const fn new(max_body_bytes: usize) -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            any_digit: false,
            line_bytes: 0,
            trailer_bytes: 0,
            total: 0,
            max_body_bytes,
        }
    }

    /// Body bytes decoded so far.
    #[must_use]
    pub const fn total(&self) -> usize {
        self.total
    }

    /// Whether the whole body has been decoded.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input` into `out`, which must be the unfilled rest of the body buffer.
    /// When `out` has less room than the chunk data on hand, decoding stops early (consuming
    /// less); give it at least `max_body_bytes - total()` bytes to never stop early.
    ///
    /// # Errors
    /// [`Error::InvalidChunk`] for malformed framing (400), [`Error::PayloadTooLarge`] when
    /// the chunk sizes add up past the limit (413), [`Error::HeadTooLarge`] for oversized
    /// trailers (431). After an error the decoder must not be used again.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        let mut i = 0;
        let mut produced = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data(left) = self.state {
                let room = out.len() - produced;
                // `left` fits in usize: it is at most max_body_bytes (checked at the size line).
                let n = (left as usize).min(input.len() - i).min(room);
                if n == 0 {
                    break;
                }
                out[produced..produced + n].copy_from_slice(&input[i..i + n]);
                produced += n;
                i += n;
                self.total += n;
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            produced,
            done: self.state == State::Done,
        })
    }

    /// Advances the non-data states by one byte.
    fn step(&mut self, b: u8) -> Result<(), Error> {
        self.state = match self.state {
            State::Size | State::Ext(_) => {
                self.line_bytes += 1;
                if self.line_bytes > MAX_CHUNK_LINE_BYTES {
                    return Err(Error::InvalidChunk);
                }
                self.size_line_byte(b)?
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(Error::InvalidChunk);
                }
                let size = self.size;
                self.size = 0;
                self.digits = 0;
                self.any_digit = false;
                self.line_bytes = 0;
                if size == 0 {
                    State::TrailerStart
                } else {
                    State::Data(size)
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size,
            State::DataCr | State::DataLf => return Err(Error::InvalidChunk),
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                // A continuation line (obs-fold) or a bare LF is not allowed.
                b' ' | b'\t' | b'\n' => return Err(Error::InvalidChunk),
                _ => self.trailer_byte(b)?,
            },
            State::Trailer => self.trailer_byte(b)?,
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::TrailerLf | State::EndLf => return Err(Error::InvalidChunk),
            State::Data(_) | State::Done => self.state,
        };
        Ok(())
    }

    fn size_line_byte(&mut self, b: u8) -> Result<State, Error> {
        match self.state {
            State::Size => {
                if let Some(v) = hex_value(b) {
                    self.any_digit = true;
                    if self.size != 0 || v != 0 {
                        self.digits += 1;
                    }
                    if self.digits > 16 {
                        return Err(Error::InvalidChunk);
                    }
                    self.size = (self.size << 4) | u64::from(v);
                    return Ok(State::Size);
                }
                if !self.any_digit {
                    return Err(Error::InvalidChunk);
                }
                self.check_size()?;
                match b {
                    b'\r' => Ok(State::SizeLf),
                    b';' => Ok(State::Ext(Ext::BeforeName)),
                    b' ' | b'\t' => Ok(State::Ext(Ext::BeforeSemicolon { ws: true })),
                    _ => Err(Error::InvalidChunk),
                }
            }
            State::Ext(ext) => Self::ext_byte(ext, b),
            _ => Err(Error::InvalidChunk),
        }
    }

    /// One byte of the chunk-extension grammar. CR ends the line only after a complete
    /// extension (or directly after the size).
    fn ext_byte(ext: Ext, b: u8) -> Result<State, Error> {
        let ws = b == b' ' || b == b'\t';
        let token = crate::text::is_token_byte(b);
        let next = match (ext, b) {
            (Ext::BeforeSemicolon { .. }, _) if ws => Ext::BeforeSemicolon { ws: true },
            (Ext::BeforeSemicolon { ws: false } | Ext::Name | Ext::Token, b'\r') => {
                return Ok(State::SizeLf)
            }
            (Ext::BeforeSemicolon { .. } | Ext::Name | Ext::AfterName | Ext::Token, b';') => {
                Ext::BeforeName
            }
            (Ext::BeforeName, _) if ws => Ext::BeforeName,
            (Ext::BeforeName | Ext::Name, _) if token => Ext::Name,
            (Ext::Name | Ext::AfterName, _) if ws => Ext::AfterName,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::BeforeValue, _) if ws => Ext::BeforeValue,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::BeforeValue | Ext::Token, _) if token => Ext::Token,
            (Ext::Token, _) if ws => Ext::BeforeSemicolon { ws: true },
            (Ext::Quoted, b'"') => Ext::BeforeSemicolon { ws: false },
            (Ext::Quoted, b'\\') => Ext::QuotedEscape,
            (Ext::Quoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => {
                Ext::Quoted
            }
            (Ext::QuotedEscape, b'\t' | b' '..=b'~' | 0x80..=0xff) => Ext::Quoted,
            _ => return Err(Error::InvalidChunk),
        };
        Ok(State::Ext(next))
    }

    /// The chunk just sized must fit in what is left of the body limit.
    fn check_size(&self) -> Result<(), Error> {
        let room = (self.max_body_bytes - self.total) as u64;
        if self.size > room {
            Err(Error::PayloadTooLarge)
        } else {
            Ok(())
        }
    }

    fn trailer_byte(&mut self, b: u8) -> Result<State, Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(Error::HeadTooLarge);
        }
        match b {
            b'\r' => Ok(State::TrailerLf),
            b'\t' | b' '..=b'~' | 0x80..=0xff => Ok(State::Trailer),
            _ => Err(Error::InvalidChunk),
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
