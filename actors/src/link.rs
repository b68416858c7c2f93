//! A pipeline socket as an actor sees it: something that yields one connected peer at a time.
//!
//! A listening endpoint is bound when the daemon starts (so "address in use" is a start
//! error) and accepts the next peer whenever the actor asks; a connecting endpoint dials,
//! redialling with backoff until the peer answers. Either way the actor only ever sees a
//! [`Conn`]: a byte stream it reads and writes with the `futures` I/O traits.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_io::Async;
use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::{UnixListener, UnixStream};
use futures::io::{AsyncRead, AsyncWrite};
use log::{debug, info, warn};
use rustix::buffer::spare_capacity;
use rustix::io::Errno;

use crate::endpoint::Endpoint;
use crate::runtime;

/// A connected byte stream, TCP or UNIX.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Send + Sync + Unpin {
    /// Reads into the spare capacity of `buf`, appending, so that what the kernel copies out
    /// of the socket is where the frames stay: no read buffer to copy them from again.
    fn poll_read_to(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>>;
}

impl<T: AsFd + Send + Sync> Duplex for Async<T>
where
    Async<T>: AsyncRead + AsyncWrite,
{
    fn poll_read_to(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>> {
        loop {
            match rustix::io::read(self.get_ref(), spare_capacity(buf)) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => ready!(self.poll_readable(cx))?,
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

/// Takes a TCP stream over from async-std's wrapper, which gives no way to read into
/// uninitialised memory or to wait for readiness without reading.
fn tcp_conn(s: TcpStream) -> io::Result<Conn> {
    let _ = s.set_nodelay(true);
    Ok(Box::new(Async::new(std::net::TcpStream::try_from(s)?)?))
}

/// Takes a UNIX stream over from async-std's wrapper.
fn unix_conn(s: UnixStream) -> io::Result<Conn> {
    Ok(Box::new(Async::new(
        std::os::unix::net::UnixStream::try_from(s)?,
    )?))
}

/// One connection to a peer.
pub(crate) type Conn = Box<dyn Duplex>;

/// First delay before redialling a peer that did not answer.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest delay between two dials.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Pause after a failed accept (for example when out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

enum Kind {
    TcpListen(TcpListener),
    UnixListen {
        listener: UnixListener,
        path: PathBuf,
    },
    TcpDial(String),
    UnixDial(PathBuf),
}

/// A bound or dialable pipeline socket.
pub(crate) struct Link {
    kind: Kind,
    /// `[pipeline] role`, the prefix of every log line about this socket.
    label: String,
    /// When the last dial succeeded and how long to wait before the next one, so that a
    /// peer that accepts and hangs up at once is not redialled in a tight loop.
    redial: Mutex<Redial>,
}

#[derive(Default)]
struct Redial {
    last: Option<Instant>,
    pause: Duration,
}

impl Link {
    /// Binds a listening endpoint now; a connecting one is only remembered.
    pub(crate) async fn open(endpoint: &Endpoint, label: String) -> io::Result<Link> {
        let kind = match endpoint {
            Endpoint::TcpListen(addr) => Kind::TcpListen(TcpListener::bind(addr.as_str()).await?),
            Endpoint::UnixListen(path) => Kind::UnixListen {
                listener: bind_unix(path).await?,
                path: path.clone(),
            },
            Endpoint::TcpConnect(addr) => Kind::TcpDial(addr.clone()),
            Endpoint::UnixConnect(path) => Kind::UnixDial(path.clone()),
        };
        Ok(Link {
            kind,
            label,
            redial: Mutex::new(Redial::default()),
        })
    }

    /// The bound address of a TCP listener.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::TcpListen(l) => l.local_addr().ok(),
            _ => None,
        }
    }

    /// The log prefix of this socket.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The next peer: accepted, or dialled until it answers. Never gives up; returns the
    /// connection and a description of the peer for logs.
    pub(crate) async fn connect(&self) -> (Conn, String) {
        match &self.kind {
            Kind::TcpListen(l) => loop {
                match l
                    .accept()
                    .await
                    .and_then(|(s, peer)| Ok((tcp_conn(s)?, peer)))
                {
                    Ok((conn, peer)) => return (conn, peer.to_string()),
                    Err(e) => self.accept_failed(&e).await,
                }
            },
            Kind::UnixListen { listener, path } => loop {
                match listener.accept().await.and_then(|(s, _)| unix_conn(s)) {
                    Ok(conn) => return (conn, path.display().to_string()),
                    Err(e) => self.accept_failed(&e).await,
                }
            },
            Kind::TcpDial(addr) => {
                let conn = self
                    .dial(addr, || async move {
                        tcp_conn(TcpStream::connect(addr.as_str()).await?)
                    })
                    .await;
                (conn, addr.clone())
            }
            Kind::UnixDial(path) => {
                let shown = path.display().to_string();
                let conn = self
                    .dial(&shown, || async move {
                        unix_conn(UnixStream::connect(path.as_path()).await?)
                    })
                    .await;
                (conn, shown)
            }
        }
    }

    async fn accept_failed(&self, e: &io::Error) {
        warn!("{}: accept failed: {e}", self.label);
        runtime::sleep(ACCEPT_RETRY).await;
    }

    async fn dial<S, F, Fut>(&self, peer: &str, mut attempt: F) -> S
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<S>>,
    {
        let pause = self.redial.lock().map_or(BACKOFF_MIN, |mut r| {
            // The previous connection (if any) has just ended: one that lasted less than the
            // longest backoff counts as a failure, so the redial waits, longer each time.
            let flapping = r.last.is_some_and(|t| t.elapsed() < BACKOFF_MAX);
            r.pause = if flapping {
                (r.pause * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
            } else {
                Duration::ZERO
            };
            r.pause
        });
        if !pause.is_zero() {
            runtime::sleep(pause).await;
        }
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u32;
        loop {
            match attempt().await {
                Ok(s) => {
                    if let Ok(mut r) = self.redial.lock() {
                        r.last = Some(Instant::now());
                    }
                    return s;
                }
                Err(e) => {
                    if failures == 0 {
                        info!(
                            "{}: cannot reach {peer} ({e}); redialling with backoff up to {} ms",
                            self.label,
                            BACKOFF_MAX.as_millis()
                        );
                    } else {
                        debug!("{}: dial {peer} failed again: {e}", self.label);
                    }
                    failures = failures.saturating_add(1);
                    runtime::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Kind::UnixListen { path, .. } = &self.kind {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a UNIX listening socket readable and writable by its owner only. A socket file left
/// by a dead process is removed first; a live listener or a file that is not a socket is an
/// error, never deleted.
pub async fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path).await?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
