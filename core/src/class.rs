//! Size classes: how much memory each kind of buffer gets, how many of each a handler and a
//! runner hold, and which class a request needs.
//!
//! A connection reads into its own small buffer; a head that fills it moves to one of the
//! handler's few large head buffers and moves back once the input fits again (nginx's
//! `client_header_buffer_size` and `large_client_header_buffers`). Request slots come in two
//! classes: many small ones and a few large enough for the body limit, picked from the head's
//! length and the declared body; a chunked body starts small and moves up when it must. Every
//! slot holds a small response; a longer one grows into a spare buffer of its runner's. When
//! a class runs out, a request waits in arrival order (or is shed as any wait is); nothing is
//! allocated.

use crate::conn::input::Input;
use crate::limits::{
    Limits, CONNECTIONS_PER_LARGE_HEAD, MIN_LARGE_HEADS, MIN_LARGE_RESPONSE_BYTES,
    READ_BUFFER_BYTES, READ_SLACK_BYTES, RESPONSE_BUFFER_BYTES, SLOTS_PER_LARGE_SLOT,
    SMALL_BODY_BYTES, SPARE_RESPONSES_PER_RUNNER, SPARE_RING_SLOTS,
};
use crate::parse::Framing;

/// A request slot's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotClass {
    /// Ordinary heads and small bodies.
    #[default]
    Small,
    /// Heads and bodies up to the limits.
    Large,
}

impl SlotClass {
    /// Index into per-class arrays.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Bytes of each kind of buffer, from the request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// A connection's own read buffer.
    pub read: usize,
    /// A large head buffer (equal to `read` when no head can outgrow `read`).
    pub large_read: usize,
    /// Head and body a small slot holds.
    pub small_head: usize,
    /// See [`small_head`](Self::small_head).
    pub small_body: usize,
    /// Head and body a large slot holds: the limits.
    pub large_head: usize,
    /// See [`large_head`](Self::large_head).
    pub large_body: usize,
    /// The response body every slot holds.
    pub response: usize,
    /// A large response: a large slot's own, and each spare response buffer.
    pub large_response: usize,
}

impl Sizes {
    /// The sizes for `limits`.
    #[must_use]
    pub const fn new(limits: &Limits) -> Self {
        let large_read = limits.max_head_bytes + READ_SLACK_BYTES;
        let read = min(READ_BUFFER_BYTES, large_read);
        let large_response = max(limits.max_body_bytes, MIN_LARGE_RESPONSE_BYTES);
        Self {
            read,
            large_read,
            small_head: min(read, limits.max_head_bytes),
            small_body: min(SMALL_BODY_BYTES, limits.max_body_bytes),
            large_head: limits.max_head_bytes,
            large_body: limits.max_body_bytes,
            response: min(RESPONSE_BUFFER_BYTES, large_response),
            large_response,
        }
    }

    /// Whether a head can outgrow a connection's own buffer (then large head buffers exist).
    #[must_use]
    pub const fn has_large_heads(&self) -> bool {
        self.large_read > self.read
    }

    /// Whether some requests need a large slot (large slots exist anyway, for long
    /// responses the handler writes).
    #[must_use]
    pub const fn has_large_slots(&self) -> bool {
        self.large_head > self.small_head || self.large_body > self.small_body
    }

    /// Whether a response can outgrow a slot's own buffer (then runners hold spares).
    #[must_use]
    pub const fn has_spare_responses(&self) -> bool {
        self.large_response > self.response
    }

    /// The class a request needs: its head (`head_len`) and declared body must fit. A
    /// chunked body starts small ([`outgrows_small`](Self::outgrows_small)).
    #[must_use]
    pub const fn for_request(&self, head_len: usize, framing: Framing) -> SlotClass {
        let body = match framing {
            Framing::Length(n) => n,
            Framing::None | Framing::Chunked | Framing::TooLarge(_) => 0,
        };
        if head_len > self.small_head || body > self.small_body {
            SlotClass::Large
        } else {
            SlotClass::Small
        }
    }

    /// Whether a body being read into a slot of `class` must move to a large slot: the
    /// slot is full and more body is buffered.
    #[must_use]
    pub const fn outgrows_small(&self, class: SlotClass, spare: usize, more: bool) -> bool {
        matches!(class, SlotClass::Small) && spare == 0 && more && self.has_large_slots()
    }
}

/// How many buffers of each class a handler and a runner hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Large head buffers per handler.
    pub large_heads: usize,
    /// Small request slots per handler.
    pub small_slots: usize,
    /// Large request slots per handler.
    pub large_slots: usize,
    /// Spare response buffers per runner.
    pub spare_responses: usize,
}

impl Counts {
    /// The counts for a handler with `connections` connections and `slots` request slots,
    /// `large` of them large (`None`: [`default_large_slots`]), with buffers of `sizes`.
    #[must_use]
    pub const fn new(
        sizes: &Sizes,
        connections: usize,
        slots: usize,
        large: Option<usize>,
    ) -> Self {
        let large_heads = if sizes.has_large_heads() {
            min(
                max(connections / CONNECTIONS_PER_LARGE_HEAD, MIN_LARGE_HEADS),
                connections,
            )
        } else {
            0
        };
        // Even when every request fits a small slot, large ones hold the long responses the
        // handler writes itself (`/metrics`).
        let large_slots = match large {
            Some(n) => min(max(n, 1), slots),
            None => default_large_slots(slots),
        };
        let spare_responses = if sizes.has_spare_responses() {
            min(SPARE_RESPONSES_PER_RUNNER, SPARE_RING_SLOTS)
        } else {
            0
        };
        Self {
            large_heads,
            small_slots: slots - large_slots,
            large_slots,
            spare_responses,
        }
    }

