//! The load generator's event loop: it plays the primary and the secondary filter-redirector,
//! reads what the comparator releases, answers the controller channel, and measures.
//!
//! One thread, non-blocking sockets and poll(2): in the benchmark the generator is pinned to a
//! core of its own, where threads would only take turns. Each turn generates up to a batch of
//! pairs (one write per side), as long as fewer than `window` primary frames are out and the
//! offered rate allows, then reads whatever the output has. Held time runs from the moment a
//! pair was generated to the moment its primary frame was read back from the output.

use std::io::{self, ErrorKind, Write};
use std::time::{Duration, Instant};

use colo_actors::notify::{COLO_CHECKPOINT, DO_CHECKPOINT};
use colo_core::frame::encode_parts;
use colo_core::{Decoded, Decoder, FrameError};
use hdrhistogram::Histogram;
use rustix::buffer::spare_capacity;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use thiserror::Error;

use crate::loadgen::backlog::Backlog;
use crate::loadgen::order::Order;
use crate::loadgen::procstat::{self, Usage};
use crate::loadgen::report::{PeerUsage, Report};
use crate::loadgen::socket::{Addr, Stream};
use crate::loadgen::tally::{Seen, Tally};
use crate::loadgen::workload::{Workload, WorkloadError, WorkloadSpec, tag_of};

/// Bytes waiting in a side's send buffer past which no more pairs are generated.
const HIGH_WATER: usize = 4 << 20;
/// Bytes asked for per read of the output: below glibc's threshold for mmapping a block, so
/// that a buffer per read costs no system calls.
const READ_CHUNK: usize = 64 << 10;
/// Longest sleep in poll, so that the clock is looked at regularly.
const TICK: Duration = Duration::from_millis(10);
/// Largest held time the histogram records (longer ones are recorded as this).
const MAX_HELD_NS: u64 = 100_000_000_000;

/// The sockets of the comparator under test, seen from its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    /// Its `primary_in`.
    pub primary: Addr,
    /// Its `secondary_in`.
    pub secondary: Addr,
    /// Its `outdev`.
    pub output: Addr,
    /// Its `notify_dev`: when given, the generator acts as COLO controller and answers every
    /// `DO_CHECKPOINT` with a `COLO_CHECKPOINT`.
    pub notify: Option<Addr>,
}

/// How long a run lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// Send for `warmup + measure`; measure releases in the last `measure`.
    Timed {
        /// Traffic not measured, to let buffers and tables reach their steady state.
        warmup: Duration,
        /// The measurement window.
        measure: Duration,
    },
    /// Send this many pairs; measure from the first send to the last release.
    Count(u64),
}

/// How to run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Primary frames out (sent, not yet released) at most.
    pub window: u64,
    /// Pairs generated per turn: the frames of one write on each side.
    pub batch: usize,
    /// Duration or count.
    pub length: Length,
    /// Pairs per second offered, or as fast as the window allows.
    pub rate: Option<f64>,
    /// After sending stops, how long to wait for the frames still out.
    pub drain: Duration,
    /// Pause between connecting and the first frame (peers that accept asynchronously).
    pub settle: Duration,
    /// How long to keep trying to connect.
    pub patience: Duration,
    /// Re-arm `TCP_QUICKACK` after every read (needed against QEMU's Nagle-on chardevs).
    pub quickack: bool,
    /// A process whose CPU time and peak RSS are reported (the comparator under test).
    pub watch: Option<u32>,
    /// Send nothing on the secondary: every primary frame stays held (memory measurements).
    pub primary_only: bool,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            window: 4096,
            batch: 64,
            length: Length::Timed {
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(5),
            },
            rate: None,
            drain: Duration::from_secs(5),
            settle: Duration::from_millis(100),
            patience: Duration::from_secs(10),
            quickack: false,
            watch: None,
            primary_only: false,
        }
    }
}

