//! Route to action to metric label, and the label enums `/metrics` is rendered from: every
//! `ALL` lists each value once, at its own index, with a distinct label.

use httpd_runner_core::admit::Shed;
use httpd_runner_core::conn::Timeout;
use httpd_runner_core::parse::{Error, Method};
use httpd_runner_core::response::{status_index, COUNTED_STATUSES};
use httpd_runner_core::route::{route, Action, RouteLabel, RUN_ALLOW};

macro_rules! actions {
    ($($name:ident: ($method:expr, $path:expr) => ($action:expr, $label:expr);)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(route($method, $path).action($path), ($action, $label));
        }
    )*};
}

actions! {
    run_goes_to_a_runner: (Method::Post, "/run") => (Action::Run, RouteLabel::Run);
    a_keyed_run_goes_to_a_runner: (Method::Get, "/run/room-7") => (Action::Run, RouteLabel::Run);
    shutdown_is_answered_here: (Method::Post, "/shutdown") => (Action::Shutdown, RouteLabel::Shutdown);
    metrics_are_answered_here: (Method::Get, "/metrics") => (Action::Metrics, RouteLabel::Metrics);
    health_is_answered_here: (Method::Head, "/health") => (Action::Health, RouteLabel::Health);
    an_unknown_path_is_404_other: (Method::Get, "/nope") => (Action::Status(404, None), RouteLabel::Other);
    a_wrong_method_is_405_under_its_resource: (Method::Get, "/shutdown") => (Action::Status(405, Some("POST, OPTIONS")), RouteLabel::Shutdown);
    options_on_run_is_200_under_run: (Method::Options, "/run") => (Action::Status(200, Some(RUN_ALLOW)), RouteLabel::Run);
    an_unknown_method_is_501_other: (Method::Other, "/run") => (Action::Status(501, None), RouteLabel::Other);
}

#[test]
fn a_key_too_long_is_414_under_run() {
    let path = format!("/run/{}", "k".repeat(1000));
    assert_eq!(
        route(Method::Get, &path).action(&path),
        (Action::Status(414, None), RouteLabel::Run)
    );
}

#[test]
fn route_labels_are_indexed_in_order_and_distinct() {
    for (i, l) in RouteLabel::ALL.iter().enumerate() {
        assert_eq!(l.index(), i);
        assert_eq!(
            RouteLabel::ALL
                .iter()
                .filter(|o| o.label() == l.label())
                .count(),
            1
        );
    }
    assert_eq!(RouteLabel::of_path("/run/x"), RouteLabel::Run);
    assert_eq!(RouteLabel::of_path("/runway"), RouteLabel::Other);
}

#[test]
fn timeout_labels_are_indexed_in_order_and_distinct() {
    let labels: Vec<_> = Timeout::ALL.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["head", "body", "idle", "write"]);
    for (i, t) in Timeout::ALL.iter().enumerate() {
        assert_eq!(t.index(), i);
    }
}

#[test]
fn shed_labels_are_indexed_in_order_and_distinct() {
    let labels: Vec<_> = Shed::ALL.iter().map(|s| s.label()).collect();
    assert_eq!(labels, ["ring_full", "queue_wait", "slot_wait"]);
    for (i, s) in Shed::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
    }
}

#[test]
fn counted_statuses_have_their_own_index_and_the_rest_share_other() {
    for (i, &s) in COUNTED_STATUSES.iter().enumerate() {
        assert_eq!(status_index(s), i);
    }
    assert_eq!(status_index(418), COUNTED_STATUSES.len());
    assert_eq!(status_index(0), COUNTED_STATUSES.len());
}

#[test]
fn parse_error_kinds_are_distinct() {
    for e in Error::ALL {
        assert_eq!(
            Error::ALL.iter().filter(|o| o.kind() == e.kind()).count(),
            1
        );
    }
}

#[test]
fn the_kernel_cuts_a_backlog_to_somaxconn_only_when_it_is_lower() {
    use httpd_runner_core::limits::effective_backlog;
    assert_eq!(effective_backlog(1024, Some(4096)), (1024, false));
    assert_eq!(effective_backlog(8192, Some(4096)), (4096, true));
    assert_eq!(effective_backlog(4096, Some(4096)), (4096, false));
    assert_eq!(effective_backlog(1024, None), (1024, false));
}

#[test]
fn the_open_file_limit_is_raised_only_as_far_as_needed() {
    use httpd_runner_core::limits::{open_file_limit, open_files_needed, SPARE_OPEN_FILES};
    let needs = open_files_needed(1024, 1);
    assert_eq!(needs, 1024 + 4 + SPARE_OPEN_FILES);
    // (soft, hard, needs) -> the soft limit to run with
    assert_eq!(open_file_limit(1024, 4096, needs), Some(needs));
    assert_eq!(open_file_limit(65_536, 65_536, needs), Some(65_536));
    assert_eq!(open_file_limit(needs, needs, needs), Some(needs));
    assert_eq!(open_file_limit(256, 256, needs), None);
    assert_eq!(open_file_limit(1024, needs - 1, needs), None);
    assert_eq!(open_file_limit(1024, u64::MAX, needs), Some(needs));
}

#[test]
fn accept_errors_are_reported_at_most_once_per_period() {
    use httpd_runner_core::sched::RateLimit;
    let mut r = RateLimit::new(1000);
    // The first events are reported at once.
    assert_eq!(r.event(5, 2), Some(2));
    assert_eq!(r.event(6, 1), None);
    assert_eq!(r.event(900, 3), None);
    assert_eq!(
        r.event(1004, 1),
        None,
        "a period after the report, not after the event"
    );
    // The next report covers the events held back and its own.
    assert_eq!(r.event(1005, 1), Some(6));
    assert_eq!(r.event(1006, 1), None);
    assert_eq!(r.event(5000, 4), Some(5));
}
