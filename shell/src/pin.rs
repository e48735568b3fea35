//! Pinning runner threads to cores, and keeping handler threads off them while load is light.

use httpd_runner_core::sched::Narrowing;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Where a runner ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Pinned to this core id.
    Pinned(usize),
    /// Pinning was not asked for.
    Off,
    /// The OS refused (or the core list was empty); the runner floats.
    Refused(usize),
}

impl std::fmt::Display for Pinning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pinned(core) => write!(f, "core {core}"),
            Self::Off => f.write_str("not pinned (--no-pin)"),
            Self::Refused(core) => write!(f, "not pinned (core {core} refused)"),
        }
    }
}

/// The core runner `index` should go to: runners spread over the available cores in order.
#[must_use]
pub(crate) fn core_for(
    index: usize,
    cores: &[core_affinity::CoreId],
) -> Option<core_affinity::CoreId> {
    if cores.is_empty() {
        None
    } else {
        Some(cores[index % cores.len()])
    }
}

/// Pins the calling thread to `core`.
#[must_use]
pub(crate) fn pin_current(core: Option<core_affinity::CoreId>) -> Pinning {
    match core {
        Some(c) if core_affinity::set_for_current(c) => Pinning::Pinned(c.id),
        Some(c) => Pinning::Refused(c.id),
        None => Pinning::Refused(0),
    }
}

/// A set of cores, as the kernel's affinity calls take it (rustix's `CpuSet`: cores
/// below [`CpuSet::MAX_CPU`]; cores past it are in no set).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreSet(CpuSet);

impl std::fmt::Debug for CoreSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries((0..CpuSet::MAX_CPU).filter(|&c| self.0.is_set(c)))
            .finish()
    }
}

impl CoreSet {
    /// No cores.
    #[must_use]
    pub(crate) fn empty() -> Self {
        Self(CpuSet::new())
    }

    /// Whether it holds no core.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.count() == 0
    }

    /// Whether `core` is in the set.
    #[must_use]
    #[cfg(test)]
    pub(crate) fn contains(&self, core: usize) -> bool {
        core < CpuSet::MAX_CPU && self.0.is_set(core)
    }

    /// The same set without `core`.
    #[must_use]
    pub(crate) fn without(mut self, core: usize) -> Self {
        if core < CpuSet::MAX_CPU {
            self.0.unset(core);
        }
        self
    }

    /// The same set with `core` (cores past the set's size cannot be added).
    #[must_use]
    #[cfg(test)]
    pub(crate) fn with(mut self, core: usize) -> Self {
        if core < CpuSet::MAX_CPU {
            self.0.set(core);
        }
        self
    }

    /// The cores the calling thread may run on, or `None` if the kernel would not say.
    #[must_use]
    pub(crate) fn of_current_thread() -> Option<Self> {
        sched_getaffinity(None).ok().map(Self)
    }

    /// Restricts the calling thread to these cores. Returns whether the kernel agreed.
    pub(crate) fn apply_to_current_thread(&self) -> bool {
        sched_setaffinity(None, &self.0).is_ok()
    }
}

/// Where a handler thread may run: anywhere it was allowed at startup, except that while
/// its load is light it keeps off the runners' cores (when it has others to go to).
///
/// Why: a handler and a runner that share a core take turns on it. Under load that is what
/// keeps a small machine's other cores free for whatever else runs there (a load generator in
/// the benchmarks), and the scheduler puts them together by itself. With requests coming
/// one at a time it is the slow case: the runner cannot poll for the next job without
/// taking the core from the handler, so both sleep between requests, and each request
/// waits for a sleeping core to wake. On separate cores the runner polls on its own and the
/// handler waits for answers on its own, and neither core sleeps while a client talks.
#[derive(Debug)]
pub(crate) struct Placement {
    wide: CoreSet,
    narrow: Option<CoreSet>,
    /// When to move (`sched::Narrowing`).
    narrowing: Narrowing,
}