/// Why a run failed.
#[derive(Debug, Error)]
pub enum RunError {
    /// A peer socket could not be reached.
    #[error("{role}: cannot connect to {addr}: {source}")]
    Connect {
        /// Which socket.
        role: &'static str,
        /// Its address.
        addr: Addr,
        /// The error.
        source: io::Error,
    },
    /// Reading, writing or polling failed.
    #[error("{role}: {source}")]
    Io {
        /// Which socket.
        role: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The peer closed a socket during the run.
    #[error("{role}: the peer closed the connection")]
    Closed {
        /// Which socket.
        role: &'static str,
    },
    /// The peer's output lost its framing.
    #[error("{role}: {source}")]
    Framing {
        /// Which socket.
        role: &'static str,
        /// The decoder's complaint.
        source: FrameError,
    },
    /// The workload cannot be generated.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// The watched process cannot be read.
    #[error("watched process {pid}: {source}")]
    Watch {
        /// Its id.
        pid: u32,
        /// The error.
        source: io::Error,
    },
    /// The held-time histogram could not be made.
    #[error("held-time histogram: {0}")]
    Histogram(String),
}

/// Bytes for one socket, written as the socket takes them.
#[derive(Default)]
struct Outbox {
    buf: Vec<u8>,
    at: usize,
}

impl Outbox {
    fn pending(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Writes until done or the socket is full.
    fn flush(&mut self, to: &mut Stream, role: &'static str) -> Result<(), RunError> {
        while self.at < self.buf.len() {
            match to.write(&self.buf[self.at..]) {
                Ok(0) => return Err(RunError::Closed { role }),
                Ok(n) => self.at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(RunError::Io { role, source }),
            }
        }
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Ok(())
    }
}

fn connect(role: &'static str, addr: &Addr, patience: Duration) -> Result<Stream, RunError> {
    Stream::connect(addr, patience).map_err(|source| RunError::Connect {
        role,
        addr: addr.clone(),
        source,
    })
}

/// Reads once from `from` straight into `decoder`'s buffer (the frames are cut from where
/// the kernel put them, not copied again); `Ok(false)` when nothing was there.
fn read_into(
    from: &mut Stream,
    decoder: &mut Decoder,
    role: &'static str,
    quickack: bool,
) -> Result<bool, RunError> {
    let mut buf = decoder.read_buffer(READ_CHUNK);
    let read = loop {
        match rustix::io::read(&*from, spare_capacity(&mut buf)) {
            Err(rustix::io::Errno::INTR) => {}
            r => break r,
        }
    };
    decoder.fill(buf);
    match read {
        Ok(0) => return Err(RunError::Closed { role }),
        Ok(_) => {}
        Err(rustix::io::Errno::AGAIN) => return Ok(false),
        Err(e) => {
            return Err(RunError::Io {
                role,
                source: e.into(),
            });
        }
    }
    if quickack {
        from.quickack()
            .map_err(|source| RunError::Io { role, source })?;
    }
    Ok(true)
}

fn watch(pid: Option<u32>) -> Result<Option<Usage>, RunError> {
    pid.map(|pid| procstat::usage(pid).map_err(|source| RunError::Watch { pid, source }))
        .transpose()
}

/// Plays `workload` against `peers` as `spec` says and reports what came out.
pub fn run(peers: &Peers, workload: WorkloadSpec, spec: &RunSpec) -> Result<Report, RunError> {
    let mut generator = Workload::new(workload)?;
    let mut held = Histogram::<u64>::new_with_bounds(1, MAX_HELD_NS, 3)
        .map_err(|e| RunError::Histogram(e.to_string()))?;
    // The output first, so that nothing released waits for its reader.
    let mut output = connect("output", &peers.output, spec.patience)?;
    let mut notify = match &peers.notify {
        Some(a) => Some(connect("notify", a, spec.patience)?),
        None => None,
    };
    let mut primary = connect("primary", &peers.primary, spec.patience)?;
    let mut secondary = connect("secondary", &peers.secondary, spec.patience)?;
    std::thread::sleep(spec.settle);
    for (role, s) in [
        ("output", Some(&output)),
        ("notify", notify.as_ref()),
        ("primary", Some(&primary)),
        ("secondary", Some(&secondary)),
    ] {
        if let Some(s) = s {
            s.set_nonblocking(true)
                .map_err(|source| RunError::Io { role, source })?;
        }
    }

    let (measure_from, send_until, count) = match spec.length {
        Length::Timed { warmup, measure } => (warmup, warmup + measure, None),
        Length::Count(n) => (Duration::ZERO, Duration::MAX, Some(n)),
    };
    let (measure_from_ns, send_until_ns) = (nanos(measure_from), nanos(send_until));
    let window = spec.window.max(1);
    let batch = spec.batch.max(1);
    let mut tally = Tally::new(usize::try_from(window).unwrap_or(usize::MAX));
    let mut backlog = Backlog::new(window, measure_from_ns, send_until_ns);
    let mut order = Order::default();
    let mut out_decoder = Decoder::new(false);
    let mut notify_decoder = Decoder::new(false);
    let (mut p_out, mut s_out, mut n_out) =
        (Outbox::default(), Outbox::default(), Outbox::default());
    let (mut units, mut mismatched) = (0u64, 0u64);
    let (mut frames, mut bytes, mut last_release) = (0u64, 0u64, 0u64);
    let (mut requests, mut checkpoints) = (0u64, 0u64);
    let mut usage_start = None;
    let mut usage_end = None;
    let mut drain_until: Option<u64> = None;

    let clock = Instant::now();
    let now_ns = || nanos(clock.elapsed());
    loop {
        let now = now_ns();
        backlog.observe(now, tally.outstanding());
        if usage_start.is_none() && now >= measure_from_ns {
            usage_start = Some(watch(spec.watch)?);
        }
        let done_sending = now >= send_until_ns || count.is_some_and(|c| units >= c);
        if drain_until.is_none() && done_sending {
            if matches!(spec.length, Length::Timed { .. }) {
                usage_end = Some(watch(spec.watch)?);
            }
            drain_until = Some(now.saturating_add(nanos(spec.drain)));
        }
        if let Some(limit) = drain_until {
            let empty = tally.outstanding() == 0 && p_out.pending() == 0 && s_out.pending() == 0;
            if empty || now >= limit {
                break;
            }
        }

        let due = |units: u64| -> u64 {
            spec.rate.map_or(0, |r| {
                ((units as f64 / r.max(1e-9)) * 1e9).min(u64::MAX as f64) as u64
            })
        };
        let can_send = |units: u64, out: u64, p: usize, s: usize, now: u64| {
            drain_until.is_none()
                && out < window
                && p < HIGH_WATER
                && s < HIGH_WATER
                && count.is_none_or(|c| units < c)
                && due(units) <= now
        };
        let mut made = 0;
        while made < batch
            && can_send(
                units,
                tally.outstanding(),
                p_out.pending(),
                s_out.pending(),
                now,
            )
        {
            let u = generator.next_unit(&mut p_out.buf, &mut s_out.buf);
            tally.send(u64::from(u.primaries), now);
            units += 1;
            mismatched += u64::from(u.mismatched);
            made += 1;
        }
        if spec.primary_only {
            s_out.buf.clear();
        }
        p_out.flush(&mut primary, "primary")?;
        s_out.flush(&mut secondary, "secondary")?;
        if let Some(n) = notify.as_mut() {
            n_out.flush(n, "notify")?;
        }

        let now = now_ns();
        backlog.observe(now, tally.outstanding());
        let more = can_send(
            units,
            tally.outstanding(),
            p_out.pending(),
            s_out.pending(),
            now,
        );
        let wait = if more {
            Duration::ZERO
        } else if drain_until.is_none() && spec.rate.is_some() {
            Duration::from_nanos(due(units).saturating_sub(now)).min(TICK)
        } else {
            TICK
        };
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        });
        let readable = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
        let (out_ready, notify_ready) = {
            let mut fds = vec![PollFd::new(&output, PollFlags::IN)];
            if p_out.pending() > 0 {
                fds.push(PollFd::new(&primary, PollFlags::OUT));
            }
            if s_out.pending() > 0 {
                fds.push(PollFd::new(&secondary, PollFlags::OUT));
            }
            let notify_at = fds.len();
            if let Some(n) = notify.as_ref() {
                fds.push(PollFd::new(n, PollFlags::IN));
            }
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) => {
                    return Err(RunError::Io {
                        role: "poll",
                        source: e.into(),
                    });
                }
            }
            (
                fds[0].revents().intersects(readable),
                fds.get(notify_at)
                    .filter(|_| notify.is_some())
                    .is_some_and(|f| f.revents().intersects(readable)),
            )
        };

        if out_ready && read_into(&mut output, &mut out_decoder, "output", spec.quickack)? {
            let at = now_ns();
            loop {
                match out_decoder.next_frame() {
                    Ok(Some(Decoded::Frame(f))) => {
                        let seen =
                            tag_of(f.ethernet()).map_or(Seen::Unknown, |t| tally.release(t, at));
                        if let Seen::First { held_ns } = seen {
                            if let Some(tag) = tag_of(f.ethernet()) {
                                order.release(f.ethernet(), tag);
                            }
                            last_release = at;
                            if at >= measure_from_ns && at < send_until_ns {
                                frames += 1;
                                bytes += f.ethernet().len() as u64;
                                held.saturating_record(held_ns.clamp(1, MAX_HELD_NS));
                            }
                        }
                    }
                    Ok(Some(Decoded::Empty)) => {}
                    Ok(None) => break,
                    Err(source) => {
                        return Err(RunError::Framing {
                            role: "output",
                            source,
                        });
                    }
                }
            }
        }
        if notify_ready {
            if let Some(n) = notify.as_mut() {
                if read_into(n, &mut notify_decoder, "notify", spec.quickack)? {
                    let mut asked = 0;
                    loop {
                        match notify_decoder.next_frame() {
                            Ok(Some(Decoded::Frame(f))) if f.data[..] == *DO_CHECKPOINT => {
                                asked += 1;
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(source) => {
                                return Err(RunError::Framing {
                                    role: "notify",
                                    source,
                                });
                            }
                        }
                    }
                    requests += asked;
                    // One checkpoint serves every request read so far, as a controller would.
                    if asked > 0 {
                        encode_parts(COLO_CHECKPOINT, None, &mut n_out.buf);
                        checkpoints += 1;
                        n_out.flush(n, "notify")?;
                    }
                }
            }
        }
    }

    let measured = match spec.length {
        Length::Timed { measure, .. } => measure,
        Length::Count(_) => Duration::from_nanos(last_release),
    };
    let last = watch(spec.watch)?;
    let peer = match (usage_start.flatten(), usage_end.unwrap_or(last), last) {
        (Some(a), Some(b), Some(last)) => {
            let elapsed = match spec.length {
                Length::Timed { measure, .. } => measure,
                Length::Count(_) => clock.elapsed(),
            };
            let mut u = PeerUsage::between(&a, &b, elapsed);
            u.peak_rss_kib = last.peak_rss_kib;
            Some(u)
        }
        _ => None,
    };
    Ok(Report {
        measured,
        frames,
        bytes,
        held,
        sent: tally.sent(),
        units,
        mismatched,
        released: tally.released(),
        lost: tally.outstanding(),
        duplicated: tally.duplicates(),
        unknown: tally.unknown(),
        reordered: order.reordered(),
        checkpoint_requests: requests,
        checkpoints,
        backlog_pct: backlog.percent(),
        peer,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
