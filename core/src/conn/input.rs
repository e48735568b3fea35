//! The read side of a connection: where its buffered input lies, which read comes next
//! (split on a guess, straight into a body's slot, or into the read buffer), whether a read
//! drained the socket, and whether the connection wants input at all.

use core::ops::Range;

/// Where a connection's buffered input lies in its read buffer: bytes `start..end`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// First unconsumed byte.
    pub start: usize,
    /// One past the last byte read.
    pub end: usize,
}

impl Input {
    /// Whether nothing is buffered.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Makes room before a read into a buffer of `len` bytes: an emptied buffer starts over
    /// at its front; a buffer filled to its end, with consumed bytes at its front, has its
    /// rest moved to the front. Returns the range the caller moves to the front, if any.
    pub fn make_room(&mut self, len: usize) -> Option<Range<usize>> {
        if self.start == self.end {
            *self = Self::default();
            None
        } else if self.end == len && self.start > 0 {
            let moved = self.start..self.end;
            *self = Self {
                start: 0,
                end: moved.len(),
            };
            Some(moved)
        } else {
            None
        }
    }
}

/// The next read of a connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// One read split on a guess: head into the buffer, body into a slot, the rest after
    /// (`place::Plan`).
    Guess,
    /// The rest of a length-framed body, `body` bytes, straight into its slot, and whatever
    /// follows it into the empty buffer in the same call.
    Direct {
        /// Bytes the slot takes.
        body: usize,
    },
    /// Into the buffer, from its end of input up to `to`.
    Buffer {
        /// Where the read stops.
        to: usize,
    },
    /// The buffer is full: no read until the parser consumes some.
    Full,
}

/// Whether the next read may be split on a guess: the buffer is empty, no body is under way,
/// and no other connection waits for a request slot (the guess takes one).
#[must_use]
pub const fn may_guess(input: Input, body_under_way: bool, slot_waiters: bool) -> bool {
    input.end == 0 && !body_under_way && !slot_waiters
}

/// The next read, for `input` (after [`Input::make_room`]) in a buffer of `len` bytes:
/// on a guess when `planned` (a guess was allowed and a plan fits its slot), else straight
/// into a body's slot when the buffer is empty and the body allows it (`direct`, see
/// `BodyFraming::direct_read`), else into the buffer: `head_read` bytes when it is empty
/// (less than the whole buffer after a large body, see `body::head_read_after`), the rest
/// of it otherwise.
#[must_use]
pub fn next_read(
    input: Input,
    len: usize,
    head_read: usize,
    planned: bool,
    direct: Option<usize>,
) -> ReadKind {
    let empty = input.end == 0;
    if empty && planned {
        return ReadKind::Guess;
    }
    if let (true, Some(body)) = (empty, direct) {
        return ReadKind::Direct { body };
    }
    if input.end >= len {
        return ReadKind::Full;
    }
    let to = if empty { head_read.clamp(1, len) } else { len };
    ReadKind::Buffer { to }
}

/// Whether a read that returned `n` of the `asked` bytes drained the socket: a short read
/// does, with edge-triggered readiness (later data raises a new event), so the read that
/// would only confirm it is skipped; not after the peer's FIN was announced (`fin_seen`),
/// whose EOF must be read next or the connection would wait for a timeout.
#[must_use]
pub const fn drained(n: usize, asked: usize, fin_seen: bool) -> bool {
    n < asked && !fin_seen
}

/// What keeps a connection from reading more, as its flags stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    /// A request body is arriving.
    pub body_under_way: bool,
    /// The connection may take another request (`Conn::accepts_requests`).
    pub accepts_requests: bool,
    /// It waits in the handler's queue for a slot or a turn.
    pub queued: bool,
    /// The client is not reading its responses.
    pub write_blocked: bool,
}

impl Wants {
    /// Whether the connection wants input now: its body is arriving, or it may take another
    /// request, is not queued for one, and its client reads what it is sent.
    #[must_use]
    pub const fn input(self) -> bool {
        self.body_under_way || (self.accepts_requests && !self.queued && !self.write_blocked)
    }

    /// Whether, after a write, the connection goes back in the queue for a turn: it may
    /// take another request, is not queued or blocked, and has input to look at (the socket
    /// may have bytes, buffered bytes can be parsed, or a spill waits). Buffered requests
    /// raise no new socket event.
    #[must_use]
    pub const fn retry_after_write(self, has_input: bool) -> bool {
        has_input && self.accepts_requests && !self.queued && !self.write_blocked
    }
}

/// Whether a connection that turned readable joins the end of the queue for a slot instead
/// of reading: first come, first served while `waiting` connections wait for as many or more
/// than the `free` slots (its bytes wait in the kernel until its turn). Not a connection
/// being served from the queue (`retrying`), one already queued, or one whose body is
/// arriving (it holds its slot).
#[must_use]
pub const fn joins_slot_queue(
    retrying: bool,
    queued: bool,
    body_under_way: bool,
    waiting: usize,
    free: usize,
) -> bool {
    !retrying && !queued && !body_under_way && waiting >= free && waiting > 0
}
