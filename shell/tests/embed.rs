//! An embedding program: `Config` is a plain value, so the process environment and its
//! `HTTPD_RUNNER_*` variables play no part, and a bad value is an error, never an exit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use httpd_runner::{Builder, Config};

#[test]
fn garbage_in_the_environment_changes_nothing() {
    std::env::set_var("HTTPD_RUNNER_MAX_BODY_BYTES", "garbage");
    std::env::set_var("HTTPD_RUNNER_LISTEN", "not an address");
    let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap());
    assert_eq!(cfg, Config::DEFAULT.listen("127.0.0.1:0".parse().unwrap()));
    let server = Builder::new(cfg).start().expect("starts with the defaults");
    let mut c = TcpStream::connect(server.local_addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The default body limit (100 KiB) holds: a body of 100 KiB + 1 is refused.
    let body = 100 * 1024 + 1;
    write!(
        c,
        "POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: {body}\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    server.shutdown();
    server.wait().expect("stops cleanly");
}

#[test]
fn out_of_range_values_are_a_startup_error_naming_them() {
    let cfg = Config::with_listen("127.0.0.1:0".parse().unwrap()).handlers(0);
    let err = Builder::new(cfg).start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("handlers"), "{err}");
}
