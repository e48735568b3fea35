//! Requests a runner keeps to answer later: a fixed table of entries, each holding a
//! request (its slot) until the runner answers it or its deadline passes.
//!
//! A runner reserves an entry while it runs the request ([`KeptTable::reserve`]), and the
//! request is put there once `run` returns ([`KeptTable::fill`]); the runner's code holds a
//! [`Kept`] handle, an index with a generation, so a handle to an entry that was answered,
//! expired or reused since is refused instead of reaching another request. The table never
//! grows: its size is the most requests that can be out at the runner, fixed at startup.

use crate::deadline::{passed, NONE};

/// A handle to a kept request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kept {
    index: u32,
    generation: u32,
}

/// One entry of the table.
#[derive(Debug)]
pub struct Entry<T> {
    generation: u32,
    state: State<T>,
}

#[derive(Debug)]
enum State<T> {
    Free { next: u32 },
    Reserved,
    Held { item: T, due_us: u64 },
}

impl<T> Entry<T> {
    /// A free entry (for building the storage).
    #[must_use]
    pub const fn free() -> Self {
        Self {
            generation: 0,
            state: State::Free { next: u32::MAX },
        }
    }
}

/// The table of kept requests over caller-provided storage `S` (a slice of [`Entry`]).
#[derive(Debug)]
pub struct KeptTable<T, S> {
    entries: S,
    free_head: u32,
    held: usize,
    /// The earliest deadline among held entries; may be early, never late.
    next_due_us: u64,
    _t: core::marker::PhantomData<T>,
}

impl<T, S: AsRef<[Entry<T>]> + AsMut<[Entry<T>]>> KeptTable<T, S> {
    /// A table over `entries`, all free.
    pub fn new(mut entries: S) -> Self {
        let slice = entries.as_mut();
        let n = slice.len();
        for (i, e) in slice.iter_mut().enumerate() {
            let next = if i + 1 < n { (i + 1) as u32 } else { u32::MAX };
            e.state = State::Free { next };
        }
        Self {
            free_head: if n == 0 { u32::MAX } else { 0 },
            entries,
            held: 0,
            next_due_us: NONE,
            _t: core::marker::PhantomData,
        }
    }

    /// Requests held now.
    #[must_use]
    pub const fn held(&self) -> usize {
        self.held
    }

    /// The earliest deadline of a held request ([`NONE`] if none has one).
    #[must_use]
    pub const fn next_due_us(&self) -> u64 {
        self.next_due_us
    }

    /// Reserves an entry for the request being run. `None` when every entry is taken.
    pub fn reserve(&mut self) -> Option<Kept> {
        let index = self.free_head;
        let e = self.entries.as_mut().get_mut(index as usize)?;
        let State::Free { next } = e.state else {
            return None;
        };
        self.free_head = next;
        e.state = State::Reserved;
        Some(Kept {
            index,
            generation: e.generation,
        })
    }

    /// Puts the request into its reserved entry, with its deadline.
    ///
    /// # Errors
    /// Hands `item` back when `k` is not a reserved entry.
    pub fn fill(&mut self, k: Kept, item: T, due_us: u64) -> Result<(), T> {
        let Some(e) = self.entry_mut(k) else {
            return Err(item);
        };
        if !matches!(e.state, State::Reserved) {
            return Err(item);
        }
        e.state = State::Held { item, due_us };
        self.held += 1;
        self.next_due_us = self.next_due_us.min(due_us);
        Ok(())
    }

    /// Gives a reserved entry back unused (the run failed).
    pub fn cancel(&mut self, k: Kept) {
        if self
            .entry_mut(k)
            .is_some_and(|e| matches!(e.state, State::Reserved))
        {
            self.release(k.index);
        }
    }

    /// The deadline of a held request, if `k` still names one (`Some(NONE)`: no deadline).
    #[must_use]
    pub fn due_us(&self, k: Kept) -> Option<u64> {
        match &self.entry(k)?.state {
            State::Held { due_us, .. } => Some(*due_us),
            _ => None,
        }
    }

    /// The request `k` names, for reading.
    #[must_use]
    pub fn get(&self, k: Kept) -> Option<&T> {
        match &self.entry(k)?.state {
            State::Held { item, .. } => Some(item),
            _ => None,
        }
    }

    /// Takes the request `k` names out of the table, with its deadline. `None` when `k` was
    /// answered, expired or never filled.
    pub fn take(&mut self, k: Kept) -> Option<(T, u64)> {
        let e = self.entry_mut(k)?;
        if !matches!(e.state, State::Held { .. }) {
            return None;
        }
        let State::Held { item, due_us } =
            core::mem::replace(&mut e.state, State::Free { next: u32::MAX })
        else {
            return None;
        };
        self.held -= 1;
        self.release(k.index);
        Some((item, due_us))
    }

