//! KVM COLO beacon mode, sans-IO: when the primary QEMU has flushed its comparators, and how to
//! ask it for a checkpoint, decided from what the beacon's sockets and QMP report.
//!
//! Under KVM, QEMU's COLO thread tells only the colo-compare objects inside the primary QEMU
//! when to release held packets (after the secondary reported `vmstate-received`), and only
//! they can start a checkpoint at once. A daemon outside QEMU gets both through one tiny extra
//! `colo-compare` object in the primary, the *beacon*, whose three sockets go to the daemon:
//! - the daemon keeps exactly one [`beacon_frame`] parked in it (written to its `primary_in`);
//!   QEMU flushes every colo-compare at each checkpoint, so that frame comes out of the
//!   beacon's `outdev` at the flush point, and the daemon flushes its own queues then;
//! - a [`poke_frame`] written to its `secondary_in` differs from the parked frame, so the
//!   beacon reports a mismatch and QEMU starts a checkpoint: one poke, one checkpoint.
//!
//! QMP is optional: `migrate-set-parameters x-checkpoint-delay` is the request path while the
//! beacon is not connected, and the primary's `STOP`/`RESUME` events catch a missed flush (no
//! beacon frame between a `STOP` and its `RESUME`, for example because nothing was parked):
//! the flush is then made at `RESUME`, late but still after the secondary received the state.
//! `COLO_EXIT` means the secondary is gone: failover.
//!
//! [`Beacon`] is driven like the tracker: call its inputs, then take [`Beacon::poll_action`]
//! until `None`. Two clocks appear as plain values: a monotonic one for request retries and
//! the wall clock (µs since the Unix epoch) that QEMU stamps its events with, to measure how
//! long after `STOP` the beacon came.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::frame::Frame;
use crate::histogram::Histogram;
use crate::time::Timestamp;

/// Source MAC of beacon frames (locally administered).
const MAC_SRC: [u8; 6] = [0x02, 0xc0, 0x10, 0xbe, 0xac, 0x01];
/// Destination MAC of beacon frames (locally administered).
const MAC_DST: [u8; 6] = [0x02, 0xc0, 0x10, 0xbe, 0xac, 0x02];
/// Source address: TEST-NET-1 (RFC 5737), never routed.
pub const BEACON_SRC: [u8; 4] = [192, 0, 2, 1];
/// Destination address: TEST-NET-2 (RFC 5737), never routed.
pub const BEACON_DST: [u8; 4] = [198, 51, 100, 1];
/// UDP source port of the beacon flow.
pub const BEACON_SRC_PORT: u16 = 49374;
/// UDP destination port of the beacon flow.
pub const BEACON_DST_PORT: u16 = 49375;
/// First bytes of a parked frame's payload.
const BEACON_MAGIC: &[u8; 12] = b"COLO-BEACON\0";
/// First bytes of a poke's payload.
const POKE_MAGIC: &[u8; 12] = b"COLO-POKE\0\0\0";
/// Extra payload that makes a poke longer than a parked frame, so that QEMU's UDP comparison
/// fails on the length at once.
const POKE_EXTRA: usize = 8;
/// Ethernet + IPv4 + UDP headers.
const HEADERS: usize = 14 + 20 + 8;
/// Magic, session and sequence number.
const PAYLOAD: usize = 12 + 8 + 8;

/// How long a sent checkpoint request covers later ones: requests raised within this time
/// after one was sent, and before the flush it asked for, are merged into it. Past it the
/// next request is sent again (a lost poke must not hold packets until the periodic
/// checkpoint); a redundant request costs at most one extra checkpoint.
pub const REQUEST_RETRY: Duration = Duration::from_secs(1);

/// What a frame read on the beacon's `outdev` (or written to it) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeaconFrame {
    /// A parked frame: the session that parked it and its sequence number.
    Parked {
        /// The daemon run that wrote it.
        session: u64,
        /// Its sequence number within that run.
        seq: u64,
    },
    /// A poke.
    Poke {
        /// The daemon run that wrote it.
        session: u64,
        /// Its sequence number within that run.
        seq: u64,
    },
}

