//! The load generator's sockets: blocking std streams over loopback TCP or UNIX sockets, made
//! non-blocking for the event loop, with the few options a benchmark needs.
//!
//! Addresses are `HOST:PORT` or `tcp:HOST:PORT` for TCP and `unix:PATH` for UNIX sockets.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Where a socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address, `HOST:PORT`.
    Tcp(String),
    /// A UNIX socket path.
    Unix(PathBuf),
}

impl FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Addr::Unix(path.into()));
        }
        let host_port = s.strip_prefix("tcp:").unwrap_or(s);
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Addr::Tcp(host_port.into()))
            }
            _ => Err(format!(
                "'{s}' is neither HOST:PORT, tcp:HOST:PORT nor unix:PATH"
            )),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp:{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connected stream.
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// UNIX.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `addr`, retrying for up to `patience` while nobody listens yet (the peer
    /// under test may still be starting).
    pub fn connect(addr: &Addr, patience: Duration) -> io::Result<Stream> {
        let give_up = Instant::now() + patience;
        loop {
            let attempt = match addr {
                Addr::Tcp(a) => TcpStream::connect(a.as_str()).map(Stream::Tcp),
                Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            };
            match attempt {
                Ok(s) => {
                    if let Stream::Tcp(t) = &s {
                        t.set_nodelay(true)?;
                    }
                    return Ok(s);
                }
                Err(e) if Instant::now() >= give_up => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Switches blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Re-arms `TCP_QUICKACK` (Linux clears it after a while): without it, a peer with Nagle on
    /// that writes a frame in two pieces waits for our delayed ACK (up to 40 ms) before the
    /// second. A no-op on UNIX sockets.
    pub fn quickack(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => rustix::net::sockopt::set_tcp_quickack(s, true).map_err(Into::into),
            Stream::Unix(_) => Ok(()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// A listening socket.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// UNIX; the path is removed when the listener is dropped.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`; a stale UNIX socket file is replaced.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Tcp(a) => TcpListener::bind(a.as_str()).map(Listener::Tcp),
            Addr::Unix(p) => {
                if std::fs::symlink_metadata(p).is_ok() && UnixStream::connect(p).is_err() {
                    std::fs::remove_file(p)?;
                }
                UnixListener::bind(p).map(|l| Listener::Unix(l, p.clone()))
            }
        }
    }

    /// The bound address (TCP: with the port chosen for port 0).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| Addr::Tcp(a.to_string())),
            Listener::Unix(_, p) => Ok(Addr::Unix(p.clone())),
        }
    }

    /// Waits for the next peer.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "127.0.0.1:9001".parse(),
            Ok(Addr::Tcp("127.0.0.1:9001".into()))
        );
        assert_eq!("tcp:[::1]:9".parse(), Ok(Addr::Tcp("[::1]:9".into())));
        assert_eq!("unix:/tmp/x".parse(), Ok(Addr::Unix("/tmp/x".into())));
        assert!("9001".parse::<Addr>().is_err());
        assert!("unix:".parse::<Addr>().is_err());
        assert!("host:port".parse::<Addr>().is_err());
    }

    #[test]
    fn a_unix_listener_accepts_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = Addr::Unix(dir.path().join("l.sock"));
        let l = Listener::bind(&addr).expect("bind");
        let mut c = Stream::connect(&addr, Duration::from_secs(1)).expect("connect");
        let mut a = l.accept().expect("accept");
        c.write_all(b"hi").expect("write");
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hi");
        drop(l);
        assert!(!dir.path().join("l.sock").exists());
    }
}
