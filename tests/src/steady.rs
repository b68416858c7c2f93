//! Steady traffic through a daemon under test, for fault-injection and flood tests: senders
//! that play the primary and the secondary at a steady rate (and can be cut off mid-frame and
//! come back), an output reader that can vanish and return, and the checks that say nothing
//! was lost or reordered.
//!
//! The traffic is a set of TCP flows whose segments both sides send alike, so every primary
//! segment matches; optionally every n-th frame is instead a UDP datagram the secondary sends
//! differently, so that checkpoint requests keep coming. Every frame says where it belongs: a
//! TCP segment by its flow (source port) and sequence number, a datagram by the number in its
//! payload.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use colo_actors::Role;
use colo_core::frame::encode;
use colo_core::{Frame, Side};
use etherparse::{LaxSlicedPacket, TransportSlice};

use crate::frames::{Tcp, Udp, tcp, udp};
use crate::peer::Peer;
use crate::rig::{Rig, Setup, summary};

/// First TCP source port; flow `f` uses `FLOW_PORT + f`.
const FLOW_PORT: u16 = 2000;
/// The UDP port of the datagrams the sides send differently.
const MISMATCH_PORT: u16 = 9999;
/// The first sequence number of every flow.
const FIRST_SEQ: u32 = 1000;

/// Where a frame of the traffic belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    /// Segment `seg` of TCP flow `flow`.
    Segment {
        /// The flow.
        flow: u16,
        /// The segment's index within the flow.
        seg: u32,
    },
    /// The datagram sent as frame `k`.
    Datagram(u32),
}

/// The traffic: frame `k` of either side, and what a frame is.
#[derive(Clone, Debug)]
pub struct Traffic {
    setup: Setup,
    flows: u16,
    payload: usize,
    mismatch_every: Option<u32>,
}

impl Traffic {
    /// `flows` TCP flows of `payload`-byte segments, in this setup's framing.
    pub fn new(setup: Setup, flows: u16, payload: usize) -> Self {
        Traffic {
            setup,
            flows: flows.max(1),
            payload: payload.max(1),
            mismatch_every: None,
        }
    }

    /// The same, with every `n`-th frame a datagram the secondary sends differently.
    pub fn with_mismatches(mut self, n: u32) -> Self {
        self.mismatch_every = Some(n.max(2));
        self
    }

    /// What frame `k` is.
    pub fn label(&self, k: u32) -> Label {
        if let Some(m) = self.mismatch_every {
            if k % m == m - 1 {
                return Label::Datagram(k);
            }
        }
        let n = self.tcp_index(k);
        let flows = u32::from(self.flows);
        Label::Segment {
            flow: u16::try_from(n % flows).expect("flow fits u16"),
            seg: n / flows,
        }
    }

    /// The index of frame `k` among the TCP frames (datagrams skipped).
    fn tcp_index(&self, k: u32) -> u32 {
        match self.mismatch_every {
            Some(m) => k - k / m,
            None => k,
        }
    }

    /// Frame `k` as `side` sends it. Only the IP identification (and, for datagrams, the
    /// payload) differs between the sides.
    pub fn frame(&self, side: Side, k: u32) -> Frame {
        let mut net = self.setup.net();
        net.ip_id = (k as u16) ^ if side == Side::Secondary { 0x8000 } else { 0 };
        match self.label(k) {
            Label::Datagram(k) => {
                let who = if side == Side::Primary { 'P' } else { 'S' };
                udp(
                    &net,
                    &Udp {
                        src_port: MISMATCH_PORT,
                        dst_port: MISMATCH_PORT,
                        payload: format!("{who}{k:010}").into_bytes(),
                    },
                )
            }
            Label::Segment { flow, seg } => {
                let len = u32::try_from(self.payload).expect("small payload");
                let byte = (seg % 251) as u8;
                tcp(
                    &net,
                    &Tcp {
                        src_port: FLOW_PORT + flow,
                        dst_port: 80,
                        seq: FIRST_SEQ.wrapping_add(seg.wrapping_mul(len)),
                        ack: Some(1),
                        payload: vec![byte; self.payload],
                        ..Tcp::default()
                    },
                )
            }
        }
    }