fn udp_frame(magic: &[u8; 12], session: u64, seq: u64, extra: usize) -> Frame {
    let payload_len = PAYLOAD + extra;
    let mut f = Vec::with_capacity(HEADERS + payload_len);
    f.extend_from_slice(&MAC_DST);
    f.extend_from_slice(&MAC_SRC);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = 20 + 8 + payload_len;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&BEACON_SRC);
    ip[16..20].copy_from_slice(&BEACON_DST);
    let sum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&BEACON_SRC_PORT.to_be_bytes());
    f.extend_from_slice(&BEACON_DST_PORT.to_be_bytes());
    f.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend_from_slice(magic);
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.resize(HEADERS + payload_len, 0);
    Frame::new(f)
}

fn ipv4_checksum(header: &[u8; 20]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frame parked in the beacon: IPv4/UDP on the fixed beacon flow, its payload naming the
/// daemon run (`session`) and the sequence number.
pub fn beacon_frame(session: u64, seq: u64) -> Frame {
    udp_frame(BEACON_MAGIC, session, seq, 0)
}

/// A checkpoint request for the beacon's `secondary_in`: the same flow as [`beacon_frame`],
/// a longer payload.
pub fn poke_frame(session: u64, seq: u64) -> Frame {
    udp_frame(POKE_MAGIC, session, seq, POKE_EXTRA)
}

/// Recognises a frame made by [`beacon_frame`] or [`poke_frame`].
pub fn parse(frame: &[u8]) -> Option<BeaconFrame> {
    let headers = frame.get(..HEADERS)?;
    let expected = [
        (12..14, &[0x08, 0x00][..]),
        (14..15, &[0x45][..]),
        (23..24, &[17][..]),
        (26..30, &BEACON_SRC[..]),
        (30..34, &BEACON_DST[..]),
        (34..36, &BEACON_SRC_PORT.to_be_bytes()[..]),
        (36..38, &BEACON_DST_PORT.to_be_bytes()[..]),
    ];
    if expected
        .iter()
        .any(|(at, want)| headers.get(at.clone()) != Some(want))
    {
        return None;
    }
    let payload = frame.get(HEADERS..HEADERS + PAYLOAD)?;
    let number = |at: usize| {
        payload
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    };
    let (session, seq) = (number(12)?, number(20)?);
    match payload.get(..12)? {
        m if m == BEACON_MAGIC => Some(BeaconFrame::Parked { session, seq }),
        m if m == POKE_MAGIC => Some(BeaconFrame::Poke { session, seq }),
        _ => None,
    }
}

/// A socket of the beacon the daemon writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeaconLink {
    /// The beacon's `primary_in`: where the frame is parked.
    PrimaryIn,
    /// The beacon's `secondary_in`: where pokes go.
    SecondaryIn,
}

/// A QMP event of the primary QEMU that matters to the beacon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuEvent {
    /// The VM stopped; in COLO, a checkpoint's state is about to be sent.
    Stop {
        /// QEMU's timestamp of the event (wall clock, µs since the Unix epoch).
        at: Timestamp,
    },
    /// The VM runs again; in COLO, the checkpoint is over.
    Resume,
    /// One pass of RAM sending; in COLO, one per checkpoint (needs the `events` capability).
    MigrationPass,
    /// The migration changed state (needs the `events` capability).
    Migration {
        /// Whether the new state is `colo`.
        colo: bool,
    },
    /// COLO ended (failover or error): the secondary no longer follows.
    ColoExit {
        /// QEMU's reason (`request`, `error`, ...).
        reason: String,
    },
}

/// Why a flush is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushCause {
    /// The parked frame came out of the beacon: QEMU's own flush point.
    Beacon,
    /// The primary resumed after a `STOP` without a beacon frame: flushed late, at `RESUME`.
    MissedBeacon,
}

impl fmt::Display for FlushCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlushCause::Beacon => "beacon",
            FlushCause::MissedBeacon => "missed beacon, flushed at RESUME",
        })
    }
}

/// One checkpoint flush to make: take in everything already readable on the primary input,
/// then release every held primary packet and drop every held secondary one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flush {
    /// The epoch this flush starts (1 for the first).
    pub epoch: u64,
    /// Why.
    pub cause: FlushCause,
}

/// Something the daemon must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this frame to the beacon's `primary_in`.
    Arm(Frame),
    /// Flush the pipeline.
    Flush(Flush),
    /// Take in every frame already readable on the beacon's `outdev`, then call
    /// [`Beacon::outdev_settled`]: a `RESUME` is judged only once the beacon frame QEMU wrote
    /// before it has been seen.
    SettleOutdev,
    /// COLO is over: release everything held and pass the primary through.
    Failover {
        /// QEMU's reason.
        reason: String,
    },
}

