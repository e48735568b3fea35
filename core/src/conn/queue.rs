//! The requests in flight on one connection, oldest first.

use crate::limits::MAX_PIPELINE;

/// One request in flight: its sequence number, its response once ready, and whether the
/// connection closes after it.
#[derive(Debug)]
pub(super) struct Pending<P> {
    pub(super) seq: u32,
    /// `None` while a runner is still working on it.
    pub(super) out: Option<P>,
    /// Close the connection after this response.
    pub(super) close: bool,
}

/// The requests in flight, oldest first: a ring of [`MAX_PIPELINE`] entries whose positions
/// wrap with a mask. Leaner than a general deque on the paths every request takes (length,
/// front, the `n`th entry), and it restarts at its first entry whenever it empties, so a
/// connection with one request at a time keeps using the same entry.
#[derive(Debug)]
pub(super) struct Queue<P> {
    entries: [Pending<P>; MAX_PIPELINE],
    /// Index of the oldest entry (0 when empty).
    start: usize,
    len: usize,
}

const _: () = assert!(MAX_PIPELINE.is_power_of_two());
const MASK: usize = MAX_PIPELINE - 1;

impl<P> Queue<P> {
    pub(super) fn new() -> Self {
        Self {
            entries: core::array::from_fn(|_| Pending {
                seq: 0,
                out: None,
                close: false,
            }),
            start: 0,
            len: 0,
        }
    }

    pub(super) const fn len(&self) -> usize {
        self.len
    }

    pub(super) const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry `at` places from the front.
    pub(super) fn get(&self, at: usize) -> Option<&Pending<P>> {
        (at < self.len).then(|| &self.entries[(self.start + at) & MASK])
    }

    pub(super) fn get_mut(&mut self, at: usize) -> Option<&mut Pending<P>> {
        (at < self.len).then(|| &mut self.entries[(self.start + at) & MASK])
    }

    pub(super) fn front(&self) -> Option<&Pending<P>> {
        self.get(0)
    }

    pub(super) fn back_mut(&mut self) -> Option<&mut Pending<P>> {
        let at = self.len.checked_sub(1)?;
        self.get_mut(at)
    }

    /// Queues `p` at the back; hands it back when all [`MAX_PIPELINE`] entries are taken.
    pub(super) fn push_back(&mut self, p: Pending<P>) -> Result<(), Pending<P>> {
        if self.len == MAX_PIPELINE {
            return Err(p);
        }
        self.entries[(self.start + self.len) & MASK] = p;
        self.len += 1;
        Ok(())
    }

    /// Takes the oldest entry. An emptied queue starts over at its first entry.
    pub(super) fn pop_front(&mut self) -> Option<Pending<P>> {
        if self.len == 0 {
            return None;
        }
        let e = &mut self.entries[self.start];
        let p = Pending {
            seq: e.seq,
            out: e.out.take(),
            close: e.close,
        };
        self.len -= 1;
        self.start = if self.len == 0 {
            0
        } else {
            (self.start + 1) & MASK
        };
        Some(p)
    }

    /// Takes the newest entry.
    pub(super) fn pop_back(&mut self) -> Option<Pending<P>> {
        let at = self.len.checked_sub(1)?;
        let e = &mut self.entries[(self.start + at) & MASK];
        let p = Pending {
            seq: e.seq,
            out: e.out.take(),
            close: e.close,
        };
        self.len -= 1;
        if self.len == 0 {
            self.start = 0;
        }
        Some(p)
    }

    /// The entries, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Pending<P>> {
        let (wrapped, from_start) = self.entries.split_at(self.start);
        let first = self.len.min(from_start.len());
        from_start[..first]
            .iter()
            .chain(wrapped[..self.len - first].iter())
    }

    /// The entries, oldest first.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending<P>> {
        let (wrapped, from_start) = self.entries.split_at_mut(self.start);
        let first = self.len.min(from_start.len());
        from_start[..first]
            .iter_mut()
            .chain(wrapped[..self.len - first].iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue against a model that shifts a plain array, over a pseudo-random run of
    /// pushes, pops, lookups, walks and changes at the back, so every start position and
    /// wrap-around is visited.
    #[test]
    pub(super) fn queue_agrees_with_a_shifting_model() {
        let mut q: Queue<u32> = Queue::new();
        let mut model = [(0u32, 0u32); MAX_PIPELINE];
        let mut len = 0usize;
        let mut next = 0u32;
        let mut x = 0x9e37_79b9_u32;
        let mut starts_seen = [false; MAX_PIPELINE];
        let steps = if cfg!(miri) { 2_000 } else { 200_000 };
        for _ in 0..steps {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 8 {
                0..=2 => {
                    let pushed = q.push_back(Pending {
                        seq: next,
                        out: Some(next),
                        close: false,
                    });
                    assert_eq!(pushed.is_ok(), len < MAX_PIPELINE);
                    if len < MAX_PIPELINE {
                        model[len] = (next, next);
                        len += 1;
                    }
                    next += 1;
                }
                3..=5 => {
                    let popped = q.pop_front().map(|p| (p.seq, p.out));
                    if len == 0 {
                        assert!(popped.is_none());
                    } else {
                        assert_eq!(popped, Some((model[0].0, Some(model[0].1))));
                        model.copy_within(1..len, 0);
                        len -= 1;
                    }
                }
                6 => {
                    if let Some(back) = q.back_mut() {
                        back.out = back.out.map(|v| v + 1_000_000);
                        model[len - 1].1 += 1_000_000;
                    } else {
                        assert_eq!(len, 0);
                    }
                }
                _ => {
                    let mut walked = 0;
                    for (i, p) in q.iter_mut().enumerate() {
                        assert_eq!((p.seq, p.out), (model[i].0, Some(model[i].1)));
                        walked += 1;
                    }
                    assert_eq!(walked, len);
                }
            }
            assert_eq!(q.len(), len);
            assert_eq!(q.is_empty(), len == 0);
            assert_eq!(q.front().map(|p| p.seq), (len > 0).then(|| model[0].0));
            for (i, &(seq, out)) in model[..len].iter().enumerate() {
                assert_eq!(q.get(i).map(|p| (p.seq, p.out)), Some((seq, Some(out))));
            }
            assert!(q.get(len).is_none());
            if len == 0 {
                assert_eq!(q.start, 0, "an emptied queue starts over");
            }
            starts_seen[q.start] = true;
        }
        assert!(
            starts_seen.iter().all(|&s| s),
            "every start position: {starts_seen:?}"
        );
    }
}
