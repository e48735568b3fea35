//! The threads' scheduling decisions, with time passed in explicitly.

use httpd_runner_core::limits::{
    AWAIT_RUNNERS_US, CONTENDED_YIELD_US, IDLE_SPINS, LIGHT_STREAK_TURNS, MEASURE_EVERY_JOBS,
    NARROW_AFTER_TURNS,
};
use httpd_runner_core::sched::{
    keep_polling, pick_handler, Awaiting, Idle, IdleStep, JobClock, Narrowing, Streak,
};

#[test]
fn light_load_takes_a_whole_streak_and_one_busy_turn_ends_it() {
    let mut s = Streak::default();
    for _ in 1..LIGHT_STREAK_TURNS {
        assert!(!s.observe(true));
    }
    assert!(s.observe(true));
    assert!(!s.observe(false));
    assert!(!s.is_light());
}

#[test]
fn a_reset_streak_counts_again_from_zero() {
    let mut s = Streak::default();
    for _ in 0..LIGHT_STREAK_TURNS {
        s.observe(true);
    }
    s.reset();
    assert!(!s.observe(true));
}

#[test]
fn narrowing_moves_off_after_the_long_streak_and_back_at_once() {
    let mut n = Narrowing::default();
    for turn in 1..NARROW_AFTER_TURNS {
        assert_eq!(n.observe(true), None, "turn {turn}");
    }
    assert_eq!(n.observe(true), Some(true));
    assert_eq!(n.observe(true), None);
    assert_eq!(n.observe(false), Some(false));
    assert_eq!(n.observe(false), None);
}

#[test]
fn a_refused_move_is_asked_for_again() {
    let mut n = Narrowing::default();
    for _ in 1..NARROW_AFTER_TURNS {
        n.observe(true);
    }
    assert_eq!(n.observe(true), Some(true));
    n.refused();
    assert_eq!(n.observe(true), Some(true));
}

/// Lets an idle runner spin until it polls or sleeps; returns which.
fn settle(idle: &mut Idle, window_us: u32, light: bool) -> IdleStep {
    loop {
        match idle.empty(window_us, || light) {
            IdleStep::Spin => {}
            other => return other,
        }
    }
}

fn one_job_stretches(idle: &mut Idle, n: u32, window_us: u32, light: bool) -> IdleStep {
    let mut last = IdleStep::Sleep;
    for _ in 0..n {
        idle.ran_job();
        last = settle(idle, window_us, light);
    }
    last
}

#[test]
fn an_idle_runner_spins_before_anything_else() {
    let mut idle = Idle::default();
    idle.ran_job();
    assert_eq!(idle.empty(50, || true), IdleStep::Spin);
    assert_eq!(
        idle.empty(50, || true),
        IdleStep::Sleep,
        "one stretch is no streak"
    );
    const { assert!(IDLE_SPINS > 1, "a spin checks the rings more than once") };
}

#[test]
fn one_job_stretches_in_a_streak_poll() {
    let mut idle = Idle::default();
    assert_eq!(
        one_job_stretches(&mut idle, LIGHT_STREAK_TURNS, 50, true),
        IdleStep::Poll
    );
}

#[test]
fn a_streak_short_by_one_sleeps() {
    let mut idle = Idle::default();
    assert_eq!(
        one_job_stretches(&mut idle, LIGHT_STREAK_TURNS - 1, 50, true),
        IdleStep::Sleep
    );
}

#[test]
fn a_zero_window_never_polls() {
    let mut idle = Idle::default();
    assert_eq!(
        one_job_stretches(&mut idle, 2 * LIGHT_STREAK_TURNS, 0, true),
        IdleStep::Sleep
    );
}

#[test]
fn busy_handlers_stop_polling() {
    let mut idle = Idle::default();
    assert_eq!(
        one_job_stretches(&mut idle, 2 * LIGHT_STREAK_TURNS, 50, false),
        IdleStep::Sleep
    );
}

#[test]
fn long_stretches_sleep() {
    let mut idle = Idle::default();
    for _ in 0..2 * LIGHT_STREAK_TURNS {
        idle.ran_job();
        idle.ran_job();
        assert_eq!(settle(&mut idle, 50, true), IdleStep::Sleep);
    }
}

#[test]
fn a_poll_that_runs_out_starts_the_streak_again() {
    let mut idle = Idle::default();
    assert_eq!(
        one_job_stretches(&mut idle, LIGHT_STREAK_TURNS, 50, true),
        IdleStep::Poll
    );
    idle.poll_ran_out();
    assert_eq!(settle(&mut idle, 50, true), IdleStep::Sleep);
    assert_eq!(
        one_job_stretches(&mut idle, LIGHT_STREAK_TURNS - 1, 50, true),
        IdleStep::Sleep
    );
    assert_eq!(one_job_stretches(&mut idle, 1, 50, true), IdleStep::Poll);
}

#[test]
fn a_poll_hit_spins_again_before_the_next_poll() {
    let mut idle = Idle::default();
    one_job_stretches(&mut idle, LIGHT_STREAK_TURNS, 50, true);
    idle.poll_hit();
    assert_eq!(idle.empty(50, || true), IdleStep::Spin);
}

macro_rules! polling {
    ($($name:ident: ($start:expr, $last:expr, $now:expr, $window:expr) => $keep:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(keep_polling($start, $last, $now, $window), $keep);
        }
    )*};
}

