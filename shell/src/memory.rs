//! What startup reserves: the plan of bytes the options need, checked against what the
//! process can have before anything is reserved, and the pre-faulted pools themselves.

use std::io;

/// A zeroed buffer whose pages are already resident: reserved memory is touched at startup,
/// so serving never page-faults on it and resident memory does not creep up under load.
///
/// # Errors
/// `OutOfMemory` when the allocator refuses (never an abort).
pub(crate) fn prefaulted(len: usize) -> io::Result<Box<[u8]>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| out_of_memory(len))?;
    buf.resize(len, 0u8);
    let mut buf = buf.into_boxed_slice();
    // Zeroed pages from the allocator may not be mapped yet; one store per page maps them.
    // `black_box` keeps the optimizer from dropping stores of zero into zeroed memory.
    for page in buf.chunks_mut(4096) {
        page[0] = std::hint::black_box(0);
    }
    Ok(buf)
}

pub(crate) fn out_of_memory(bytes: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "could not reserve {bytes} bytes at startup: lower --max-connections, --slots, \
             --max-body-bytes or --max-head-bytes"
        ),
    )
}

/// What the options need reserved, term by term, checked before anything is reserved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryPlan {
    /// Connections in all (`--max-connections`, rounded up per handler).
    pub(crate) connections: u64,
    /// Bytes per connection (its read buffer and table entry).
    pub(crate) per_connection: u64,
    /// Request slots in all (`--slots` x `--handlers`).
    pub(crate) slots: u64,
    /// Bytes per slot (head copy, request body, response body).
    pub(crate) per_slot: u64,
    /// Bytes of rings.
    pub(crate) rings: u64,
    /// Bytes of runners' scratch memory and kept-request tables, all runners.
    pub(crate) runner_scratch: u64,
}

impl MemoryPlan {
    /// Every byte the plan reserves.
    pub(crate) fn total(&self) -> u64 {
        self.connections
            .saturating_mul(self.per_connection)
            .saturating_add(self.slots.saturating_mul(self.per_slot))
            .saturating_add(self.rings)
            .saturating_add(self.runner_scratch)
    }

    /// Refuses a plan that cannot fit in `available` bytes (`why` names the limit).
    pub(crate) fn check(&self, available: Option<(u64, &str)>) -> io::Result<()> {
        let total = self.total();
        match available {
            Some((avail, why)) if total > avail => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "the options need {total} bytes reserved at startup but only {avail} are \
                     available ({why}): {} connections (--max-connections) x {} bytes + {} \
                     request slots (--slots x --handlers) x {} bytes (--max-body-bytes, \
                     --max-head-bytes) + {} bytes of rings + {} bytes of runner scratch \
                     (--scratch, --frame-scratch); lower those options",
                    self.connections,
                    self.per_connection,
                    self.slots,
                    self.per_slot,
                    self.rings,
                    self.runner_scratch
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// How much memory this process can still reserve and touch: the smaller of the address-space
/// limit (`RLIMIT_AS`, less what is mapped now and room for thread stacks) and the memory the
/// kernel reports available. `None` when neither is known.
pub(crate) fn memory_available(threads: usize) -> Option<(u64, &'static str)> {
    let mut found: Option<(u64, &'static str)> = None;
    let mut consider = |bytes: u64, why: &'static str| {
        if found.is_none_or(|(b, _)| bytes < b) {
            found = Some((bytes, why));
        }
    };
    // The soft limit, from /proc/self/limits ("Max address space  SOFT  HARD  bytes").
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("Max address space"))?;
            line["Max address space".len()..]
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        });
    if let Some(soft) = soft {
        let mapped = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096);
        let stacks = threads as u64 * (2 << 20) + (16 << 20);
        consider(
            soft.saturating_sub(mapped + stacks),
            "the address-space limit, ulimit -v",
        );
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kib) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        consider(kib * 1024, "memory available, /proc/meminfo");
    }
    found
}

/// Carves `count` buffers of `len` bytes each off the front of `pool`.
pub(crate) fn carve(
    pool: &mut &'static mut [u8],
    count: usize,
    len: usize,
) -> Vec<&'static mut [u8]> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (piece, rest) = std::mem::take(pool).split_at_mut(len);
        out.push(piece);
        *pool = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::MemoryPlan;

    const PLAN: MemoryPlan = MemoryPlan {
        connections: 1_000_000,
        per_connection: 25_000,
        slots: 128,
        per_slot: 220_000,
        rings: 1_000,
        runner_scratch: 500,
    };

    #[test]
    fn a_plan_over_what_is_available_names_the_options_and_the_bytes() {
        assert_eq!(PLAN.total(), 25_000_000_000 + 28_160_000 + 1_000 + 500);
        assert!(PLAN.check(None).is_ok(), "nothing known, nothing refused");
        assert!(PLAN.check(Some((u64::MAX, "plenty"))).is_ok());
        let err = PLAN
            .check(Some((1 << 30, "the address-space limit")))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
        let text = err.to_string();
        for part in [
            "25028161500",
            "--scratch",
            "1073741824",
            "the address-space limit",
            "--max-connections",
            "--slots",
            "--max-body-bytes",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
    }

    #[test]
    fn a_plan_that_overflows_is_refused_not_wrapped() {
        let huge = MemoryPlan {
            connections: u64::MAX,
            ..PLAN
        };
        assert_eq!(huge.total(), u64::MAX);
        assert!(huge.check(Some((u64::MAX - 1, "x"))).is_err());
    }
}
