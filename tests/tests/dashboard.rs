//! The Grafana dashboard (`deploy/grafana/httpd-runner.json`) against the server: every
//! `httpd_runner_*` or `process_*` series a panel's query uses is in `/metrics` of a freshly
//! started server, before any request, so no panel stays empty for want of a renamed or
//! never-rendered series. The dashboard is read as text (no JSON parser): the `"expr"` values,
//! each under the latest `"title"` before it, and the metric names in each.

use std::collections::{BTreeMap, BTreeSet};

use httpd_runner_tests::{serial, Server};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/httpd-runner.json"
);

/// One panel that queries: its title and its queries' expressions.
struct Panel {
    title: String,
    exprs: Vec<String>,
}

/// Every string value of `key` in `json` (`"key" : "value"`), unescaped, with the offset of
/// its key.
fn strings_of(json: &str, key: &str) -> Vec<(usize, String)> {
    let needle = format!("\"{key}\"");
    json.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = json[at + needle.len()..].trim_start().strip_prefix(':')?;
            let mut chars = rest.trim_start().strip_prefix('"')?.chars();
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => return Some((at, value)),
                    '\\' => value.push(match chars.next()? {
                        'n' => '\n',
                        't' => '\t',
                        escaped => escaped,
                    }),
                    c => value.push(c),
                }
            }
        })
        .collect()
}

/// The panels of `json` that have queries, each expression under the title before it.
fn panels(json: &str) -> Vec<Panel> {
    let titles = strings_of(json, "title")
        .into_iter()
        .map(|(at, t)| (at, true, t));
    let exprs = strings_of(json, "expr")
        .into_iter()
        .map(|(at, e)| (at, false, e));
    let mut items: Vec<_> = titles.chain(exprs).collect();
    items.sort_unstable_by_key(|&(at, ..)| at);
    let mut panels: Vec<Panel> = Vec::new();
    for (_, is_title, text) in items {
        if is_title {
            panels.push(Panel {
                title: text,
                exprs: Vec::new(),
            });
        } else {
            let Some(panel) = panels.last_mut() else {
                panic!("an expr before any title: {text}");
            };
            panel.exprs.push(text);
        }
    }
    panels.retain(|p| !p.exprs.is_empty());
    panels
}

/// The server's series names in `expr`: maximal runs of `[A-Za-z0-9_:]` starting with
/// `httpd_runner_` or `process_`.
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("httpd_runner_") || word.starts_with("process_"))
}

/// The `names` no sample line of the exposition `metrics` is of (`NAME{...} v` or `NAME v`).
fn missing<'a>(metrics: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let samples: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
    names
        .into_iter()
        .filter(|&name| {
            !samples.iter().any(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
        })
        .collect()
}

/// `/metrics` of a server just started (no request before it), after a clean shutdown.
fn startup_metrics() -> String {
    let _serial = serial();
    let mut server = Server::start(&[]);
    let metrics = server.metrics();
    let (status, _) = server.shutdown();
    assert!(status.success(), "exit {status}; log:\n{}", server.log());
    metrics
}

/// The extractors: a quoted value with escapes and spaces around the colon, one metric name
/// out of a quantile query (not its functions, labels, numbers or range).
#[test]
fn the_extractors_find_exprs_and_metric_names() {
    let json = r#"{"title": "T", "targets": [{"expr" :  "a{b=\"c\"} / d", "refId": "A"}]}"#;
    let found = panels(json);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].title, "T");
    assert_eq!(found[0].exprs, [r#"a{b="c"} / d"#]);
    let expr =
        "histogram_quantile(0.99, sum by (le) (rate(httpd_runner_queue_wait_seconds_bucket[5m])))";
    assert_eq!(
        metric_names(expr).collect::<Vec<_>>(),
        ["httpd_runner_queue_wait_seconds_bucket"]
    );
}

/// Every series a panel uses is exposed from startup.
#[test]
fn every_series_a_panel_uses_is_exposed_from_startup() {
    let json =
        std::fs::read_to_string(DASHBOARD).unwrap_or_else(|e| panic!("reading {DASHBOARD}: {e}"));
    let panels = panels(&json);
    assert!(
        panels.len() >= 10,
        "only {} panels with queries in {DASHBOARD}",
        panels.len()
    );
    let mut users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for panel in &panels {
        for name in panel.exprs.iter().flat_map(|e| metric_names(e)) {
            users.entry(name).or_default().insert(panel.title.as_str());
        }
    }
    assert!(
        users.len() >= 15,
        "only {} metric names found in the panels: {:?}",
        users.len(),
        users.keys()
    );
    let metrics = startup_metrics();
    let absent = missing(&metrics, users.keys().copied());
    let report: Vec<String> = absent
        .iter()
        .map(|name| format!("{name} (used by: {:?})", users[name]))
        .collect();
    assert!(
        report.is_empty(),
        "series the dashboard uses but /metrics lacks:\n{}\n\n/metrics:\n{metrics}",
        report.join("\n")
    );
}

/// The check can fail: a made-up name, and a mere prefix of a real one, are reported missing
/// from the real `/metrics`, while the real name is not.
#[test]
fn a_series_the_server_lacks_is_reported_missing() {
    let metrics = startup_metrics();
    let names = [
        "httpd_runner_no_such_series",
        "httpd_runner_requests",
        "httpd_runner_requests_total",
    ];
    assert_eq!(
        missing(&metrics, names),
        ["httpd_runner_no_such_series", "httpd_runner_requests"]
    );
}
