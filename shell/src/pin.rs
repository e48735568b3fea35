//! Pinning runner threads to cores.

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
pub fn core_for(index: usize, cores: &[core_affinity::CoreId]) -> Option<core_affinity::CoreId> {
    if cores.is_empty() {
        None
    } else {
        Some(cores[index % cores.len()])
    }
}

/// Pins the calling thread to `core`.
#[must_use]
pub fn pin_current(core: Option<core_affinity::CoreId>) -> Pinning {
    match core {
        Some(c) if core_affinity::set_for_current(c) => Pinning::Pinned(c.id),
        Some(c) => Pinning::Refused(c.id),
        None => Pinning::Refused(0),
    }
}