/// Where a checkpoint request went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Write this frame to the beacon's `secondary_in`.
    Poke(Frame),
    /// Ask over QMP (`migrate-set-parameters x-checkpoint-delay`).
    Qmp,
    /// A request sent less than [`REQUEST_RETRY`] ago is still waiting for its flush.
    Merged,
    /// Neither the beacon nor QMP is connected (or COLO is over).
    Unsent,
}

/// What the beacon saw, for metrics and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BeaconCounters {
    /// Flushes made when the parked frame came out: the checkpoints seen.
    pub flushes: u64,
    /// Flushes made at `RESUME` because no beacon frame came since `STOP`.
    pub missed: u64,
    /// Frames parked.
    pub arms: u64,
    /// Beacon frames that came out but were not the parked one (parked by an earlier
    /// connection or daemon run, or late after a missed flush): no flush.
    pub stale: u64,
    /// Frames on the beacon's `outdev` that are no beacon frame.
    pub foreign: u64,
    /// Primary `STOP` events while in COLO.
    pub stops: u64,
    /// Primary `RESUME` events while in COLO.
    pub resumes: u64,
    /// `MIGRATION_PASS` events (one per checkpoint).
    pub migration_passes: u64,
    /// `COLO_EXIT` events.
    pub colo_exits: u64,
    /// How long after the primary's `STOP` the beacon frame came (QEMU's event time to the
    /// daemon's reading time, both wall clock).
    pub delay_after_stop: Histogram,
}

/// The beacon's state machine.
#[derive(Debug)]
pub struct Beacon {
    session: u64,
    next_seq: u64,
    /// The sequence number of the frame believed parked.
    armed: Option<u64>,
    /// A frame that should have come out at a checkpoint flushed at `RESUME` instead.
    overdue: Option<u64>,
    epoch: u64,
    primary_in: bool,
    secondary_in: bool,
    qmp: bool,
    colo: bool,
    failed_over: bool,
    /// When the last request was sent (monotonic), until a flush answers it.
    requested: Option<Timestamp>,
    /// `STOP`s and beacon frames since the last `RESUME`.
    cycle_stops: u64,
    cycle_beacons: u64,
    stop_wall: Option<Timestamp>,
    beacon_wall: Option<Timestamp>,
    /// `RESUME`s waiting for the outdev to settle.
    settling: u64,
    counters: BeaconCounters,
    actions: VecDeque<Action>,
}

impl Beacon {
    /// A beacon for one daemon run; `session` tells its frames from those of other runs.
    pub fn new(session: u64) -> Self {
        Beacon {
            session,
            next_seq: 1,
            armed: None,
            overdue: None,
            epoch: 0,
            primary_in: false,
            secondary_in: false,
            qmp: false,
            colo: false,
            failed_over: false,
            requested: None,
            cycle_stops: 0,
            cycle_beacons: 0,
            stop_wall: None,
            beacon_wall: None,
            settling: 0,
            counters: BeaconCounters::default(),
            actions: VecDeque::new(),
        }
    }

    /// What the beacon counted.
    pub fn counters(&self) -> &BeaconCounters {
        &self.counters
    }

    /// The current epoch: the number of flushes made.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether a frame is believed parked in the beacon and its `primary_in` is connected.
    pub fn armed(&self) -> bool {
        self.primary_in && self.armed.is_some()
    }

    /// Whether the primary is known to be in COLO.
    pub fn colo(&self) -> bool {
        self.colo
    }

    /// Whether COLO has ended (`COLO_EXIT`).
    pub fn failed_over(&self) -> bool {
        self.failed_over
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn arm(&mut self) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.armed = Some(seq);
        self.counters.arms += 1;
        self.actions
            .push_back(Action::Arm(beacon_frame(self.session, seq)));
    }

    fn flush(&mut self, cause: FlushCause) {
        self.epoch += 1;
        self.requested = None;
        self.actions.push_back(Action::Flush(Flush {
            epoch: self.epoch,
            cause,
        }));
    }

    /// A socket of the beacon connected. A connected `primary_in` is armed at once (a frame
    /// parked by an earlier connection, if any, becomes stale).
    pub fn link_up(&mut self, link: BeaconLink) {
        match link {
            BeaconLink::PrimaryIn => {
                self.primary_in = true;
                self.arm();
            }
            BeaconLink::SecondaryIn => self.secondary_in = true,
        }
    }

