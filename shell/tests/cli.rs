//! The binary's command line: help and bad values (which exit 2 before anything starts).

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_httpd-runner"))
}

#[test]
fn help_explains_every_option_with_defaults() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--handlers",
        "--runners",
        "--pin",
        "--no-pin",
        "--max-connections",
        "--max-body-bytes",
        "--max-head-bytes",
        "--slots",
        "--ring-capacity",
        "--max-pipeline",
        "--header-timeout",
        "--body-timeout",
        "--idle-timeout",
        "--shutdown-timeout",
        "--shutdown-token",
        "--runner",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}:\n{text}");
    }
    for default in [
        "127.0.0.1:8080",
        "102400",
        "10s",
        "60s",
        "5s",
        "HTTPD_RUNNER_LISTEN",
    ] {
        assert!(text.contains(default), "--help lacks {default}:\n{text}");
    }
}

#[test]
fn bad_values_exit_2_naming_the_option() {
    for (args, needle) in [
        (&["--max-body-bytes", "lots"][..], "--max-body-bytes"),
        (&["--handlers", "0"], "--handlers"),
        (&["--listen", "not-an-address"], "--listen"),
        (&["--header-timeout", "0s"], "--header-timeout"),
        (&["--runner", "bogus"], "--runner"),
        (&["--frobnicate"], "--frobnicate"),
    ] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn environment_variables_are_read() {
    let out = bin()
        .env("HTTPD_RUNNER_MAX_BODY_BYTES", "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-body-bytes"));
}

#[test]
fn a_busy_port_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin().args(["--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--listen {addr}: cannot listen")),
        "{err}"
    );
}
