//! The connection's side of the socket: what the driver reports (readiness, a read's
//! outcome, bytes taken by the parser, a blocked write, the end) and what [`Conn`] answers
//! (the next read, whether to read at all, what a read means, how to end). The driver owns
//! the socket and the buffers; these methods own every decision about them.

use core::ops::Range;

use super::input::{drained, next_read, Input, ReadKind, Wants};
use super::{ending, Conn, Ending};
use crate::conn::body::head_read_after;
use crate::parse::Framing;
use crate::place::Guess;

/// What the socket last said, and where the buffered input lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadSide {
    input: Input,
    /// Bytes to ask for when reading into an empty buffer (`usize::MAX`: all of it).
    head_read: usize,
    /// The last request's head length (0 before the first).
    last_head: usize,
    /// How the next request will probably look (see [`Guess::after`]).
    guess: Option<Guess>,
    /// The socket may have unread bytes (readiness not yet consumed).
    readable: bool,
    /// The peer's EOF was read, or it reset the connection.
    peer_eof: bool,
    /// An event said the peer shut its sending side: the read that finds its EOF is made
    /// even after a short read.
    fin_seen: bool,
    /// The buffered input is the start of a head: nothing more parses until bytes arrive.
    awaiting_bytes: bool,
    /// The socket took only part of the ready responses: the client is not reading, so no
    /// new request is read until they are written.
    write_blocked: bool,
}

impl ReadSide {
    pub(super) const fn new() -> Self {
        Self {
            input: Input { start: 0, end: 0 },
            head_read: usize::MAX,
            last_head: 0,
            guess: None,
            readable: true,
            peer_eof: false,
            fin_seen: false,
            awaiting_bytes: false,
            write_blocked: false,
        }
    }
}

/// How a read of the socket went, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes arrived.
    Bytes(usize),
    /// End of input: the peer shut its sending side.
    Eof,
    /// Nothing to read now.
    WouldBlock,
    /// A signal interrupted the call.
    Interrupted,
    /// The peer reset the connection (or another error): nothing can be written either.
    Reset,
}

/// What a read means for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRead {
    /// `n` bytes arrived where the read put them.
    Got(usize),
    /// Interrupted: read again.
    Again,
    /// No bytes. `drop_body`: the peer closed while a request body was arriving, so that
    /// request can never complete and the driver frees what holds its body; `reset`: the
    /// peer reset the connection (the driver counts it; the connection closes).
    Stop {
        /// Free the body being read.
        drop_body: bool,
        /// The peer reset the connection.
        reset: bool,
    },
}

impl<P> Conn<P> {
    /// The socket became readable; `fin` when it also said the peer shut its sending side.
    pub fn on_readable(&mut self, fin: bool) {
        self.read.readable = true;
        self.read.fin_seen |= fin;
    }

    /// A read of `asked` bytes went as `outcome` says.
    pub fn on_read(&mut self, outcome: ReadOutcome, asked: usize) -> AfterRead {
        let r = &mut self.read;
        match outcome {
            ReadOutcome::Bytes(0) | ReadOutcome::Eof => {
                r.peer_eof = true;
                r.readable = false;
                AfterRead::Stop {
                    drop_body: self.peer_closed(),
                    reset: false,
                }
            }
            ReadOutcome::Bytes(n) => {
                r.awaiting_bytes = false;
                if drained(n, asked, r.fin_seen) {
                    r.readable = false;
                }
                AfterRead::Got(n)
            }
            ReadOutcome::WouldBlock => {
                r.readable = false;
                AfterRead::Stop {
                    drop_body: false,
                    reset: false,
                }
            }
            ReadOutcome::Interrupted => AfterRead::Again,
            ReadOutcome::Reset => {
                r.peer_eof = true;
                r.readable = false;
                self.peer_reset();
                AfterRead::Stop {
                    drop_body: false,
                    reset: true,
                }
            }
        }
    }

    /// Where the buffered input lies in the read buffer.
    #[must_use]
    pub const fn input(&self) -> Input {
        self.read.input
    }

    /// Makes room before a read into a buffer of `buf_len` bytes; the driver moves the
    /// returned range to the buffer's front ([`Input::make_room`]).
    pub fn make_room(&mut self, buf_len: usize) -> Option<Range<usize>> {
        self.read.input.make_room(buf_len)
    }

    /// The guess to plan the next read on, if one may be made now: the buffer is empty, no
    /// body is under way, and no other connection waits for a slot.
    #[must_use]
    pub fn guess(&self, body_under_way: bool, slot_waiters: bool) -> Option<Guess> {
        self.read
            .guess
            .filter(|_| super::input::may_guess(self.read.input, body_under_way, slot_waiters))
    }