    /// A socket of the beacon disconnected. A parked frame stays expected: QEMU keeps its
    /// queues, so it may still come out.
    pub fn link_down(&mut self, link: BeaconLink) {
        match link {
            BeaconLink::PrimaryIn => self.primary_in = false,
            BeaconLink::SecondaryIn => self.secondary_in = false,
        }
    }

    /// The QMP session is up; `colo` says whether the migration is in COLO already.
    pub fn qmp_up(&mut self, colo: bool) {
        self.qmp = true;
        self.colo = colo;
        self.cycle_stops = 0;
        self.cycle_beacons = 0;
    }

    /// The QMP session is gone.
    pub fn qmp_down(&mut self) {
        self.qmp = false;
    }

    /// A frame came out of the beacon's `outdev`, read at `wall`.
    pub fn released(&mut self, frame: &[u8], wall: Timestamp) {
        let Some(BeaconFrame::Parked { session, seq }) = parse(frame) else {
            self.counters.foreign += 1;
            return;
        };
        if session != self.session || self.armed != Some(seq) {
            self.counters.stale += 1;
            return;
        }
        self.armed = None;
        if self.overdue == Some(seq) && self.cycle_stops == 0 {
            // The frame of a checkpoint already flushed at RESUME, written late: flushing
            // again would release packets of the new epoch unverified.
            self.overdue = None;
            self.counters.stale += 1;
        } else {
            self.overdue = None;
            self.counters.flushes += 1;
            self.colo = true;
            self.cycle_beacons += 1;
            self.beacon_wall = Some(wall);
            self.flush(FlushCause::Beacon);
        }
        if self.primary_in {
            self.arm();
        }
    }

    /// A checkpoint request at `now` (monotonic): where it goes.
    pub fn request(&mut self, now: Timestamp) -> Request {
        if self.failed_over {
            return Request::Unsent;
        }
        if self
            .requested
            .is_some_and(|t| now.saturating_since(t) < REQUEST_RETRY)
        {
            return Request::Merged;
        }
        let request = if self.primary_in && self.secondary_in && self.armed.is_some() {
            let seq = self.next_seq;
            self.next_seq += 1;
            Request::Poke(poke_frame(self.session, seq))
        } else if self.qmp {
            Request::Qmp
        } else {
            return Request::Unsent;
        };
        self.requested = Some(now);
        request
    }

    /// An event from the primary's QMP.
    pub fn qemu_event(&mut self, event: QemuEvent) {
        match event {
            QemuEvent::Stop { at } if self.colo => {
                // A beacon read before this STOP was stamped belongs to an earlier flush (one
                // made without a STOP, as COLO_CHECKPOINT on a notify_dev makes them).
                if self.beacon_wall.is_some_and(|b| b < at) {
                    self.cycle_beacons = 0;
                }
                self.counters.stops += 1;
                self.cycle_stops += 1;
                self.stop_wall = Some(at);
            }
            QemuEvent::Resume if self.colo => {
                self.settling += 1;
                self.actions.push_back(Action::SettleOutdev);
            }
            QemuEvent::Stop { .. } | QemuEvent::Resume => {}
            QemuEvent::MigrationPass => self.counters.migration_passes += 1,
            QemuEvent::Migration { colo } => {
                if colo && !self.colo {
                    self.cycle_stops = 0;
                    self.cycle_beacons = 0;
                }
                self.colo = colo;
            }
            QemuEvent::ColoExit { reason } => {
                self.counters.colo_exits += 1;
                self.colo = false;
                if !self.failed_over {
                    self.failed_over = true;
                    self.actions.push_back(Action::Failover { reason });
                }
            }
        }
    }

