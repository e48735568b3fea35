//! Reading a body in place: where one read made on a guess puts its bytes, and how the input
//! is made whole again when the guess was wrong.
//!
//! A connection whose last two heads had the same length probably sends a third like them.
//! The next read into an empty buffer is then one `readv` over three parts: the guessed head
//! into the read buffer, the guessed body straight into a request slot, and whatever follows
//! into the read buffer again. If the parser finds a head of exactly that length announcing
//! at least that much body, the slot becomes the request's and its body is never copied.
//! Otherwise [`Spot::undo`] copies the slot's bytes back behind the head, which leaves the
//! input as a plain read would have; what does not fit stays in the slot as a [`Spill`],
//! handed out before the socket is read again.
//!
//! Only offsets live here; the shell owns the buffers, the socket and the slots. Every
//! function is total: no input makes one index out of bounds (`tests` and the `placement`
//! fuzz target check that the bytes come out in the order they were read).

use crate::parse::Framing;

/// How the next request will probably look: a head of `head` bytes announcing `body` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guess {
    /// Head length in bytes.
    pub head: usize,
    /// Body length in bytes.
    pub body: usize,
}

/// Smallest body worth reading in place: below it, copying the body out of the read buffer
/// costs less than the extra `iovec` and the bookkeeping. Reading 1 KiB bodies in place also
/// keeps a connection's read buffer to the head's few cache lines, which matters with many
/// connections (the measurement is in `docs/performance.md`).
pub const IN_PLACE_MIN_BODY: usize = 256;

impl Guess {
    /// The guess for a connection's next request, made when a request's head is parsed:
    /// `head` is that head's length, `last_head` the one before it on the connection (0 for
    /// none), `framing` its body's framing (only `Content-Length` bodies are guessed), and
    /// `rbuf_len` the connection's read buffer. The next request is guessed to repeat this
    /// one only when
    /// - the head's length repeated (a client whose heads vary in length is never guessed,
    ///   so it never pays for undoing wrong guesses),
    /// - the body is at least [`IN_PLACE_MIN_BODY`] bytes, and
    /// - the head leaves that much room in the read buffer.
    #[must_use]
    pub fn after(last_head: usize, head: usize, framing: Framing, rbuf_len: usize) -> Option<Self> {
        let Framing::Length(body) = framing else {
            return None;
        };
        (head == last_head && body >= IN_PLACE_MIN_BODY && head + IN_PLACE_MIN_BODY <= rbuf_len)
            .then_some(Self { head, body })
    }
}

/// Where one read made on a [`Guess`] puts its bytes, in order: the read buffer's
/// `..head`, the slot body's `..room`, then the read buffer's `tail_at..tail_end`.
///
/// The tail normally starts after the body's whole room (`head + room`), so a wrong guess is
/// undone by copying the slot's bytes in front of it. When the guessed body is larger than
/// the read buffer's room after the head, the read asks for the head, the whole body and one
/// byte more (at `head`): one call instead of two, and the byte tells whether more input
/// waits. The slot keeps one byte free for that byte (see [`Spot::undo`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Bytes for the read buffer's front.
    pub head: usize,
    /// Bytes for the slot's body.
    pub room: usize,
    /// Where the tail goes in the read buffer.
    pub tail_at: usize,
    /// End of the tail's part of the read buffer.
    pub tail_end: usize,
}

impl Plan {
    /// The plan for `guess` with a read buffer of `rbuf_len` bytes and `spare_len` bytes free
    /// in the slot's body. `None` when the guessed head leaves no room in the read buffer or
    /// the slot has no room (the shell then reads plainly).
    #[must_use]
    pub fn new(guess: Guess, rbuf_len: usize, spare_len: usize) -> Option<Self> {
        let head = guess.head;
        if head == 0 || head >= rbuf_len || spare_len < 2 || guess.body == 0 {
            return None;
        }
        let back = rbuf_len - head;
        // One byte of the slot stays free for a large read's tail.
        let whole = guess.body.min(spare_len - 1);
        Some(if whole > back {
            Self {
                head,
                room: whole,
                tail_at: head,
                tail_end: head + 1,
            }
        } else {
            let room = guess.body.min(back).min(spare_len);
            Self {
                head,
                room,
                tail_at: head + room,
                tail_end: rbuf_len,
            }
        })
    }