    /// Where a frame read from the output belongs; `None` for a frame not of this traffic.
    pub fn identify(&self, frame: &Frame) -> Option<Label> {
        let p = LaxSlicedPacket::from_ethernet(frame.ethernet()).ok()?;
        match p.transport? {
            TransportSlice::Tcp(t) => {
                let flow = t.source_port().checked_sub(FLOW_PORT)?;
                let len = u32::try_from(self.payload).ok()?;
                let seg = t.sequence_number().wrapping_sub(FIRST_SEQ) / len;
                (flow < self.flows).then_some(Label::Segment { flow, seg })
            }
            TransportSlice::Udp(u) if u.source_port() == MISMATCH_PORT => {
                let text = std::str::from_utf8(u.payload().get(1..)?).ok()?;
                text.parse().ok().map(Label::Datagram)
            }
            _ => None,
        }
    }

    /// The wire bytes of frame `k` as `side` sends it.
    pub fn wire(&self, side: Side, k: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&self.frame(side, k), self.setup.vnet, &mut out);
        out
    }
}

/// How a sender sends: `total` frames in batches of `batch` every `tick`, cut off in the
/// middle of frame `c` for every `c` in `cuts` (then reconnected, frame `c` sent again whole).
#[derive(Clone, Debug)]
pub struct Pace {
    /// Frames to send.
    pub total: u32,
    /// Frames per write.
    pub batch: u32,
    /// Pause between writes.
    pub tick: Duration,
    /// Frames in whose middle the connection is dropped, ascending.
    pub cuts: Vec<u32>,
}

impl Pace {
    /// `total` frames at about `per_second`, in batches of 20, never cut.
    pub fn steady(total: u32, per_second: u32) -> Self {
        let batch = 20;
        Pace {
            total,
            batch,
            tick: Duration::from_micros(
                1_000_000 * u64::from(batch) / u64::from(per_second.max(1)),
            ),
            cuts: Vec::new(),
        }
    }

    /// The same pace, cut off `n` times at even intervals.
    pub fn cut(mut self, n: u32) -> Self {
        self.cuts = (1..=n).map(|i| i * self.total / (n + 1)).collect();
        self
    }
}

/// Plays `side` at `pace`: connects, sends, and at every cut writes part of a frame (two bytes
/// of its header, or half of it, alternately), drops the connection, connects again and sends
/// the frame whole. Returns the number of connections used.
pub async fn send(rig: &Rig, side: Side, traffic: &Traffic, pace: &Pace) -> u32 {
    let role = Role::input(side);
    let mut peer = rig.connect(role).await;
    let mut connections = 1;
    let mut cuts = pace.cuts.iter().copied().peekable();
    let mut k = 0;
    while k < pace.total {
        let end = (k + pace.batch).min(pace.total);
        let cut = cuts.next_if(|&c| c < end);
        let upto = cut.unwrap_or(end);
        let mut bytes = Vec::new();
        for i in k..upto {
            bytes.extend(traffic.wire(side, i));
        }
        if let Some(c) = cut {
            let whole = traffic.wire(side, c);
            let part = if connections % 2 == 1 {
                2
            } else {
                whole.len() / 2
            };
            bytes.extend_from_slice(&whole[..part]);
            peer.send_raw(&bytes).await;
            drop(peer);
            peer = rig.connect(role).await;
            connections += 1;
            k = c;
            continue;
        }
        peer.send_raw(&bytes).await;
        k = end;
        async_std::task::sleep(pace.tick).await;
    }
    connections
}

/// The frames read from the output, one list per connection.
#[derive(Debug, Default)]
pub struct Received {
    /// Frames per output connection, in arrival order.
    pub connections: Vec<Vec<Frame>>,
}

impl Received {
    /// Every frame read, all connections.
    pub fn count(&self) -> usize {
        self.connections.iter().map(Vec::len).sum()
    }
}

/// The test's output peer: reads what the daemon releases, and can vanish and come back.
pub struct Output<'r> {
    rig: &'r Rig,
    peer: Option<Peer>,
    /// What was read so far.
    pub received: Received,
}