    /// Every frame that was readable on the beacon's `outdev` when [`Action::SettleOutdev`]
    /// was asked for has been passed to [`Beacon::released`]: judge the `RESUME`.
    pub fn outdev_settled(&mut self) {
        if self.settling == 0 {
            return;
        }
        self.settling -= 1;
        self.counters.resumes += 1;
        if self.cycle_stops > 0 && self.cycle_beacons == 0 && !self.failed_over {
            self.counters.missed += 1;
            self.overdue = self.armed;
            self.flush(FlushCause::MissedBeacon);
            if self.primary_in && self.armed.is_none() {
                self.arm();
            }
        }
        if self.cycle_stops == 1 && self.cycle_beacons == 1 {
            if let (Some(stop), Some(beacon)) = (self.stop_wall, self.beacon_wall) {
                if beacon >= stop {
                    self.counters
                        .delay_after_stop
                        .record(beacon.saturating_since(stop));
                }
            }
        }
        self.cycle_stops = 0;
        self.cycle_beacons = 0;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const SESSION: u64 = 0x5eed;

    fn actions(b: &mut Beacon) -> Vec<Action> {
        std::iter::from_fn(|| b.poll_action()).collect()
    }

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    /// A beacon with both sockets connected and its first frame parked; returns that frame.
    fn armed() -> (Beacon, Frame) {
        let mut b = Beacon::new(SESSION);
        b.link_up(BeaconLink::SecondaryIn);
        b.link_up(BeaconLink::PrimaryIn);
        let a: [Action; 1] = actions(&mut b).try_into().expect("one action");
        let [Action::Arm(frame)] = a else {
            panic!("not armed: {a:?}");
        };
        (b, frame)
    }

    fn flushes(actions: &[Action]) -> Vec<Flush> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Flush(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    fn parked(actions: &[Action]) -> Vec<Frame> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Arm(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn frames_are_ipv4_udp_on_one_flow_and_a_poke_is_longer() {
        let b = beacon_frame(7, 9);
        let p = poke_frame(7, 10);
        let eth = etherparse::SlicedPacket::from_ethernet(&b.data).expect("a valid frame");
        let Some(etherparse::NetSlice::Ipv4(ip)) = eth.net else {
            panic!("not IPv4");
        };
        assert_eq!(ip.header().source(), BEACON_SRC);
        assert_eq!(ip.header().destination(), BEACON_DST);
        assert_eq!(
            ip.header().header_checksum(),
            ip.header().to_header().calc_header_checksum()
        );
        let Some(etherparse::TransportSlice::Udp(udp)) = eth.transport else {
            panic!("not UDP");
        };
        assert_eq!(
            (udp.source_port(), udp.destination_port()),
            (BEACON_SRC_PORT, BEACON_DST_PORT)
        );
        assert_eq!(usize::from(udp.length()), 8 + PAYLOAD);
        assert_eq!(b.len(), 70);
        assert_eq!(p.len(), b.len() + POKE_EXTRA);
        assert_eq!(
            parse(&b.data),
            Some(BeaconFrame::Parked { session: 7, seq: 9 })
        );
        assert_eq!(
            parse(&p.data),
            Some(BeaconFrame::Poke {
                session: 7,
                seq: 10
            })
        );
        let mut other = b.data.to_vec();
        other[37] ^= 1;
        assert_eq!(parse(&other), None);
        assert_eq!(parse(&b.data[..50]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn the_parked_frame_flushes_once_and_is_replaced() {
        let (mut b, frame) = armed();
        b.released(&frame.data, ms(5));
        let a = actions(&mut b);
        assert_eq!(
            flushes(&a),
            [Flush {
                epoch: 1,
                cause: FlushCause::Beacon
            }]
        );
        let next = parked(&a);
        assert_eq!(next.len(), 1, "re-armed: {a:?}");
        assert_ne!(next[0], frame, "a new sequence number");
        assert!(matches!(a[0], Action::Flush(_)), "flush before re-arming");
        // The same frame again (a duplicate or a replay) flushes nothing.
        b.released(&frame.data, ms(6));
        assert_eq!(actions(&mut b), []);
        b.released(&next[0].data, ms(7));
        assert_eq!(flushes(&actions(&mut b))[0].epoch, 2);
        let c = b.counters();
        assert_eq!((c.flushes, c.stale, c.arms, c.foreign), (2, 1, 3, 0));
    }

    #[test]
    fn frames_of_another_run_or_connection_and_foreign_frames_do_not_flush() {
        let (mut b, first) = armed();
        b.released(&beacon_frame(SESSION + 1, 1).data, ms(1));
        b.released(&poke_frame(SESSION, 1).data, ms(1));
        b.released(b"not a beacon", ms(1));
        assert_eq!(actions(&mut b), []);
        // Reconnecting parks a new frame; the one of the old connection is stale.
        b.link_down(BeaconLink::PrimaryIn);
        b.link_up(BeaconLink::PrimaryIn);
        let second = parked(&actions(&mut b));
        b.released(&first.data, ms(2));
        assert_eq!(actions(&mut b), []);
        b.released(&second[0].data, ms(2));
        assert_eq!(flushes(&actions(&mut b)).len(), 1);
        let c = b.counters();
        assert_eq!((c.flushes, c.stale, c.foreign), (1, 2, 2));
    }

    #[test]
    fn a_frame_out_while_disconnected_flushes_but_is_not_replaced() {
        let (mut b, frame) = armed();
        b.link_down(BeaconLink::PrimaryIn);
        b.released(&frame.data, ms(1));
        let a = actions(&mut b);
        assert_eq!(flushes(&a).len(), 1);
        assert!(parked(&a).is_empty());
        assert!(!b.armed());
        b.link_up(BeaconLink::PrimaryIn);
        assert_eq!(parked(&actions(&mut b)).len(), 1);
        assert!(b.armed());
    }

    #[test]
    fn requests_poke_once_per_flush_and_retry_after_a_while() {
        let (mut b, frame) = armed();
        let Request::Poke(poke) = b.request(ms(100)) else {
            panic!("a poke");
        };
        assert!(matches!(parse(&poke.data), Some(BeaconFrame::Poke { .. })));
        assert_eq!(b.request(ms(101)), Request::Merged);
        assert_eq!(b.request(ms(1099)), Request::Merged);
        b.released(&frame.data, ms(1));
        let _ = actions(&mut b);
        let Request::Poke(again) = b.request(ms(1100)) else {
            panic!("a poke after the flush");
        };
        assert_ne!(again, poke, "each poke has its own sequence number");
        assert!(matches!(b.request(ms(2100)), Request::Poke(_)), "retried");
    }

    #[test]
    fn requests_fall_back_to_qmp_when_the_beacon_is_not_connected() {
        let mut b = Beacon::new(SESSION);
        assert_eq!(b.request(ms(0)), Request::Unsent);
        b.qmp_up(true);
        assert_eq!(b.request(ms(0)), Request::Qmp);
        assert_eq!(b.request(ms(1)), Request::Merged);
        b.link_up(BeaconLink::PrimaryIn);
        b.link_up(BeaconLink::SecondaryIn);
        assert!(matches!(b.request(ms(2000)), Request::Poke(_)));
        b.link_down(BeaconLink::SecondaryIn);
        assert_eq!(b.request(ms(4000)), Request::Qmp);
        b.qmp_down();
        assert_eq!(b.request(ms(6000)), Request::Unsent);
    }

    /// One checkpoint as QMP and the beacon show it: STOP, the beacon frame (if parked and
    /// `beacon_first` decides whether it is read before the STOP event), RESUME settled.
    fn checkpoint(b: &mut Beacon, frame: Option<&Frame>, beacon_first: bool) -> Vec<Action> {
        let stop = QemuEvent::Stop { at: ms(1000) };
        if beacon_first {
            if let Some(f) = frame {
                b.released(&f.data, ms(1002));
            }
            b.qemu_event(stop);
        } else {
            b.qemu_event(stop);
            if let Some(f) = frame {
                b.released(&f.data, ms(1002));
            }
        }
        b.qemu_event(QemuEvent::Resume);
        let mut a = actions(b);
        assert!(a.contains(&Action::SettleOutdev), "{a:?}");
        b.outdev_settled();
        a.extend(actions(b));
        a
    }

    #[test]
    fn a_resume_without_beacon_since_stop_flushes_late_and_is_counted() {
        let (mut b, frame) = armed();
        b.qmp_up(true);
        // The beacon came: no second flush at RESUME, in either order of STOP and beacon.
        let a = checkpoint(&mut b, Some(&frame), false);
        assert_eq!(flushes(&a).len(), 1);
        let frame = parked(&a).remove(0);
        let a = checkpoint(&mut b, Some(&frame), true);
        assert_eq!(flushes(&a).len(), 1);
        let frame = parked(&a).remove(0);
        // No beacon: flushed at RESUME.
        let a = checkpoint(&mut b, None, false);
        assert_eq!(
            flushes(&a),
            [Flush {
                epoch: 3,
                cause: FlushCause::MissedBeacon
            }]
        );
        assert!(parked(&a).is_empty(), "the parked frame is still expected");
        let c = b.counters();
        assert_eq!((c.flushes, c.missed, c.stops, c.resumes), (2, 1, 3, 3));
        assert_eq!(c.delay_after_stop.count(), 2);
        assert_eq!(c.delay_after_stop.max(), Duration::from_millis(2));
        // The overdue frame, arriving late with no STOP since, does not flush a second time.
        b.released(&frame.data, ms(1010));
        let a = actions(&mut b);
        assert!(flushes(&a).is_empty(), "{a:?}");
        assert_eq!(parked(&a).len(), 1, "re-armed");
        assert_eq!(b.counters().stale, 1);
    }

    #[test]
    fn a_beacon_before_the_stop_does_not_count_for_it() {
        let (mut b, frame) = armed();
        b.qmp_up(true);
        // A flush with no STOP around it (QEMU flushed the beacon for another reason).
        b.released(&frame.data, ms(500));
        let _ = actions(&mut b);
        let a = checkpoint(&mut b, None, false);
        assert_eq!(
            flushes(&a),
            [Flush {
                epoch: 2,
                cause: FlushCause::MissedBeacon
            }]
        );
    }

    #[test]
    fn an_overdue_frame_after_the_next_stop_flushes() {
        let (mut b, frame) = armed();
        b.qmp_up(true);
        let a = checkpoint(&mut b, None, false);
        assert_eq!(flushes(&a).len(), 1);
        // It was parked too late for that checkpoint and comes out at the next one.
        let a = checkpoint(&mut b, Some(&frame), false);
        assert_eq!(
            flushes(&a),
            [Flush {
                epoch: 2,
                cause: FlushCause::Beacon
            }]
        );
        assert_eq!(b.counters().missed, 1);
    }

    #[test]
    fn stop_and_resume_outside_colo_are_not_checkpoints() {
        let (mut b, frame) = armed();
        b.qmp_up(false);
        // The end of the first migration stops and resumes the primary: not a checkpoint.
        b.qemu_event(QemuEvent::Stop { at: ms(1) });
        b.qemu_event(QemuEvent::Migration { colo: true });
        b.qemu_event(QemuEvent::Resume);
        assert_eq!(actions(&mut b), [Action::SettleOutdev]);
        b.outdev_settled();
        assert_eq!(actions(&mut b), []);
        assert!(b.colo());
        let a = checkpoint(&mut b, Some(&frame), false);
        assert_eq!(flushes(&a).len(), 1);
        assert_eq!(b.counters().missed, 0);
        b.qemu_event(QemuEvent::Migration { colo: false });
        b.qemu_event(QemuEvent::Stop { at: ms(1) });
        b.qemu_event(QemuEvent::Resume);
        assert_eq!(actions(&mut b), []);
    }

    #[test]
    fn the_first_beacon_proves_colo_when_qmp_had_no_migration_events() {
        let (mut b, frame) = armed();
        b.qmp_up(false);
        // The STOP of this first checkpoint came before anything told us about COLO.
        b.qemu_event(QemuEvent::Stop { at: ms(1) });
        b.released(&frame.data, ms(2));
        b.qemu_event(QemuEvent::Resume);
        b.outdev_settled();
        let a = actions(&mut b);
        assert_eq!(flushes(&a).len(), 1);
        let frame = parked(&a).remove(0);
        assert!(b.colo());
        let a = checkpoint(&mut b, Some(&frame), false);
        assert_eq!(flushes(&a).len(), 1);
        assert_eq!(b.counters().missed, 0);
        assert_eq!(b.counters().stops, 1);
    }

    #[test]
    fn colo_exit_fails_over_once_and_ends_requests() {
        let (mut b, _) = armed();
        b.qmp_up(true);
        b.qemu_event(QemuEvent::MigrationPass);
        b.qemu_event(QemuEvent::ColoExit {
            reason: "request".into(),
        });
        b.qemu_event(QemuEvent::ColoExit {
            reason: "request".into(),
        });
        assert_eq!(
            actions(&mut b),
            [Action::Failover {
                reason: "request".into()
            }]
        );
        assert!(b.failed_over());
        assert_eq!(b.request(ms(0)), Request::Unsent);
        let c = b.counters();
        assert_eq!((c.colo_exits, c.migration_passes), (2, 1));
    }

    #[test]
    fn a_settle_without_resume_changes_nothing() {
        let (mut b, _) = armed();
        b.outdev_settled();
        assert_eq!(actions(&mut b), []);
        assert_eq!(b.counters().resumes, 0);
    }
}
