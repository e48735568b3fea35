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

/// One term of the plan: `count` buffers (or tables) of `each` bytes, for `what`, sized by
/// `options`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Term {
    pub(crate) what: &'static str,
    pub(crate) count: u64,
    pub(crate) each: u64,
    pub(crate) options: &'static str,
}

impl Term {
    fn bytes(&self) -> u64 {
        self.count.saturating_mul(self.each)
    }
}

/// What the options need reserved, term by term, checked before anything is reserved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryPlan {
    /// Connections, large head buffers, small and large request slots, spare response
    /// buffers, rings, runner scratch, tables.
    pub(crate) terms: [Term; 9],
}

impl MemoryPlan {
    /// Every byte the plan reserves.
    pub(crate) fn total(&self) -> u64 {
        self.terms
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.bytes()))
    }

    /// The split, one term per line: `what: count x bytes = total`.
    pub(crate) fn split(&self) -> String {
        let mut out = String::new();
        for t in self.terms.iter().filter(|t| t.count > 0) {
            out.push_str(&format!(
                "  {}: {} x {} = {}\n",
                t.what,
                t.count,
                t.each,
                mib(t.bytes())
            ));
        }
        out
    }

    /// The error for a plan over `avail` bytes (`why` says what limits it): the total, then
    /// every term with the options that size it, largest first.
    pub(crate) fn refusal(&self, avail: u64, why: &str) -> io::Error {
        let mut terms = self.terms;
        terms.sort_by_key(|t| std::cmp::Reverse(t.bytes()));
        let mut text = format!(
            "the options need {} bytes reserved at startup but only {avail} are available \
             ({why}); lower the options of the largest terms:",
            self.total()
        );
        for t in terms.iter().filter(|t| t.count > 0) {
            text.push_str(&format!(
                "\n  {}: {} x {} bytes = {} ({})",
                t.what,
                t.count,
                t.each,
                mib(t.bytes()),
                t.options
            ));
        }
        io::Error::new(io::ErrorKind::OutOfMemory, text)
    }

    /// Refuses a plan that cannot fit in `available` bytes (`why` names the limit).
    pub(crate) fn check(&self, available: Option<(u64, &str)>) -> io::Result<()> {
        match available {
            Some((avail, why)) if self.total() > avail => Err(self.refusal(avail, why)),
            _ => Ok(()),
        }
    }
}

/// Bytes in MiB with two decimals, for people.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
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
    use super::{MemoryPlan, Term};

    const fn term(what: &'static str, count: u64, each: u64, options: &'static str) -> Term {
        Term {
            what,
            count,
            each,
            options,
        }
    }

    const PLAN: MemoryPlan = MemoryPlan {
        terms: [
            term("connections", 1_000_000, 25_000, "--max-connections"),
            term("large head buffers", 0, 24_000, "--max-head-bytes"),
            term("small request slots", 112, 20_000, "--slots"),
            term(
                "large request slots",
                16,
                220_000,
                "--slots, --max-body-bytes",
            ),
            term("spare response buffers", 8, 100_000, "--runners"),
            term("metrics buffers", 1, 100_000, "--handlers, --runners"),
            term("rings", 1, 1_000, "--handlers"),
            term("runner scratch", 2, 250, "--scratch, --frame-scratch"),
            term("tables", 1, 0, "--max-connections, --slots"),
        ],
    };

    #[test]
    fn a_plan_over_what_is_available_names_the_options_and_the_bytes() {
        let total = 25_000_000_000 + 2_240_000 + 3_520_000 + 800_000 + 100_000 + 1_000 + 500;
        assert_eq!(PLAN.total(), total);
        assert!(PLAN.check(None).is_ok(), "nothing known, nothing refused");
        assert!(PLAN.check(Some((u64::MAX, "plenty"))).is_ok());
        assert!(PLAN.check(Some((total, "exactly"))).is_ok());
        let err = PLAN
            .check(Some((1 << 30, "the address-space limit")))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
        let text = err.to_string();
        for part in [
            &total.to_string()[..],
            "--scratch",
            "1073741824",
            "the address-space limit",
            "--max-connections",
            "--slots",
            "--max-body-bytes",
            "large request slots: 16 x 220000 bytes",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
        assert!(
            !text.contains("large head buffers"),
            "empty terms are left out"
        );
        let first = text.find("connections:").unwrap();
        assert!(
            first < text.find("large request slots").unwrap(),
            "largest first"
        );
    }

    #[test]
    fn a_plan_that_overflows_is_refused_not_wrapped() {
        let mut huge = PLAN;
        huge.terms[0].count = u64::MAX;
        assert_eq!(huge.total(), u64::MAX);
        assert!(huge.check(Some((u64::MAX - 1, "x"))).is_err());
    }

    #[test]
    fn the_split_lists_each_term() {
        let split = PLAN.split();
        assert!(
            split.contains("small request slots: 112 x 20000 = 2.14 MiB"),
            "{split}"
        );
        assert_eq!(
            split.lines().count(),
            8,
            "every term with a count, tables too"
        );
    }
}