    /// The three parts of `rbuf` (the read buffer) and `spare` (the slot body's free space)
    /// the read fills, in order. `rbuf` and `spare` are those the plan was made for.
    #[must_use]
    pub fn parts<'a>(&self, rbuf: &'a mut [u8], spare: &'a mut [u8]) -> [&'a mut [u8]; 3] {
        let (front, back) = rbuf.split_at_mut(self.head);
        [
            front,
            &mut spare[..self.room],
            &mut back[self.tail_at - self.head..self.tail_end - self.head],
        ]
    }

    /// Bytes the read asks for; a read that returns fewer drained the socket.
    #[must_use]
    pub const fn asked(&self) -> usize {
        self.head + self.room + (self.tail_end - self.tail_at)
    }

    /// Where a read of `n` bytes (at most [`asked`](Self::asked)) put them. `None` when they
    /// all went to the read buffer's front (`..n`): nothing reached the slot.
    #[must_use]
    pub fn spot(&self, n: usize) -> Option<Spot> {
        if n <= self.head {
            return None;
        }
        let body = (n - self.head).min(self.room);
        Some(Spot {
            head: self.head,
            room: self.room,
            body,
            tail: (n - self.head - body).min(self.tail_end - self.tail_at),
        })
    }
}

/// Where the bytes of a read made on a [`Guess`] went: `head` to the read buffer's front,
/// the next `body` (at most `room`) into the slot's body, and `tail` more to the read buffer
/// at `head + room`, or at `head` for a large read (see [`Plan`]: one whose `head + room`
/// passes the read buffer's end). The parser sees only the `head` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// Bytes at the read buffer's front.
    pub head: usize,
    /// The slot body's room the read offered.
    pub room: usize,
    /// Bytes in the slot's body.
    pub body: usize,
    /// Bytes after the body, in the read buffer.
    pub tail: usize,
}

impl Spot {
    /// Whether the parsed head confirms the guess the read was made on: a head of exactly
    /// the guessed length, announcing at least the body bytes the slot received. Then the
    /// slot is the request's; otherwise the read is undone ([`undo`](Self::undo)).
    #[must_use]
    pub const fn confirmed_by(&self, head_len: usize, framing: Framing) -> bool {
        matches!(framing, Framing::Length(n) if n >= self.body) && head_len == self.head
    }

    /// Whether the read was a large one (its tail went to `head`) for a read buffer of
    /// `rbuf_len` bytes.
    #[must_use]
    pub const fn is_large(&self, rbuf_len: usize) -> bool {
        self.head + self.room > rbuf_len
    }

    /// The guess was right (a head of `head` bytes announcing at least `body` bytes): the
    /// slot holds `body` bytes of the body, and the input after them is this range of the
    /// read buffer (of `rbuf_len` bytes).
    #[must_use]
    pub const fn tail_range(&self, rbuf_len: usize) -> core::ops::Range<usize> {
        let at = if self.tail > 0 && !self.is_large(rbuf_len) {
            self.head + self.room
        } else {
            self.head
        };
        at..at + self.tail
    }

    /// The guess was wrong: copies the slot's bytes back into `rbuf` right after the head
    /// part, where they join the tail, so that the input is `rbuf[..end]`, then whatever
    /// [`Spill`] is returned. `spare` is the slot body's free space the read went to.
    ///
    /// A large read's tail byte belongs after the slot's bytes: it moves into the slot's free
    /// byte, and what of them does not fit in the read buffer stays in the slot as a spill.
    #[must_use]
    pub fn undo(&self, rbuf: &mut [u8], spare: &mut [u8]) -> (usize, Option<Spill>) {
        let (head, body, tail) = (self.head, self.body, self.tail);
        if !self.is_large(rbuf.len()) {
            // The tail, non-empty only if the room was filled, is already at `head + body`.
            rbuf[head..head + body].copy_from_slice(&spare[..body]);
            return (head + body + tail, None);
        }
        if tail > 0 {
            spare[body] = rbuf[head];
        }
        let total = body + tail;
        let fits = total.min(rbuf.len() - head);
        rbuf[head..head + fits].copy_from_slice(&spare[..fits]);
        let spill = (fits < total).then_some(Spill {
            // Both within a slot's body, at most 64 MiB (`--max-body-bytes`).
            from: fits as u32,
            to: total as u32,
        });
        (head + fits, spill)
    }
}

