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
