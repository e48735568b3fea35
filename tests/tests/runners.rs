//! Runners as a product: key affinity, X-Runner, panic isolation, and the examples.

use std::collections::{BTreeMap, BTreeSet};

use httpd_runner_tests::{built_example, metric_in, serial, Server};

fn req(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn same_key_same_runner_and_every_run_response_names_its_runner() {
    let _g = serial();
    let server = Server::start(&["--runners", "4", "--no-pin"]);
    let mut c = server.connect();
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..5 {
        for k in 0..40 {
            let key = format!("key-{k}");
            // The path form and the header form of the same key agree.
            let raw = if round % 2 == 0 {
                req("POST", &format!("/run/{key}"), "", b"x")
            } else {
                req("POST", "/run", &format!("X-Runner-Key: {key}\r\n"), b"x")
            };
            c.send(&raw);
            let r = c.read_response();
            assert_eq!(r.status, 200);
            by_key
                .entry(key)
                .or_default()
                .insert(r.header("x-runner").expect("X-Runner").to_owned());
        }
    }
    assert!(
        by_key.values().all(|runners| runners.len() == 1),
        "a key moved: {by_key:?}"
    );
    let used: BTreeSet<_> = by_key.values().flatten().collect();
    assert!(used.len() >= 3, "keys spread over the runners: {used:?}");
    // Without a key: spread over the runners (least loaded, ties in turn).
    let mut seen = BTreeSet::new();
    for _ in 0..16 {
        c.send(&req("GET", "/run", "", b""));
        seen.insert(
            c.read_response()
                .header("x-runner")
                .expect("X-Runner")
                .to_owned(),
        );
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn kv_example_keeps_each_key_on_its_shard() {
    let _g = serial();
    let server = Server::start_program(&built_example("kv"), &["--runners", "2", "--no-pin"]);
    let mut c = server.connect();
    let mut shard_of = BTreeMap::new();
    for k in 0..64 {
        c.send(&req(
            "PUT",
            &format!("/run/user-{k}"),
            "",
            format!("value {k}").as_bytes(),
        ));
        let r = c.read_response();
        assert_eq!(r.status, 201, "first PUT creates");
        shard_of.insert(k, r.header("x-runner").unwrap().to_owned());
    }
    for k in 0..64 {
        c.send(&req("GET", &format!("/run/user-{k}"), "", b""));
        let r = c.read_response();
        assert_eq!(
            (r.status, r.body.clone()),
            (200, format!("value {k}").into_bytes()),
            "key {k}"
        );
        assert_eq!(
            r.header("x-runner"),
            Some(shard_of[&k].as_str()),
            "key {k} on its runner"
        );
        assert_eq!(
            r.header("x-shard"),
            r.header("x-runner"),
            "the shard that answered owns the key"
        );
    }
    assert_eq!(
        shard_of.values().collect::<BTreeSet<_>>().len(),
        2,
        "both shards hold keys"
    );
    c.send(&req("DELETE", "/run/user-3", "", b""));
    let deleted = c.read_response();
    assert_eq!(deleted.status, 204);
    assert_eq!(
        deleted.header("content-length"),
        None,
        "RFC 9110 §8.6: no Content-Length in a 204"
    );
    c.send(&req("GET", "/run/user-3", "", b""));
    assert_eq!(c.read_response().status, 404);
    c.send(&req("GET", "/run", "", b""));
    assert_eq!(c.read_response().status, 400, "no key");
    let m = server.metrics();
    assert_eq!(
        metric_in(&m, "httpd_runner_allocations_after_startup_total", ""),
        0,
        "the example allocates nothing either"
    );
}

#[test]
fn transform_example_and_panic_isolation() {
    let _g = serial();
    let server =
        Server::start_program(&built_example("transform"), &["--runners", "2", "--no-pin"]);
    let mut c = server.connect();
    c.send(&req("POST", "/run/a", "", b"hello, World"));
    let r = c.read_response();
    assert_eq!(r.body, b"HELLO, WORLD");
    let fnv = b"hello, World".iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    assert_eq!(r.header("x-checksum"), Some(format!("{fnv:08x}").as_str()));
    let runner = r.header("x-runner").unwrap().to_owned();
    // Same key, same runner: its count goes up.
    c.send(&req("POST", "/run/a", "", b"x"));
    let r = c.read_response();
    assert_eq!(
        (r.header("x-runner"), r.header("x-served")),
        (Some(runner.as_str()), Some("2"))
    );
    // A panic on that runner: 500, counted, and the next request on it is served by a rebuilt
    // instance (its count starts over).
    c.send(&req("POST", "/run/a", "X-Panic: 1\r\n", b"boom"));
    let r = c.read_response();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-runner"), Some(runner.as_str()));
    c.send(&req("POST", "/run/a", "", b"after"));
    let r = c.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"AFTER"[..]));
    assert_eq!(
        (r.header("x-runner"), r.header("x-served")),
        (Some(runner.as_str()), Some("1"))
    );
    let m = server.metrics();
    assert_eq!(
        metric_in(
            &m,
            "httpd_runner_runner_panics_total",
            &format!("runner=\"{runner}\"")
        ),
        1
    );
    assert_eq!(
        metric_in(&m, "httpd_runner_runner_panics_total", ""),
        1,
        "only that runner panicked"
    );
    assert!(server.log().contains("X-Panic asked this runner to panic"));
}