/// Input a wrong guess left in a slot beyond what the read buffer could take back: the slot
/// body's bytes `from..to` come next, after what the read buffer holds. `u32` offsets keep
/// the connection's hot fields small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spill {
    /// First byte not yet handed out.
    pub from: u32,
    /// End of the spilled bytes.
    pub to: u32,
}

impl Spill {
    /// Copies as many spilled bytes as fit from `spare` (the slot body's space) to `out`, as
    /// if read from the socket. Returns how many; the spill is done when
    /// [`is_empty`](Self::is_empty).
    pub fn hand_out(&mut self, spare: &[u8], out: &mut [u8]) -> usize {
        let (from, to) = (self.from as usize, self.to as usize);
        let n = to.saturating_sub(from).min(out.len());
        out[..n].copy_from_slice(&spare[from..from + n]);
        self.from += n as u32;
        n
    }

    /// Whether every spilled byte was handed out.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.from >= self.to
    }
}

/// The model both the unit tests and the `placement` fuzz target check [`Plan`] and
/// [`Spot`] against: bytes scattered by one read come out in stream order.
#[cfg(any(test, fuzzing))]
pub mod model {
    use super::{Guess, Plan};

    /// Largest read buffer and slot room [`read_and_settle`] takes.
    pub const MAX: usize = 512;