    /// Slots of `class`.
    #[must_use]
    pub const fn slots(&self, class: SlotClass) -> usize {
        match class {
            SlotClass::Small => self.small_slots,
            SlotClass::Large => self.large_slots,
        }
    }
}

/// Large slots of `slots` by default: one in [`SLOTS_PER_LARGE_SLOT`], at least one.
#[must_use]
pub const fn default_large_slots(slots: usize) -> usize {
    min(max(slots / SLOTS_PER_LARGE_SLOT, 1), slots)
}

/// Whether a connection's input has filled its buffer of `len` bytes without a whole head
/// (the parser said partial): it needs a large head buffer to go on.
#[must_use]
pub const fn head_outgrows(input: Input, len: usize) -> bool {
    input.start == 0 && input.end >= len
}

/// Whether a connection holding a large head buffer can go back to its own buffer of
/// `len` bytes: its buffered input fits there.
#[must_use]
pub const fn input_fits(input: Input, len: usize) -> bool {
    input.end - input.start <= len
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Sizes = Sizes::new(&Limits::DEFAULT);

    #[test]
    fn the_defaults_split_ordinary_from_large() {
        assert_eq!(
            DEFAULT,
            Sizes {
                read: 4096,
                large_read: 16 * 1024 + 8192,
                small_head: 4096,
                small_body: 4096,
                large_head: 16 * 1024,
                large_body: 100 * 1024,
                response: 8192,
                large_response: 100 * 1024,
            }
        );
        let counts = Counts::new(&DEFAULT, 1028, 128, None);
        assert_eq!(
            counts,
            Counts {
                large_heads: 16,
                small_slots: 112,
                large_slots: 16,
                spare_responses: 4,
            }
        );
        assert_eq!(
            counts.slots(SlotClass::Small) + counts.slots(SlotClass::Large),
            128
        );
    }

    #[test]
    fn small_limits_need_no_large_class() {
        let limits = Limits {
            max_head_bytes: 1024,
            max_target_bytes: 512,
            max_body_bytes: 2048,
        };
        let s = Sizes::new(&limits);
        // The head limit plus slack still exceeds the own buffer: large heads exist, but a
        // small slot holds every head and body.
        assert_eq!((s.read, s.small_head, s.small_body), (4096, 1024, 2048));
        assert!(!s.has_large_slots());
        assert_eq!(s.for_request(1024, Framing::Length(2048)), SlotClass::Small);
        let c = Counts::new(&s, 10, 3, None);
        assert_eq!((c.small_slots, c.large_slots), (2, 1));
        assert!(!s.outgrows_small(SlotClass::Small, 0, true));
    }

    #[test]
    fn a_request_takes_the_class_its_head_and_declared_body_need() {
        let s = DEFAULT;
        assert_eq!(s.for_request(200, Framing::None), SlotClass::Small);
        assert_eq!(s.for_request(200, Framing::Length(4096)), SlotClass::Small);
        assert_eq!(s.for_request(200, Framing::Length(4097)), SlotClass::Large);
        assert_eq!(s.for_request(4097, Framing::None), SlotClass::Large);
        assert_eq!(s.for_request(200, Framing::Chunked), SlotClass::Small);
        assert!(s.outgrows_small(SlotClass::Small, 0, true));
        assert!(!s.outgrows_small(SlotClass::Small, 1, true), "room left");
        assert!(
            !s.outgrows_small(SlotClass::Small, 0, false),
            "nothing more yet"
        );
        assert!(!s.outgrows_small(SlotClass::Large, 0, true));
    }

    #[test]
    fn few_connections_or_slots_still_get_a_large_one() {
        let c = Counts::new(&DEFAULT, 2, 1, None);
        assert_eq!((c.large_heads, c.small_slots, c.large_slots), (2, 0, 1));
        let c = Counts::new(&DEFAULT, 100_000, 65_536, None);
        assert_eq!((c.large_heads, c.large_slots), (1562, 8192));
        let c = Counts::new(&DEFAULT, 1024, 128, Some(40));
        assert_eq!((c.small_slots, c.large_slots), (88, 40), "as asked");
        let c = Counts::new(&DEFAULT, 1024, 128, Some(500));
        assert_eq!(
            (c.small_slots, c.large_slots),
            (0, 128),
            "at most every slot"
        );
        let c = Counts::new(&DEFAULT, 1024, 128, Some(0));
        assert_eq!(c.large_slots, 1, "at least one");
    }

    #[test]
    fn a_full_buffer_of_partial_head_outgrows_it_and_fitting_input_goes_back() {
        let i = |start, end| Input { start, end };
        assert!(head_outgrows(i(0, 4096), 4096));
        assert!(!head_outgrows(i(0, 4095), 4096));
        assert!(
            !head_outgrows(i(10, 4096), 4096),
            "consumed bytes are moved out first"
        );
        assert!(input_fits(i(20_000, 24_000), 4096));
        assert!(!input_fits(i(0, 4097), 4096));
        assert!(input_fits(i(0, 0), 4096));
    }
}