polling! {
    poll_within_the_window_after_a_short_yield: (1000, 1010, 1011, 50) => true;
    poll_stops_at_the_end_of_the_window: (1000, 1049, 1050, 50) => false;
    poll_stops_after_a_long_yield: (1000, 1000, 1000 + CONTENDED_YIELD_US, 500) => false;
    poll_keeps_going_just_under_a_long_yield: (1000, 1000, 999 + CONTENDED_YIELD_US, 500) => true;
    poll_with_a_zero_window_stops_at_once: (1000, 1000, 1000, 0) => false;
}

#[test]
fn the_clock_is_read_once_per_run_once_measured() {
    let mut c = JobClock::default();
    // After idling, the first job's end starts a measurement without observing.
    assert!(!c.wants_start(true));
    assert!(c.job_done(false, true));
    assert_eq!(c.read(100), None);
    // Within a run: no reading until the run's last job.
    assert!(!c.job_done(false, true));
    assert!(!c.job_done(false, true));
    assert!(c.job_done(true, true));
    assert_eq!(c.read(130), Some((30, 3)));
}

#[test]
fn a_long_run_is_measured_every_so_many_jobs() {
    let mut c = JobClock::default();
    c.job_done(false, true);
    c.read(0);
    for _ in 1..MEASURE_EVERY_JOBS {
        assert!(!c.job_done(false, true));
    }
    assert!(c.job_done(false, true));
    assert_eq!(c.read(160), Some((160, MEASURE_EVERY_JOBS)));
}

#[test]
fn before_the_first_measurement_every_job_is_timed_from_its_start() {
    let mut c = JobClock::default();
    assert!(c.wants_start(false));
    c.started(10);
    assert!(c.job_done(false, false));
    assert_eq!(c.read(25), Some((15, 1)));
    assert!(c.job_done(false, false));
    assert_eq!(c.read(27), Some((2, 1)));
}

#[test]
fn idle_time_is_never_measured() {
    let mut c = JobClock::default();
    c.job_done(true, true);
    c.read(10);
    c.idle();
    c.job_done(true, true);
    assert_eq!(c.read(5_000), None, "the idle gap is not a job's time");
}

#[test]
fn awaiting_starts_unmeasured_and_waits_only_for_quick_runners() {
    let mut a = Awaiting::default();
    assert!(!a.should_wait(true), "no answer yet: no estimate");
    a.answered(Some(AWAIT_RUNNERS_US));
    assert!(a.should_wait(true));
    assert!(!a.should_wait(false), "nothing out: nothing to wait for");
}

#[test]
fn awaiting_stops_after_a_wait_that_ran_out_until_an_answer() {
    let mut a = Awaiting::default();
    a.answered(Some(10));
    a.ran_out();
    assert!(!a.should_wait(true));
    a.answered(None);
    assert!(a.should_wait(true));
}

#[test]
fn awaiting_averages_an_eighth_at_a_time() {
    let mut a = Awaiting::default();
    a.answered(Some(10));
    for _ in 0..3 {
        a.answered(Some(1_000));
    }
    // 10 -> 133 -> 241 -> 335: slow answers stop the waits within a few.
    assert!(!a.should_wait(true));
    assert_eq!(Awaiting::wait_until(7), 7 + AWAIT_RUNNERS_US);
}

macro_rules! placing {
    ($($name:ident: ($open:expr, $cap:expr, $max:expr) => $pick:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(pick_handler(&$open, $cap, $max), $pick);
        }
    )*};
}

placing! {
    place_on_the_least_loaded_handler: ([3, 1, 2], 10, 100) => Some(1);
    place_ties_on_the_first: ([2, 2], 10, 100) => Some(0);
    place_skips_full_handlers: ([1, 10, 5], 5, 100) => Some(0);
    place_nowhere_when_every_handler_is_full: ([5, 5], 5, 100) => None;
    place_nowhere_at_the_connection_limit: ([2, 1], 10, 3) => None;
    place_one_below_the_limit: ([1, 1], 10, 3) => Some(0);
}

mod ticker {
    use httpd_runner_core::limits::MIN_TICK_US;
    use httpd_runner_core::sched::{Tick, Ticker};

    #[test]
    fn the_first_tick_is_one_period_after_start() {
        let mut t = Ticker::new(16_667, 1_000);
        assert_eq!(t.next_us(), 17_667);
        assert_eq!(t.until_next(1_000), 16_667);
        assert_eq!(t.due(17_666), None);
        assert_eq!(t.frame(), 0);
    }

    #[test]
    fn a_late_tick_reports_its_lateness_and_does_not_shift_the_grid() {
        let mut t = Ticker::new(1_000, 0);
        assert_eq!(
            t.due(1_040),
            Some(Tick {
                frame: 0,
                late_us: 40,
                skipped: 0
            })
        );
        assert_eq!(t.next_us(), 2_000, "on the grid, not 2_040");
        assert_eq!(t.frame(), 1);
        assert_eq!(t.until_next(1_040), 960);
        assert_eq!(t.due(2_000).map(|k| (k.frame, k.late_us)), Some((1, 0)));
    }

    #[test]
    fn missed_ticks_are_skipped_not_run_in_a_burst() {
        let mut t = Ticker::new(1_000, 0);
        let tick = t.due(3_500).unwrap();
        assert_eq!(
            tick,
            Tick {
                frame: 2,
                late_us: 500,
                skipped: 2
            }
        );
        assert_eq!(t.next_us(), 4_000);
        assert_eq!(t.due(3_999), None, "one tick per due time");
        assert_eq!(t.frame(), 3);
    }

    #[test]
    fn periods_are_clamped() {
        assert_eq!(Ticker::new(0, 0).period_us(), MIN_TICK_US);
        assert_eq!(Ticker::new(1, 5).next_us(), 5 + MIN_TICK_US);
    }
}