    /// One read of `n` stream bytes (`n` is taken modulo what the plan asks for, plus one) on
    /// `guess`, with a read buffer of `rbuf_len` and slot room of `spare_len` bytes (both at
    /// most [`MAX`]), settled both ways: taken (the slot holds the body's first bytes, the
    /// tail range what followed) and undone (the read buffer, then the spill handed out as
    /// the front is consumed `consume` bytes at a time, is the stream). Panics if bytes come
    /// out otherwise; returns whether the read reached the slot.
    pub fn read_and_settle(
        guess: Guess,
        rbuf_len: usize,
        spare_len: usize,
        n: usize,
        consume: usize,
    ) -> bool {
        let stream: [u8; 3 * MAX] = core::array::from_fn(|i| (i * 7 + i / 251) as u8);
        let (mut rbuf, mut spare) = ([0u8; MAX], [0u8; MAX]);
        let (rbuf, spare) = (&mut rbuf[..rbuf_len], &mut spare[..spare_len]);
        let Some(plan) = Plan::new(guess, rbuf_len, spare_len) else {
            return false;
        };
        assert!(plan.asked() <= rbuf_len + spare_len);
        let n = n % (plan.asked() + 1);
        // The read scatters the stream's first `n` bytes over the three parts, in order.
        let mut at = 0;
        for part in plan.parts(rbuf, spare) {
            let k = part.len().min(n - at);
            part[..k].copy_from_slice(&stream[at..at + k]);
            at += k;
        }
        let Some(spot) = plan.spot(n) else {
            return false;
        };
        // Taken: the slot holds the body's first bytes and the tail range what followed.
        assert_eq!(&rbuf[..spot.head], &stream[..spot.head]);
        assert_eq!(
            &spare[..spot.body],
            &stream[spot.head..spot.head + spot.body]
        );
        let tail = spot.tail_range(rbuf_len);
        assert_eq!(&rbuf[tail], &stream[spot.head + spot.body..n]);
        // Undone: the read buffer, then the spill handed out as the front is consumed, is
        // the stream.
        let (mut end, mut spill) = spot.undo(rbuf, spare);
        let mut got = [0u8; 3 * MAX];
        let mut got_len = 0;
        let mut start = 0;
        loop {
            let take = (end - start).min(consume.max(1));
            got[got_len..got_len + take].copy_from_slice(&rbuf[start..start + take]);
            got_len += take;
            start += take;
            let Some(s) = spill.as_mut() else {
                if start == end {
                    break;
                }
                continue;
            };
            if start == end {
                (start, end) = (0, 0);
            } else if end == rbuf.len() {
                rbuf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            end += s.hand_out(spare, &mut rbuf[end..]);
            if s.is_empty() {
                spill = None;
            }
        }
        assert_eq!(&got[..got_len], &stream[..n]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::model::read_and_settle as check;
    use super::{Guess, Plan};

    /// A small deterministic generator (no `std`, no dependency).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    #[test]
    fn a_guess_is_made_only_when_the_head_repeats_and_the_body_is_worth_it() {
        use super::IN_PLACE_MIN_BODY as MIN;
        use crate::parse::Framing::{self, Chunked, Length, TooLarge};
        let g = |head, body| Some(Guess { head, body });
        // (last head, head, body, read buffer): the guess.
        let table = [
            ((120, 120, Length(1024), 4096), g(120, 1024)),
            ((120, 120, Length(MIN), 4096), g(120, MIN)),
            ((120, 120, Length(100_000), 4096), g(120, 100_000)),
            ((120, 121, Length(1024), 4096), None), // the head's length changed
            ((0, 120, Length(1024), 4096), None),   // the first request of a connection
            ((120, 120, Length(MIN - 1), 4096), None), // too small to be worth it
            ((120, 120, Framing::None, 4096), None), // no body
            ((120, 120, Chunked, 4096), None),      // no length to guess
            ((120, 120, TooLarge(1 << 20), 4096), None), // refused, never read
            ((120, 120, Length(1024), 120 + MIN), g(120, 1024)),
            ((120, 120, Length(1024), 120 + MIN - 1), None), // no room after the head
        ];
        for ((last, head, framing, rbuf), want) in table {
            assert_eq!(
                Guess::after(last, head, framing, rbuf),
                want,
                "{last} {head} {framing:?} {rbuf}"
            );
        }
    }

    #[test]
    fn bytes_read_on_a_guess_come_out_in_order_taken_or_undone() {
        let mut rng = Lcg(0x5eed);
        let rounds = if cfg!(miri) { 20 } else { 200_000 };
        let mut reached = 0;
        for _ in 0..rounds {
            let rbuf_len = 1 + rng.below(512);
            let spare_len = rng.below(512);
            let guess = Guess {
                head: rng.below(rbuf_len + 2),
                body: rng.below(1024),
            };
            reached += usize::from(check(
                guess,
                rbuf_len,
                spare_len,
                rng.below(1100),
                rng.below(600),
            ));
        }
        assert!(
            reached > rounds / 4,
            "{reached} of {rounds} reached the slot"
        );
    }

    #[test]
    fn large_reads_keep_a_byte_free_and_spill_what_does_not_fit() {
        // 100-byte read buffer, head 40: a 200-byte body cannot fit the 60 bytes after it.
        let plan = Plan::new(
            Guess {
                head: 40,
                body: 200,
            },
            100,
            300,
        )
        .unwrap();
        assert_eq!((plan.room, plan.tail_at, plan.tail_end), (200, 40, 41));
        assert_eq!(plan.asked(), 241);
        let spot = plan.spot(241).unwrap();
        assert!(spot.is_large(100));
        assert_eq!(
            (spot.body, spot.tail, spot.tail_range(100)),
            (200, 1, 40..41)
        );
        // A body that fits: the tail starts after its room.
        let plan = Plan::new(Guess { head: 40, body: 30 }, 100, 300).unwrap();
        assert_eq!((plan.room, plan.tail_at, plan.tail_end), (30, 70, 100));
        assert!(!plan.spot(80).unwrap().is_large(100));
        assert_eq!(plan.spot(80).unwrap().tail_range(100), 70..80);
        // The slot's last byte is kept for the tail byte.
        let plan = Plan::new(
            Guess {
                head: 40,
                body: 500,
            },
            100,
            300,
        )
        .unwrap();
        assert_eq!(plan.room, 299);
        for (guess, rbuf_len, spare_len) in [
            (Guess { head: 0, body: 10 }, 100, 300),
            (
                Guess {
                    head: 100,
                    body: 10,
                },
                100,
                300,
            ),
            (Guess { head: 10, body: 10 }, 100, 1),
        ] {
            assert_eq!(Plan::new(guess, rbuf_len, spare_len), None);
        }
        assert!(check(
            Guess {
                head: 40,
                body: 200
            },
            100,
            300,
            241,
            7
        ));
    }
}