impl<'r> Output<'r> {
    /// Connects to the rig's output.
    pub async fn connect(rig: &'r Rig) -> Output<'r> {
        Output {
            rig,
            peer: Some(rig.connect(Role::Outdev).await),
            received: Received {
                connections: vec![Vec::new()],
            },
        }
    }

    /// Drops the connection (whatever is in flight goes with it) and connects again.
    pub async fn reconnect(&mut self) {
        // Gone first: a daemon that dials only dials again once the old peer has left.
        self.peer = None;
        self.peer = Some(self.rig.connect(Role::Outdev).await);
        self.received.connections.push(Vec::new());
    }

    /// Reads until `done` says enough; false if `within` passes first.
    pub async fn read_until(&mut self, within: Duration, done: impl Fn(&Received) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.received) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let Some(peer) = self.peer.as_mut() else {
                return false;
            };
            if let Some(f) = peer.recv(left.min(Duration::from_millis(50))).await {
                if let Some(conn) = self.received.connections.last_mut() {
                    conn.push(f);
                }
            }
        }
    }
}

/// Reads the output until `done` says enough or `within` passes; drops the connection after
/// reading `kills[i]` frames on the i-th connection (mid-stream: more are in flight) and
/// connects again.
pub async fn collect(
    rig: &Rig,
    kills: &[usize],
    within: Duration,
    done: impl Fn(&Received) -> bool,
) -> Received {
    let deadline = Instant::now() + within;
    let mut out = Output::connect(rig).await;
    for &n in kills {
        let left = deadline.saturating_duration_since(Instant::now());
        let enough = out
            .read_until(left, |r| r.connections.last().is_some_and(|c| c.len() >= n))
            .await;
        if !enough {
            return out.received;
        }
        out.reconnect().await;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    out.read_until(left, done).await;
    out.received
}

/// Checks the order of one output connection: per TCP flow, segments come consecutively (no
/// gap, nothing twice, nothing backwards); datagrams come in sending order. Returns the labels.
pub fn check_connection(traffic: &Traffic, frames: &[Frame]) -> Result<Vec<Label>, String> {
    let mut last: BTreeMap<u16, u32> = BTreeMap::new();
    let mut last_datagram: Option<u32> = None;
    let mut labels = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let label = traffic.identify(f).ok_or_else(|| {
            format!(
                "frame {i}: not part of the traffic: {}",
                crate::frames::describe(f)
            )
        })?;
        match label {
            Label::Segment { flow, seg } => {
                if let Some(&prev) = last.get(&flow) {
                    if seg != prev + 1 {
                        return Err(format!(
                            "frame {i}: flow {flow} segment {seg} after segment {prev}"
                        ));
                    }
                }
                last.insert(flow, seg);
            }
            Label::Datagram(k) => {
                if last_datagram.is_some_and(|p| k <= p) {
                    return Err(format!("frame {i}: datagram {k} after {last_datagram:?}"));
                }
                last_datagram = Some(k);
            }
        }
        labels.push(label);
    }
    Ok(labels)
}

/// Checks that the output carried every primary frame `0..total` exactly once, per flow in
/// order (one output connection, no output faults).
pub fn check_exactly_once(traffic: &Traffic, got: &Received, total: u32) -> Result<(), String> {
    let frames: Vec<Frame> = got.connections.concat();
    let labels = check_connection(traffic, &frames)?;
    let mut want: Vec<Label> = (0..total).map(|k| traffic.label(k)).collect();
    let mut have = labels;
    want.sort();
    have.sort();
    if have != want {
        let missing = want
            .iter()
            .filter(|l| !have.contains(l))
            .take(5)
            .collect::<Vec<_>>();
        return Err(format!(
            "{} frames out, {} sent; first missing: {missing:?}",
            have.len(),
            want.len()
        ));
    }
    Ok(())
}

/// The label of the last frame `0..total` of every TCP flow.
pub fn last_segments(traffic: &Traffic, total: u32) -> BTreeMap<u16, u32> {
    let mut last = BTreeMap::new();
    for k in 0..total {
        if let Label::Segment { flow, seg } = traffic.label(k) {
            last.insert(flow, seg);
        }
    }
    last
}

/// Checks the counter identity of the rig's first pipeline every few milliseconds until
/// `stop` is set; returns how many snapshots it checked.
pub async fn watch_identity(rig: &Rig, stop: &AtomicBool) -> u32 {
    let mut checked = 0;
    while !stop.load(Ordering::Relaxed) {
        let c = rig.counters();
        if let Err(e) = c.check() {
            panic!("counters do not add up while running: {e}; {}", summary(&c));
        }
        checked += 1;
        async_std::task::sleep(Duration::from_millis(5)).await;
    }
    checked
}
