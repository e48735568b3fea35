//! The runners' tick series (how late ticks ran, the latest), the longest stall, and how
//! many requests each runner keeps.

use std::fmt::Write;

use super::{family, Metrics, Seconds, P};

impl Metrics {
    pub(super) fn render_ticks(&self, out: &mut impl Write) -> std::fmt::Result {
        family(
            out,
            "tick_lateness_seconds",
            "histogram",
            "How late runners' ticks ran after their time, all runners.",
        )?;
        let parts = self.runners.iter().map(|r| &r.tick_lateness);
        super::latency::render(out, "tick_lateness_seconds", None, parts)?;
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
            "runner_stall_max_seconds",
            "gauge",
            "The longest call (run, tick, alarm) past --stall-threshold of each runner.",
        )?;
        for (i, r) in self.runners.iter().enumerate() {
            writeln!(
                out,
                "{P}_runner_stall_max_seconds{{runner=\"{i}\"}} {}",
                Seconds(r.stall_max_us.get())
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
