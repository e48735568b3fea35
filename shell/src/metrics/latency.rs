//! Latency histograms with one writer each, buckets doubling from 1 µs
//! (`core::observe::bucket_of`), and their rendering with any labels.

use std::fmt::{Arguments, Display, Write};

use httpd_runner_core::limits::LATENCY_BOUNDS;
use httpd_runner_core::observe::{bound_us, bucket_of};

use httpd_runner_core::observe::STATUS_CLASSES;
use httpd_runner_core::route::RouteLabel;

use super::{family, Counter, Metrics, RunnerMetrics, Seconds, P};

/// A histogram with one writer: a counter per bucket (the last one past every bound; not
/// cumulative, rendering sums) and the sum of the values, in µs.
#[derive(Debug)]
pub(crate) struct Latency {
    buckets: [Counter; LATENCY_BOUNDS + 1],
    sum_us: Counter,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Counter::default()),
            sum_us: Counter::default(),
        }
    }
}

impl Latency {
    /// Records `us` microseconds. Only the owning thread may call this.
    #[inline]
    pub(crate) fn observe(&self, us: u64) {
        self.buckets[bucket_of(us)].inc();
        self.sum_us.add(us);
    }
}

/// Writes one histogram series (`_bucket` lines, `_sum`, `_count`) of family `name` with
/// `labels` (`runner="0"`; `None`: none), summing `parts` (one per writing thread).
pub(super) fn render<'a>(
    out: &mut impl Write,
    name: &str,
    labels: Option<Arguments<'_>>,
    parts: impl Iterator<Item = &'a Latency> + Clone,
) -> std::fmt::Result {
    let (lead, only) = (Lead(labels), Only(labels));
    let mut cumulative = 0;
    for k in 0..=LATENCY_BOUNDS {
        cumulative += parts.clone().map(|h| h.buckets[k].get()).sum::<u64>();
        if k == LATENCY_BOUNDS {
            writeln!(out, "{P}_{name}_bucket{{{lead}le=\"+Inf\"}} {cumulative}")?;
        } else {
            let le = Seconds(bound_us(k));
            writeln!(out, "{P}_{name}_bucket{{{lead}le=\"{le}\"}} {cumulative}")?;
        }
    }
    let sum = Seconds(parts.map(|h| h.sum_us.get()).sum());
    writeln!(out, "{P}_{name}_sum{only} {sum}")?;
    writeln!(out, "{P}_{name}_count{only} {cumulative}")
}

/// Labels before `le`: `runner="0",`, or nothing.
struct Lead<'a>(Option<Arguments<'a>>);

impl Display for Lead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.map_or(Ok(()), |l| write!(f, "{l},"))
    }
}

/// Labels alone: `{runner="0"}`, or nothing.
struct Only<'a>(Option<Arguments<'a>>);

impl Display for Only<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.map_or(Ok(()), |l| write!(f, "{{{l}}}"))
    }
}

/// Picks one histogram out of a runner's metrics.
type RunnerLatency = fn(&RunnerMetrics) -> &Latency;

impl Metrics {
    /// The per-layer latency histograms: queue wait and service time per runner, time to
    /// last byte per route and status class.
    pub(super) fn render_latency(&self, out: &mut impl Write) -> std::fmt::Result {
        let per_runner: [(&str, &str, RunnerLatency); 2] = [
            (
                "queue_wait_seconds",
                "Time from a handler's dispatch of a /run request to its runner taking it, per runner.",
                |r| &r.queue_wait,
            ),
            ("service_seconds", "Time a runner spent in run, per runner.", |r| &r.service),
        ];
        for (name, help, field) in per_runner {
            family(out, name, "histogram", help)?;
            for (i, r) in self.runners.iter().enumerate() {
                let labels = format_args!("runner=\"{i}\"");
                render(out, name, Some(labels), std::iter::once(field(r)))?;
            }
        }
        let name = "time_to_last_byte_seconds";
        family(out, name, "histogram", "Time from a request read whole to the last byte of its response written, by route and status class (a final refusal, route other, from when it was decided; not the 504 of a passed deadline).")?;
        for route in RouteLabel::ALL {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let labels = format_args!("route=\"{}\",class=\"{class}\"", route.label());
                let parts = self.handlers.iter().map(|h| &h.last_byte[route.index()][c]);
                render(out, name, Some(labels), parts)?;
            }
        }
        Ok(())
    }
}
