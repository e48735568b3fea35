//! `Config`: ranges refused by name, and values derived from others.

use super::*;

#[test]
fn the_default_passes_its_own_check() {
    assert_eq!(Config::DEFAULT.check(), Ok(()));
    assert_eq!(Config::DEFAULT.shed_after_us(), 50_000);
}

#[test]
fn out_of_range_values_are_refused_by_name() {
    for (cfg, name) in [
        (Config::DEFAULT.handlers(0), "handlers"),
        (Config::DEFAULT.max_connections(0), "max_connections"),
        (Config::DEFAULT.max_pipeline(MAX_PIPELINE), "max_pipeline"),
        (Config::DEFAULT.ring_capacity(Some(5000)), "ring_capacity"),
        (
            Config::DEFAULT.header_timeout(Duration::ZERO),
            "header_timeout",
        ),
    ] {
        let err = cfg.check().unwrap_err();
        assert!(err.starts_with(name), "{err}");
    }
}

#[test]
fn ring_capacity_follows_slots_up_to_the_ring() {
    assert_eq!(Config::DEFAULT.slots(7).ring_capacity_jobs(), 7);
    assert_eq!(Config::DEFAULT.slots(5000).ring_capacity_jobs(), 1024);
    assert_eq!(
        Config::DEFAULT.ring_capacity(Some(3)).ring_capacity_jobs(),
        3
    );
}

#[test]
fn runner_count_leaves_handlers_a_core() {
    let cores = available_cores();
    assert_eq!(Config::DEFAULT.runners(Some(3)).runner_count(), 3);
    assert_eq!(
        Config::DEFAULT.handlers(1).runner_count(),
        cores.saturating_sub(1).max(1)
    );
    assert_eq!(Config::DEFAULT.handlers(64).runner_count(), 1);
}