    /// Takes every held request whose deadline passed at `now_us` (all of them with
    /// `now_us == u64::MAX`) and gives it to `expired`.
    pub fn expire(&mut self, now_us: u64, mut expired: impl FnMut(T)) {
        if now_us < self.next_due_us && now_us != u64::MAX {
            return;
        }
        let mut next = NONE;
        for i in 0..self.entries.as_ref().len() {
            let e = &mut self.entries.as_mut()[i];
            let State::Held { due_us, .. } = e.state else {
                continue;
            };
            if now_us != u64::MAX && !passed(now_us, due_us) {
                next = next.min(due_us);
                continue;
            }
            let k = Kept {
                index: i as u32,
                generation: e.generation,
            };
            if let Some((item, _)) = self.take(k) {
                expired(item);
            }
        }
        self.next_due_us = next;
    }

    /// Takes every held request, whatever its deadline (the runner is being rebuilt or the
    /// server stops).
    pub fn drain(&mut self, expired: impl FnMut(T)) {
        self.expire(u64::MAX, expired);
    }

    fn entry(&self, k: Kept) -> Option<&Entry<T>> {
        self.entries
            .as_ref()
            .get(k.index as usize)
            .filter(|e| e.generation == k.generation)
    }

    fn entry_mut(&mut self, k: Kept) -> Option<&mut Entry<T>> {
        self.entries
            .as_mut()
            .get_mut(k.index as usize)
            .filter(|e| e.generation == k.generation)
    }

    fn release(&mut self, index: u32) {
        let head = self.free_head;
        let e = &mut self.entries.as_mut()[index as usize];
        e.generation = e.generation.wrapping_add(1);
        e.state = State::Free { next: head };
        self.free_head = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table<const N: usize>() -> KeptTable<u32, [Entry<u32>; N]> {
        KeptTable::new(core::array::from_fn(|_| Entry::free()))
    }

    #[test]
    fn a_kept_request_is_taken_once_by_its_handle() {
        let mut t = table::<2>();
        let k = t.reserve().unwrap();
        assert_eq!(t.take(k), None, "reserved, not yet filled");
        t.fill(k, 7, 100).unwrap();
        assert_eq!((t.held(), t.next_due_us(), t.get(k)), (1, 100, Some(&7)));
        assert_eq!(t.due_us(k), Some(100));
        assert_eq!(t.take(k), Some((7, 100)));
        assert_eq!(t.take(k), None, "a handle works once");
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn a_stale_handle_never_reaches_the_next_request_in_its_entry() {
        let mut t = table::<1>();
        let old = t.reserve().unwrap();
        t.fill(old, 1, NONE).unwrap();
        t.take(old).unwrap();
        let new = t.reserve().unwrap();
        t.fill(new, 2, NONE).unwrap();
        assert_ne!(old, new);
        assert_eq!(t.get(old), None);
        assert_eq!(t.take(old), None);
        assert_eq!(t.take(new), Some((2, NONE)));
    }

    #[test]
    fn the_table_is_fixed_and_entries_come_back() {
        let mut t = table::<3>();
        let ks: [Kept; 3] = core::array::from_fn(|_| t.reserve().unwrap());
        assert!(t.reserve().is_none(), "full");
        t.cancel(ks[1]);
        let again = t.reserve().unwrap();
        assert!(
            t.fill(ks[1], 9, NONE).is_err(),
            "a cancelled handle is stale"
        );
        t.fill(again, 9, NONE).unwrap();
        assert!(t.fill(again, 10, NONE).is_err(), "filled once");
    }

    #[test]
    fn expiry_takes_what_is_due_and_keeps_the_rest() {
        let mut t = table::<4>();
        let keep = |t: &mut KeptTable<u32, _>, v, due| {
            let k = t.reserve().unwrap();
            t.fill(k, v, due).unwrap();
            k
        };
        let a = keep(&mut t, 1, 50);
        let b = keep(&mut t, 2, 80);
        let c = keep(&mut t, 3, NONE);
        assert_eq!(t.next_due_us(), 50);
        let mut out = [0u32; 4];
        let mut n = 0;
        t.expire(49, |v| {
            out[n] = v;
            n += 1;
        });
        assert_eq!(n, 0);
        t.expire(50, |v| {
            out[n] = v;
            n += 1;
        });
        assert_eq!(&out[..n], &[1]);
        assert_eq!(t.next_due_us(), 80);
        assert_eq!(t.take(a), None, "expired");
        t.drain(|v| {
            out[n] = v;
            n += 1;
        });
        assert_eq!(&out[..n], &[1, 2, 3]);
        assert_eq!((t.take(b), t.take(c), t.held()), (None, None, 0));
        assert_eq!(t.next_due_us(), NONE);
    }

    #[test]
    fn an_empty_table_refuses() {
        let mut t = table::<0>();
        assert!(t.reserve().is_none());
    }
}
