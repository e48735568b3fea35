//! The runners' tick series: the lateness histogram type and its rendering, the latest
//! lateness, and how many requests each runner keeps.

use std::fmt::Write;

use httpd_runner_core::text::FixedBuf;

use super::{family, Counter, Metrics, Seconds, P};

/// Upper bounds of the tick-lateness histogram, in microseconds (from 1 µs).
pub(crate) const LATENESS_BUCKETS_US: [u64; 16] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// A histogram with one writer: a counter per bucket (the last one past every bound, not
/// cumulative; rendering sums) and the sum of the values, in µs.
#[derive(Debug)]
pub(crate) struct Histogram<const N: usize> {
    buckets: [Counter; N],
    sum_us: Counter,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Counter::default()),
            sum_us: Counter::default(),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Records `us` against `bounds` (`N - 1` of them).
    #[inline]
    pub(crate) fn observe(&self, bounds: &[u64], us: u64) {
        let i = bounds.iter().position(|&b| us <= b).unwrap_or(N - 1);
        self.buckets[i.min(N - 1)].inc();
        self.sum_us.add(us);
    }
}

impl Metrics {
    pub(super) fn render_ticks(&self, out: &mut FixedBuf<'_>) -> std::fmt::Result {
        family(
            out,
            "tick_lateness_seconds",
            "histogram",
            "How late runners' ticks ran after their time, all runners.",
        )?;
        let mut cumulative = 0;
        for (i, le) in LATENESS_BUCKETS_US.iter().chain([&u64::MAX]).enumerate() {
            cumulative += self
                .runners
                .iter()
                .map(|r| r.tick_lateness.buckets[i].get())
                .sum::<u64>();
            if *le == u64::MAX {
                writeln!(
                    out,
                    "{P}_tick_lateness_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
                )?;
            } else {
                writeln!(
                    out,
                    "{P}_tick_lateness_seconds_bucket{{le=\"{}\"}} {cumulative}",
                    Seconds(*le)
                )?;
            }
        }
        let sum: u64 = self
            .runners
            .iter()
            .map(|r| r.tick_lateness.sum_us.get())
            .sum();
        writeln!(out, "{P}_tick_lateness_seconds_sum {}", Seconds(sum))?;
        writeln!(out, "{P}_tick_lateness_seconds_count {cumulative}")?;
        family(
            out,
            "tick_lateness_max_seconds",
            "gauge",
            "The latest any tick of each runner ran.",
        )?;
        for (i, r) in self.runners.iter().enumerate() {
            writeln!(
                out,
                "{P}_tick_lateness_max_seconds{{runner=\"{i}\"}} {}",
                Seconds(r.tick_lateness_max_us.get())
            )?;
        }
        family(
            out,
            "runner_kept",
            "gauge",
            "Requests each runner keeps for a later answer now.",
        )?;
        for (i, r) in self.runners.iter().enumerate() {
            writeln!(out, "{P}_runner_kept{{runner=\"{i}\"}} {}", r.kept.get())?;
        }
        Ok(())
    }
}
