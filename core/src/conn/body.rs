//! A request body on its way in: how it is framed once its head is parsed, how buffered
//! input moves into its slot, when `100 Continue` is due, and how much the next read of a
//! head asks for after it.

use crate::limits::HEAD_READ_AFTER_LARGE_BODY_BYTES;
use crate::parse::{ChunkedDecoder, Error, Framing, Progress};

/// How the rest of a request's body is read.
#[derive(Debug)]
pub enum BodyFraming {
    /// This many bytes are left.
    Length(usize),
    /// Chunked, decoded as it arrives.
    Chunked(ChunkedDecoder),
}

/// What a parsed head means for its body.
#[derive(Debug)]
pub enum BodyStart {
    /// No body: the request is complete.
    None,
    /// Read a body framed so.
    Read(BodyFraming),
    /// Declared larger than the limit: answer 413 now, without reading the body (a client
    /// still sending it reads the 413 through the lingering close that follows).
    RefuseNow,
}

/// The body a head declares (`framing`), of which `in_place` bytes already sit in the slot
/// (read together with the head), with a body limit of `max_body_bytes`. A declared length
/// over the limit is refused as soon as the head is parsed, `Expect` or not (as nginx does):
/// a client that sends nothing more does not wait for the body timeout.
#[must_use]
pub fn body_start(framing: Framing, in_place: usize, max_body_bytes: usize) -> BodyStart {
    match framing {
        Framing::None => BodyStart::None,
        Framing::Length(n) => BodyStart::Read(BodyFraming::Length(n.saturating_sub(in_place))),
        Framing::Chunked => {
            BodyStart::Read(BodyFraming::Chunked(ChunkedDecoder::new(max_body_bytes)))
        }
        Framing::TooLarge(_) => BodyStart::RefuseNow,
    }
}

/// Why a body cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit: 413.
    TooLarge,
    /// Malformed chunked framing: the error's status.
    Malformed(Error),
}

impl BodyFraming {
    /// Moves buffered `input` into `spare` (the free part of the slot's body buffer).
    /// `Progress::done` says the body is complete.
    ///
    /// # Errors
    /// [`BodyError`] when the body is refused or malformed.
    pub fn advance(&mut self, input: &[u8], spare: &mut [u8]) -> Result<Progress, BodyError> {
        match self {
            Self::Length(left) => {
                let n = (*left).min(input.len());
                let Some(to) = spare.get_mut(..n) else {
                    // The parser bounded the length by the slot's capacity: cannot happen.
                    return Err(BodyError::TooLarge);
                };
                to.copy_from_slice(&input[..n]);
                *left -= n;
                Ok(Progress {
                    consumed: n,
                    produced: n,
                    done: *left == 0,
                })
            }
            Self::Chunked(decoder) => decoder.decode(input, spare).map_err(BodyError::Malformed),
        }
    }

    /// With nothing buffered, how many bytes of the body a read may put straight into the
    /// slot, given `spare` bytes free there: the rest of a length-framed body (chunked
    /// framing must be decoded from the read buffer).
    #[must_use]
    pub fn direct_read(&self, spare: usize) -> Option<usize> {
        match *self {
            Self::Length(left) => Some(left.min(spare)),
            Self::Chunked(_) => None,
        }
    }

    /// `n` body bytes were read straight into the slot (at most what
    /// [`direct_read`](Self::direct_read) allowed).
    pub fn took_direct(&mut self, n: usize) {
        if let Self::Length(left) = self {
            *left = left.saturating_sub(n);
        }
    }
}

/// Whether `100 Continue` is sent now for a request that asked for it: only while the client
/// waits (no body bytes arrived, none buffered) and nothing else is queued ahead on the connection (no earlier response unwritten, none partly written), so
/// the interim response cannot land inside another response.
#[must_use]
pub const fn continue_due(
    expect_continue: bool,
    body_bytes_arrived: bool,
    in_flight: usize,
    written: usize,
) -> bool {
    expect_continue && !body_bytes_arrived && in_flight == 1 && written == 0
}

/// How much the next read of a head asks for after a request framed by `framing`, with a
/// read buffer of `buf_len` bytes: after a body too large for the buffer, only
/// [`HEAD_READ_AFTER_LARGE_BODY_BYTES`], so that a request like it leaves its head and a few
/// KiB in the buffer and its body goes straight into the slot; otherwise the whole buffer.
#[must_use]
pub const fn head_read_after(framing: Framing, buf_len: usize) -> usize {
    match framing {
        Framing::Length(n) if n >= buf_len => HEAD_READ_AFTER_LARGE_BODY_BYTES,
        _ => buf_len,
    }
}
