//! Sockets: the listeners (TCP or a Unix socket for the data plane, TCP for the admin plane)
//! and the connection streams they hand to handlers. Handlers see one [`Stream`] type, so a
//! Unix-socket connection takes the same path as a TCP one.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};

use httpd_runner_core::route::Plane;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

/// Where a listener is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address (port 0 picks a free port).
    Tcp(SocketAddr),
    /// A Unix stream socket at this path.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    /// `ADDR:PORT` (IPv6 in brackets) or `unix:PATH`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("unix:") {
            Some("") => Err("unix: needs a path, as in unix:/run/httpd-runner.sock".into()),
            Some(path) => Ok(Self::Unix(PathBuf::from(path))),
            None => s
                .parse()
                .map(Self::Tcp)
                .map_err(|e| format!("{e}: expected ADDR:PORT (IPv6 as [ADDR]:PORT) or unix:PATH")),
        }
    }
}

/// A listening socket.
#[derive(Debug)]
pub(crate) enum Listening {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listening {
    /// Accepts one connection.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        match self {
            Self::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
            Self::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    /// Where it listens (the real port when 0 was asked for).
    pub(crate) fn endpoint(&self, asked: &Endpoint) -> io::Result<Endpoint> {
        match self {
            Self::Tcp(l) => l.local_addr().map(Endpoint::Tcp),
            Self::Unix(_) => Ok(asked.clone()),
        }
    }
}

impl Source for Listening {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.register(r, t, i),
            Self::Unix(l) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.reregister(r, t, i),
            Self::Unix(l) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.deregister(r),
            Self::Unix(l) => l.deregister(r),
        }
    }
}

/// Binds a listener: TCP non-blocking with `SO_REUSEADDR` (and `SO_REUSEPORT` when asked) and
/// a listen queue of `backlog` (the kernel cuts it to `somaxconn`); a Unix socket replaces a
/// stale socket file at its path, but never another kind of file.
pub(crate) fn bind(at: &Endpoint, backlog: u32, reuse_port: bool) -> io::Result<Listening> {
    use socket2::{Domain, Protocol, Socket, Type};
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    match at {
        Endpoint::Tcp(addr) => {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            if reuse_port {
                socket.set_reuse_port(true)?;
            }
            if let SocketAddr::V6(v6) = addr {
                if v6.ip().is_unspecified() || v6.ip().to_ipv4_mapped().is_some() {
                    // `[::]` (and `[::ffff:a.b.c.d]`) take IPv4 clients too, as
                    // `::ffff:a.b.c.d`, whatever the system default.
                    socket.set_only_v6(false)?;
                }
            }
            socket.set_nonblocking(true)?;
            socket.bind(&(*addr).into())?;
            socket.listen(backlog)?;
            Ok(Listening::Tcp(TcpListener::from_std(socket.into())))
        }
        Endpoint::Unix(path) => {
            remove_stale_socket(path)?;
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            socket.bind(&socket2::SockAddr::unix(path)?)?;
            socket.listen(backlog)?;
            Ok(Listening::Unix(UnixListener::from_std(socket.into())))
        }
    }
}

/// A socket file left by a server that is gone is removed; a live one (something accepts on
/// it) or a file that is not a socket is an error.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another server listens on this socket",
        ));
    }
    std::fs::remove_file(path)
}

/// A connection, as the listener hands it to a handler.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) stream: Stream,
    pub(crate) plane: Plane,
}

/// A client connection's socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Whether the peer is on this host: a loopback address (an IPv4-mapped one included) or
    /// the other end of a Unix socket.
    pub(crate) fn peer_is_local(&self) -> bool {
        match self {
            Self::Tcp(s) => s
                .peer_addr()
                .is_ok_and(|a| a.ip().to_canonical().is_loopback()),
            Self::Unix(_) => true,
        }
    }

    /// The peer's address as the access log shows it.
    pub(crate) fn peer(&self) -> httpd_runner_core::observe::Peer {
        use httpd_runner_core::observe::Peer;
        match self {
            Self::Tcp(s) => match s.peer_addr() {
                Ok(std::net::SocketAddr::V4(a)) => Peer::V4(a.ip().octets(), a.port()),
                Ok(std::net::SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
                    Some(v4) => Peer::V4(v4.octets(), a.port()),
                    None => Peer::V6(a.ip().octets(), a.port()),
                },
                Err(_) => Peer::Unknown,
            },
            Self::Unix(_) => Peer::Unix,
        }
    }

    /// Shuts the writing half (the lingering close's FIN).
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(Shutdown::Write),
            Self::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read_vectored(bufs),
            Self::Unix(s) => s.read_vectored(bufs),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write_vectored(bufs),
            Self::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.register(r, t, i),
            Self::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.reregister(r, t, i),
            Self::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.deregister(r),
            Self::Unix(s) => s.deregister(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_addresses_or_unix_paths() {
        assert_eq!(
            "127.0.0.1:80".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::]:0".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("[::]:0".parse().unwrap()))
        );
        assert_eq!(
            "unix:/tmp/a.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/tmp/a.sock".into()))
        );
        assert!("unix:".parse::<Endpoint>().is_err());
        assert!("localhost".parse::<Endpoint>().is_err());
        for text in ["127.0.0.1:8080", "[::1]:9", "unix:/x.sock"] {
            let e: Endpoint = text.parse().unwrap();
            assert_eq!(e.to_string(), text, "displays as it parses");
        }
    }

    #[test]
    fn a_socket_file_is_reused_only_when_nothing_listens_on_it() {
        let dir = std::env::temp_dir().join(format!("hr-net-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("a.sock");
        let first = bind(&Endpoint::Unix(path.clone()), 16, false).expect("bind");
        let err = bind(&Endpoint::Unix(path.clone()), 16, false).expect_err("live socket");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        // The file stays after the listener is gone; the next bind replaces it.
        assert!(path.exists());
        drop(bind(&Endpoint::Unix(path.clone()), 16, false).expect("stale socket replaced"));
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let err = bind(&Endpoint::Unix(plain.clone()), 16, false).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(plain.exists(), "a file that is not a socket is left alone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
