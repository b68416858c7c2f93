//! The contract between the tracker and a protocol comparator.
//!
//! A [`Comparator`] is registered once (see [`crate::registry`]) and says which packets it
//! [`Claim`]s. For each flow it claims, it creates a [`FlowState`]: the flow's two queues and
//! whatever protocol state comparing them needs. The tracker pushes packets in, asks the flow
//! to compare after every arrival, and collects the decisions through an [`Outcome`], which is
//! where every release, drop and checkpoint request is logged and counted. A flow state never
//! lets a packet go any other way: every packet it received leaves through the [`Outcome`] or
//! through [`FlowState::take_all`].
//!
//! Packet-by-packet protocols (UDP, ICMP, most plugins) need not write a `FlowState` at all:
//! implement [`crate::fifo::Matcher`] and use [`crate::fifo::FifoFlow`].

use std::fmt;

use crate::event::{DropReason, ReleaseReason};
use crate::flow::{FlowKey, Side};
use crate::packet::Packet;
use crate::time::Timestamp;
use crate::tracker::Sink;

/// Which packets a comparator wants. The most specific matching claim wins a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Claim {
    /// Every IP packet no other claim takes, including all IP fragments (D-FRAG-1).
    Fallback,
    /// Unfragmented packets of one IP protocol (6 = TCP, 17 = UDP, ...).
    Protocol(u8),
    /// Unfragmented packets of one IP protocol with this source or destination port.
    Port {
        /// IP protocol number.
        protocol: u8,
        /// The port, matched against source and destination.
        port: u16,
    },
}

impl Claim {
    /// Higher wins: a port claim beats a protocol claim beats the fallback.
    pub const fn specificity(self) -> u8 {
        match self {
            Claim::Fallback => 0,
            Claim::Protocol(_) => 1,
            Claim::Port { .. } => 2,
        }
    }

    /// Whether a flow with this key falls under the claim.
    pub fn matches(self, key: &FlowKey) -> bool {
        match self {
            Claim::Fallback => true,
            Claim::Protocol(p) => !key.fragment && key.protocol == p,
            Claim::Port { protocol, port } => {
                !key.fragment
                    && key.protocol == protocol
                    && key.ports().is_some_and(|(s, d)| s == port || d == port)
            }
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = |f: &mut fmt::Formatter<'_>, p: u8| match crate::flow::protocol_name(p) {
            Some(n) => f.write_str(n),
            None => write!(f, "ip-proto {p}"),
        };
        match *self {
            Claim::Fallback => f.write_str("any other IP packet (fallback)"),
            Claim::Protocol(p) => proto(f, p),
            Claim::Port { protocol, port } => {
                proto(f, protocol)?;
                write!(f, " port {port}")
            }
        }
    }
}

/// A protocol comparator, registered once and shared by all the flows it claims.
pub trait Comparator: Send + Sync + 'static {
    /// The packets this comparator wants.
    fn claims(&self) -> Vec<Claim>;
    /// Fresh per-flow state for a new flow with this key.
    fn new_flow(&self, key: &FlowKey) -> Box<dyn FlowState>;
}

/// The queues and protocol state of one flow.
pub trait FlowState: Send {
    /// Queue a packet that arrived from `side`.
    fn push(&mut self, side: Side, packet: Packet);
    /// Compare what is queued; called after every arrival on the flow.
    fn compare(&mut self, out: &mut Outcome<'_>);
    /// Move every packet held for `side` into `into`, in release order (D-ORDER-2: TCP by
    /// sequence number, everything else oldest first). Used by checkpoint flush, failover and
    /// shutdown; protocol state (such as TCP's compared sequence) is kept.
    fn take_all(&mut self, side: Side, into: &mut Vec<Packet>);
    /// Arrival time of the oldest packet held for `side`.
    fn oldest(&self, side: Side) -> Option<Timestamp>;
    /// Calls `visit` on every packet held for `side`, in any order. The tracker uses it to
    /// copy packets held for long out of the read buffers they share with packets long gone;
    /// it never changes what a packet contains, so queues and protocol state stay valid.
    fn for_each_held(&mut self, side: Side, visit: &mut dyn FnMut(&mut Packet));
}

/// The result of comparing one primary packet with one secondary packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// They carry the same output.
    Same,
    /// They differ, first at this place.
    Differ(Difference),
}

/// Where two packets first differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Offset of the first differing byte within the primary frame's DATA (it may equal the
    /// primary's length when the secondary is longer).
    pub offset: usize,
    /// The header field or payload that offset falls in.
    pub field: &'static str,
}

impl Difference {
    /// The difference at `offset` of `primary`, with the field named by the packet parser.
    pub fn at(primary: &Packet, offset: usize) -> Self {
        Difference {
            offset,
            field: primary.field_at(offset),
        }
    }

    /// Compares `p` (which starts at `p_base` in `primary`'s DATA) with `s`: `None` when equal,
    /// else the first differing byte, a length difference counting as a difference at the end
    /// of the shorter one.
    pub fn between(primary: &Packet, p_base: usize, p: &[u8], s: &[u8]) -> Option<Self> {
        first_difference(p, s).map(|i| Difference::at(primary, p_base + i))
    }
}

/// Index of the first byte where `a` and `b` differ, or of the end of the shorter one when one
/// is a prefix of the other; `None` when they are equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

/// The decisions of one comparison run, handed to [`FlowState::compare`].
pub struct Outcome<'a> {
    pub(crate) sink: &'a mut Sink,
    pub(crate) key: &'a FlowKey,
    pub(crate) comparator: usize,
    pub(crate) held: &'a mut [u32; 2],
    pub(crate) held_bytes: &'a mut u64,
}

impl Outcome<'_> {
    /// The time of the arrival that triggered this run.
    pub fn now(&self) -> Timestamp {
        self.sink.now
    }

    /// The flow being compared.
    pub fn key(&self) -> &FlowKey {
        self.key
    }

    fn left(&mut self, side: Side, packet: &Packet) {
        let held = &mut self.held[side.index()];
        debug_assert!(
            *held > 0,
            "a flow released more {side} packets than it held"
        );
        *held = held.saturating_sub(1);
        *self.held_bytes = self.held_bytes.saturating_sub(packet.len() as u64);
    }

    /// Release a held primary packet to the output.
    pub fn release(&mut self, packet: Packet, reason: ReleaseReason) {
        self.left(Side::Primary, &packet);
        if reason == ReleaseReason::Matched {
            self.sink.count_match(self.comparator);
        }
        self.sink
            .release_held(packet.frame, Some(*self.key), reason, packet.arrived);
    }

    /// Let go of a held secondary packet (it is never output).
    pub fn drop_secondary(&mut self, packet: Packet, reason: DropReason) {
        self.left(Side::Secondary, &packet);
        self.sink
            .drop_packet(Side::Secondary, packet.frame, Some(*self.key), reason);
    }

    /// Report that `primary` and `secondary` differ: one checkpoint request. Both packets stay
    /// with the flow state, which keeps them queued until a checkpoint flushes them.
    pub fn mismatch(&mut self, primary: &Packet, secondary: &Packet, diff: Difference) {
        self.sink
            .mismatch(self.comparator, *self.key, primary, secondary, diff);
    }
}
