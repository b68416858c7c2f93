//! The null peer: listens where a comparator would, discards the secondary stream and copies
//! the primary stream to the output unchanged, byte for byte, without looking at frames.
//!
//! It does the least any comparator must do (read both inputs, write the output) over the same
//! sockets, so the load generator measured against it gives the ceiling of this machine's
//! loopback path, and shows that the generator itself is not the bottleneck.

use std::io::{self, ErrorKind, Read, Write};

use rustix::event::{PollFd, PollFlags, poll};

use crate::loadgen::driver::Peers;
use crate::loadgen::socket::{Addr, Listener, Stream};

/// Bytes asked for per read.
const CHUNK: usize = 256 * 1024;

/// Where the null peer listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NullPeerSpec {
    /// Where the primary's frames arrive (copied to `outdev`).
    pub primary_in: Addr,
    /// Where the secondary's frames arrive (discarded).
    pub secondary_in: Addr,
    /// Where the copy goes.
    pub outdev: Addr,
    /// A controller channel that is accepted and never written to, so that a generator
    /// configured to act as controller can run against the null peer too.
    pub notify_dev: Option<Addr>,
}

/// What one session moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// Primary bytes copied to the output.
    pub copied: u64,
    /// Secondary bytes discarded.
    pub discarded: u64,
}

/// A bound null peer.
pub struct NullPeer {
    primary: Listener,
    secondary: Listener,
    outdev: Listener,
    notify: Option<Listener>,
}

impl NullPeer {
    /// Binds every socket of `spec`.
    pub fn bind(spec: &NullPeerSpec) -> io::Result<NullPeer> {
        Ok(NullPeer {
            primary: Listener::bind(&spec.primary_in)?,
            secondary: Listener::bind(&spec.secondary_in)?,
            outdev: Listener::bind(&spec.outdev)?,
            notify: spec.notify_dev.as_ref().map(Listener::bind).transpose()?,
        })
    }

    /// The bound addresses, as a load generator dials them.
    pub fn peers(&self) -> io::Result<Peers> {
        Ok(Peers {
            primary: self.primary.local_addr()?,
            secondary: self.secondary.local_addr()?,
            output: self.outdev.local_addr()?,
            notify: self.notify.as_ref().map(Listener::local_addr).transpose()?,
        })
    }

    /// Serves one session: accepts one peer on every socket, then copies until both inputs
    /// have ended (or the output went away).
    pub fn serve_one(&self) -> io::Result<Session> {
        let mut out = self.outdev.accept()?;
        let _notify = self.notify.as_ref().map(Listener::accept).transpose()?;
        let mut primary = Some(self.primary.accept()?);
        let mut secondary = Some(self.secondary.accept()?);
        let mut buf = vec![0u8; CHUNK];
        let mut session = Session::default();
        let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
        while primary.is_some() || secondary.is_some() {
            let (p_ready, s_ready) = {
                let mut fds = Vec::with_capacity(2);
                if let Some(p) = primary.as_ref() {
                    fds.push(PollFd::new(p, PollFlags::IN));
                }
                if let Some(s) = secondary.as_ref() {
                    fds.push(PollFd::new(s, PollFlags::IN));
                }
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(e) if e == rustix::io::Errno::INTR => continue,
                    Err(e) => return Err(e.into()),
                }
                let mut it = fds.iter().map(|f| f.revents().intersects(ready));
                let p = primary.is_some() && it.next().unwrap_or(false);
                let s = secondary.is_some() && it.next().unwrap_or(false);
                (p, s)
            };
            if p_ready {
                if let Some(p) = primary.as_mut() {
                    match read_some(p, &mut buf)? {
                        0 => primary = None,
                        n => {
                            out.write_all(&buf[..n])?;
                            session.copied += n as u64;
                        }
                    }
                }
            }
            if s_ready {
                if let Some(s) = secondary.as_mut() {
                    match read_some(s, &mut buf)? {
                        0 => secondary = None,
                        n => session.discarded += n as u64,
                    }
                }
            }
        }
        Ok(session)
    }

    /// Serves one session after another, until an error.
    pub fn serve(&self) -> io::Result<()> {
        loop {
            self.serve_one()?;
        }
    }
}

/// One read; 0 at end of stream, and for a peer that reset the connection.
fn read_some(from: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match from.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}