impl Placement {
    /// For the calling thread, given the cores runners are pinned to. Inactive (never moves
    /// the thread) when the runners are not pinned, or cover every core the thread may use.
    #[must_use]
    pub(crate) fn for_current_thread(runner_cores: &[usize]) -> Self {
        let wide = CoreSet::of_current_thread();
        // No runner cores leave the set as it was, which the filter turns into `None`.
        let narrow = wide
            .map(|w| runner_cores.iter().fold(w, |s, &c| s.without(c)))
            .filter(|n| !n.is_empty() && Some(*n) != wide);
        Self {
            wide: wide.unwrap_or_else(CoreSet::empty),
            narrow,
            narrowing: Narrowing::default(),
        }
    }

    /// Whether the thread can be moved at all.
    #[must_use]
    #[cfg(test)]
    pub(crate) fn is_active(&self) -> bool {
        self.narrow.is_some()
    }

    /// Records one handler turn: off the runners' cores after a long streak of light turns,
    /// back to all its cores at the first turn that is not light (`sched::Narrowing`).
    /// Returns whether the thread's cores changed.
    pub(crate) fn observe(&mut self, light_turn: bool) -> bool {
        let Some(narrow) = self.narrow else {
            return false;
        };
        let Some(to_narrow) = self.narrowing.observe(light_turn) else {
            return false;
        };
        let set = if to_narrow { narrow } else { self.wide };
        if set.apply_to_current_thread() {
            true
        } else {
            // Refused (the process's cores changed under it, say): stop trying.
            self.narrowing.refused();
            self.narrow = None;
            false
        }
    }
}

/// Asks the kernel to run the calling thread (a runner with a tick) ahead of ordinary
/// threads when it wakes: `SCHED_FIFO` at the lowest real-time priority, so a tick is not
/// held back by a time slice of the load generator or a handler sharing its core. Without
/// the privilege (`CAP_SYS_NICE`) nothing changes. The kernel's real-time throttling still
/// leaves other threads 5 % of the core should a runner never sleep.
pub(crate) fn favour_current_thread() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter block.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpd_runner_core::limits::NARROW_AFTER_TURNS;

    #[test]
    fn core_sets_add_remove_and_tell() {
        let s = CoreSet::empty().with(0).with(65).with(5000);
        assert!(s.contains(0) && s.contains(65) && !s.contains(1) && !s.contains(5000));
        assert!(!s.is_empty());
        assert!(s.without(0).without(65).is_empty());
        assert_eq!(s.without(7), s);
    }

    #[test]
    fn placement_moves_off_runner_cores_after_a_light_streak_and_back_at_once() {
        // On a thread of its own: the test harness's threads keep their cores.
        std::thread::spawn(|| {
            let wide = CoreSet::of_current_thread().expect("the kernel reports our cores");
            let runner = (0..1024).find(|&c| wide.contains(c)).expect("some core");
            if wide.without(runner).is_empty() {
                eprintln!("skipped: this process may use one core only, nowhere to move to");
                return;
            }
            assert!(
                !Placement::for_current_thread(&[]).is_active(),
                "runners not pinned"
            );
            let all: Vec<usize> = (0..1024).filter(|&c| wide.contains(c)).collect();
            assert!(
                !Placement::for_current_thread(&all).is_active(),
                "runners on every core"
            );
            let mut p = Placement::for_current_thread(&[runner]);
            assert!(p.is_active());
            for turn in 1..NARROW_AFTER_TURNS {
                assert!(!p.observe(true), "moved after {turn} light turns");
            }
            assert!(
                p.observe(true),
                "no move after {NARROW_AFTER_TURNS} light turns"
            );
            let narrow = CoreSet::of_current_thread().expect("cores");
            assert_eq!(narrow, wide.without(runner));
            assert!(!p.observe(true), "moved again while still light");
            assert!(p.observe(false), "stayed narrow at a busy turn");
            assert_eq!(CoreSet::of_current_thread(), Some(wide));
            assert!(!p.observe(false));
            // The streak starts over.
            for _ in 1..NARROW_AFTER_TURNS {
                assert!(!p.observe(true));
            }
            assert!(p.observe(true));
        })
        .join()
        .expect("placement test thread");
    }
}