    /// The next read into a buffer of `buf_len` bytes ([`next_read`]): `planned` when a
    /// guessed read's plan fits its slot, `direct` as `BodyFraming::direct_read` allows.
    #[must_use]
    pub fn next_read(&self, buf_len: usize, planned: bool, direct: Option<usize>) -> ReadKind {
        next_read(
            self.read.input,
            buf_len,
            self.read.head_read,
            planned,
            direct,
        )
    }

    /// Input arrived: it now ends at `end` in the read buffer.
    pub fn input_ends_at(&mut self, end: usize) {
        self.read.input.end = end;
        self.read.awaiting_bytes = false;
    }

    /// The parser took `n` bytes of the buffered input.
    pub fn consumed(&mut self, n: usize) {
        self.read.input.start += n;
    }

    /// The buffered input is now `input` (after a body read in place: what followed it).
    pub fn input_is(&mut self, input: Input) {
        self.read.input = input;
    }

    /// The buffered input is dropped (the connection is refused).
    pub fn discard_input(&mut self) {
        self.read.input.start = self.read.input.end;
    }

    /// The buffered input is the start of a head: wait for more bytes before parsing again.
    pub fn head_partial(&mut self, now_ms: u64) {
        self.on_data(now_ms);
        self.read.awaiting_bytes = true;
    }

    /// A head of `head_len` bytes framing its body so was taken, with a read buffer of
    /// `buf_len` bytes: how much the next head read asks for and what it guesses.
    pub fn head_taken(&mut self, head_len: usize, framing: Framing, buf_len: usize) {
        let r = &mut self.read;
        r.input.start += head_len;
        r.head_read = head_read_after(framing, buf_len);
        r.guess = Guess::after(r.last_head, head_len, framing, buf_len);
        r.last_head = head_len;
    }

    /// What keeps the connection from reading ([`Wants`]); `queued` when the driver has it
    /// waiting for a slot or a turn.
    #[must_use]
    pub fn wants(&self, body_under_way: bool, queued: bool) -> Wants {
        Wants {
            body_under_way,
            accepts_requests: self.accepts_requests(),
            queued,
            write_blocked: self.read.write_blocked,
        }
    }

    /// Whether to read the socket now: input may wait (the socket, or `spilled` bytes a
    /// wrong guess left), the peer has not ended, the connection wants input and is open.
    #[must_use]
    pub fn should_read(&self, spilled: bool, body_under_way: bool, queued: bool) -> bool {
        (self.read.readable || spilled)
            && !self.read.peer_eof
            && self.wants(body_under_way, queued).input()
            && !self.should_close()
    }

    /// Whether, after a write, the connection goes back in the driver's queue for a turn:
    /// it has input to look at (the socket, parseable buffered bytes, `spilled` bytes) and
    /// wants it ([`Wants::retry_after_write`]).
    #[must_use]
    pub fn retry_after_write(&self, spilled: bool, queued: bool) -> bool {
        let r = &self.read;
        let input = r.readable || (!r.input.is_empty() && !r.awaiting_bytes) || spilled;
        self.wants(false, queued).retry_after_write(input)
    }

    /// Whether the socket took everything it was given (`false`: the client is not reading
    /// its responses, so no new request is read until they are written).
    pub fn write_drained(&mut self, drained: bool) {
        self.read.write_blocked = !drained;
    }

    /// Whether the client left responses unread at the last write.
    #[must_use]
    pub const fn write_blocked(&self) -> bool {
        self.read.write_blocked
    }

    /// Its responses are all written: how it ends at `now_ms` ([`ending`]); a lingering
    /// close is remembered.
    pub fn end(&mut self, now_ms: u64, shutdown_deadline_ms: Option<u64>) -> Ending {
        let e = ending(
            now_ms,
            self.read.peer_eof,
            self.linger_until_ms.is_some(),
            shutdown_deadline_ms,
        );
        if let Ending::Linger { until_ms } = e {
            self.linger_until_ms = Some(until_ms);
        }
        e
    }

    /// Until when a lingering close discards input, while one is under way.
    #[must_use]
    pub const fn lingering(&self) -> Option<u64> {
        self.linger_until_ms
    }

    /// Whether nothing of the connection is under way: no request in flight, no body
    /// arriving, nothing buffered (it may close at once for a shutdown).
    #[must_use]
    pub fn is_quiet(&self, body_under_way: bool) -> bool {
        self.in_flight() == 0 && !body_under_way && self.read.input.is_empty()
    }
}
