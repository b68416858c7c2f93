//! TCP: the payload byte stream compared by sequence number, as QEMU does it (§6.2).
//!
//! Two replicas of a guest send the same bytes but may cut them into segments differently,
//! so a flow keeps each side's segments sorted by sequence number and matches the payload
//! byte ranges against each other, remembering in each segment how much of it already matched.
//! Headers (options, window, checksums, the IP header) are never compared; only the ACK number
//! takes part, through QEMU's "the secondary has acknowledged as much" gate.
//!
//! Where QEMU's rules are kept on purpose: segments without payload are released (primary) or
//! dropped (secondary) without comparison, and data at or before what was already compared is
//! released uncompared (Q13). Where they are fixed: the payload ends where the IP length says,
//! so Ethernet padding is never payload (D-TCP-1); the ACK gate uses the highest ACK per side
//! in serial order (D-TCP-2); every slice is bounds-checked and a pair whose next unmatched
//! stream positions differ is a mismatch rather than an over-read (D-TCP-3); "nothing compared
//! yet" is `None` rather than a sequence number 0.

use std::collections::VecDeque;
use std::sync::Arc;

use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{
    Claim, Comparator, Difference, DropReason, FlowKey, FlowState, Outcome, Packet, Registration,
    ReleaseReason, Side, Timestamp,
};
use serde::Deserialize;

/// The `tcp` section of the configuration. TCP has no settings yet; the section exists so that
/// a misspelt field is refused rather than ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpSettings {}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let TcpSettings {} = settings(section)?;
    Ok(Arc::new(TcpComparator))
}

/// The TCP comparator's registration.
pub const TCP: Registration = Registration {
    name: "tcp",
    summary: "TCP payload compared by sequence number, any segmentation (QEMU's rule, bounds-checked)",
    build,
};

inventory::submit!(TCP);

/// The field named when the ACK gate fails.
pub const ACK_GATE: &str = "tcp acknowledgment number (ack gate)";

/// Offset of the sequence number within the TCP header.
const SEQ_FIELD: usize = 4;
/// Offset of the acknowledgment number within the TCP header.
const ACK_FIELD: usize = 8;

struct TcpComparator;

impl Comparator for TcpComparator {
    fn claims(&self) -> Vec<Claim> {
        vec![Claim::Protocol(proto::TCP)]
    }

    fn new_flow(&self, _key: &FlowKey) -> Box<dyn FlowState> {
        Box::<TcpFlow>::default()
    }
}

/// `a` comes after `b` in sequence-number space (serial arithmetic, RFC 1982).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The earlier of two sequence numbers in serial order.
fn serial_min(a: u32, b: u32) -> u32 {
    if after(a, b) { b } else { a }
}

/// A queued segment and how much of its payload has matched so far.
struct Segment {
    packet: Packet,
    seq: u32,
    /// The acknowledgment number, when the ACK flag is set.
    ack: Option<u32>,
    /// Payload bytes already matched against the other side.
    offset: usize,
}

impl Segment {
    fn new(packet: Packet) -> Self {
        // The TCP claim only takes unfragmented TCP, for which the classifier always parsed the
        // header; a packet without it has no payload and is treated as a bare segment at 0.
        let (seq, ack) = packet
            .meta
            .tcp
            .map_or((0, None), |t| (t.seq, t.has_ack.then_some(t.ack)));
        Segment {
            packet,
            seq,
            ack,
            offset: 0,
        }
    }

    fn payload(&self) -> &[u8] {
        self.packet.tcp_payload()
    }

    fn has_payload(&self) -> bool {
        !self.payload().is_empty()
    }

    /// The payload not matched yet.
    fn rest(&self) -> &[u8] {
        self.payload().get(self.offset..).unwrap_or(&[])
    }

    /// Sequence number just past the payload (SYN and FIN do not count).
    fn seq_end(&self) -> u32 {
        self.seq.wrapping_add(stream_len(self.payload().len()))
    }

    /// The stream position of the first unmatched payload byte.
    fn position(&self) -> u32 {
        self.seq.wrapping_add(stream_len(self.offset))
    }

    /// Offset within the frame's DATA of byte `i` of the unmatched payload.
    fn data_offset(&self, i: usize) -> usize {
        self.packet.tcp_payload_offset() + self.offset + i
    }

    /// Offset within the frame's DATA of a TCP header field.
    fn header_offset(&self, field: usize) -> usize {
        self.packet.meta.l4 as usize + field
    }

    /// Whether the whole payload lies at or before the compared sequence number.
    fn already_compared(&self, compared: Option<u32>) -> bool {
        compared.is_some_and(|c| !after(self.seq_end(), c))
    }
}

/// A length in sequence-number space; frames never come near 4 GiB.
fn stream_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The outcome of matching one primary segment against one secondary segment (QEMU's MARK).
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    /// Same range, same bytes: release the primary, drop the secondary.
    FreeBoth,
    /// The primary's rest matched this many bytes of the secondary, which stays queued.
    FreePrimary(usize),
    /// The secondary's rest matched this many bytes of the primary, which stays in hand.
    FreeSecondary(usize),
    /// They differ here: both stay queued and a checkpoint is requested.
    Mismatch(Difference),
}

/// Compares the primary segment `p` with the secondary segment `s`.
fn mark(p: &Segment, s: &Segment, min_ack: Option<u32>) -> Mark {
    if p.seq == s.seq && p.seq_end() == s.seq_end() && p.payload() == s.payload() {
        // The exact-segment path has no ACK gate (T09).
        return Mark::FreeBoth;
    }
    let misaligned = || Mark::Mismatch(Difference::at(&p.packet, p.header_offset(SEQ_FIELD)));
    if p.position() != s.position() {
        return misaligned();
    }
    let (p_rest, s_rest) = (p.rest(), s.rest());
    if !after(p.seq_end(), s.seq_end()) {
        let Some(s_part) = s_rest.get(..p_rest.len()) else {
            return misaligned();
        };
        if let Some(diff) = Difference::between(&p.packet, p.data_offset(0), p_rest, s_part) {
            return Mark::Mismatch(diff);
        }
        // Releasing data the secondary has not acknowledged as much of yet would let the
        // primary run ahead of what the secondary could reproduce.
        let acked = p
            .ack
            .is_none_or(|ack| min_ack.is_some_and(|min| !after(ack, min)));
        if !acked {
            return Mark::Mismatch(Difference {
                offset: p.header_offset(ACK_FIELD),
                field: ACK_GATE,
            });
        }
        Mark::FreePrimary(p_rest.len())
    } else {
        let Some(p_part) = p_rest.get(..s_rest.len()) else {
            return misaligned();
        };
        if let Some(diff) = Difference::between(&p.packet, p.data_offset(0), p_part, s_rest) {
            return Mark::Mismatch(diff);
        }
        Mark::FreeSecondary(s_rest.len())
    }
}

/// One TCP connection: both sides' segments, sorted by sequence number, and what has been
/// compared so far.
#[derive(Default)]
struct TcpFlow {
    queues: [VecDeque<Segment>; 2],
    /// The end of the last compared range; `None` until something was compared.
    compared: Option<u32>,
    /// The highest ACK seen per side, in serial order (D-TCP-2).
    acks: [Option<u32>; 2],
}

impl TcpFlow {
    /// Inserts behind every segment that does not come after it, scanning from the back so
    /// that in-order arrival costs nothing and equal sequence numbers keep arrival order.
    fn insert(queue: &mut VecDeque<Segment>, segment: Segment) {
        let at = queue
            .iter()
            .rposition(|q| !after(q.seq, segment.seq))
            .map_or(0, |i| i + 1);
        // Room for one segment rather than the default four when a queue first fills: most
        // connections hold few segments at a time, and many connections must stay small.
        if queue.capacity() == 0 {
            queue.reserve_exact(1);
        }
        queue.insert(at, segment);
    }
}

impl FlowState for TcpFlow {
    fn push(&mut self, side: Side, packet: Packet) {
        let segment = Segment::new(packet);
        if let Some(ack) = segment.ack {
            let highest = &mut self.acks[side.index()];
            if highest.is_none_or(|h| after(ack, h)) {
                *highest = Some(ack);
            }
        }
        Self::insert(&mut self.queues[side.index()], segment);
    }

    fn compare(&mut self, out: &mut Outcome<'_>) {
        let min_ack = match self.acks {
            [Some(p), Some(s)] => Some(serial_min(p, s)),
            _ => None,
        };
        let [primary, secondary] = &mut self.queues;
        let compared = &mut self.compared;
        // The primary segment being matched; `None` means: take the lowest queued one.
        let mut hand: Option<Segment> = None;
        loop {
            if hand.is_none() {
                hand = primary.pop_front();
                if hand.is_none() {
                    return;
                }
            }
            let Some(mut s) = secondary.pop_front() else {
                if let Some(p) = hand {
                    primary.push_front(p);
                }
                return;
            };
            if let Some(p) = hand.take() {
                if !p.has_payload() {
                    out.release(p.packet, ReleaseReason::NoPayload);
                } else if p.already_compared(*compared) {
                    out.release(p.packet, ReleaseReason::AlreadyCompared);
                } else {
                    hand = Some(p);
                }
            }
            if !s.has_payload() {
                out.drop_secondary(s.packet, DropReason::NoPayload);
                continue;
            }
            if s.already_compared(*compared) {
                out.drop_secondary(s.packet, DropReason::AlreadyCompared);
                continue;
            }
            let Some(mut p) = hand.take() else {
                secondary.push_front(s);
                continue;
            };
            match mark(&p, &s, min_ack) {
                Mark::FreeBoth => {
                    *compared = Some(p.seq_end());
                    out.release(p.packet, ReleaseReason::Matched);
                    out.drop_secondary(s.packet, DropReason::Matched);
                }
                Mark::FreePrimary(n) => {
                    *compared = Some(p.seq_end());
                    s.offset += n;
                    out.release(p.packet, ReleaseReason::Matched);
                    // QEMU leaves a used-up secondary queued until a later run drops it as
                    // already compared; with no later run the timeout scan would turn it into
                    // a needless checkpoint, so it goes now.
                    if s.rest().is_empty() {
                        out.drop_secondary(s.packet, DropReason::Matched);
                    } else {
                        secondary.push_front(s);
                    }
                }
                Mark::FreeSecondary(n) => {
                    *compared = Some(s.seq_end());
                    p.offset += n;
                    out.drop_secondary(s.packet, DropReason::Matched);
                    hand = Some(p);
                }
                Mark::Mismatch(diff) => {
                    out.mismatch(&p.packet, &s.packet, diff);
                    primary.push_front(p);
                    secondary.push_front(s);
                    return;
                }
            }
        }
    }

    fn take_all(&mut self, side: Side, into: &mut Vec<Packet>) {
        into.extend(self.queues[side.index()].drain(..).map(|s| s.packet));
    }

    fn oldest(&self, side: Side) -> Option<Timestamp> {
        self.queues[side.index()]
            .iter()
            .map(|s| s.packet.arrived)
            .min()
    }

    fn for_each_held(&mut self, side: Side, visit: &mut dyn FnMut(&mut Packet)) {
        for segment in &mut self.queues[side.index()] {
            visit(&mut segment.packet);
        }
    }
}

#[cfg(test)]
mod test {
    use colo_core::{DropReason, ReleaseReason, Side, Timestamp};

    use super::{ACK_GATE, after, serial_min};
    use crate::test_support::{Harness, IP, Ip, MAC_S, SEG, Step, Tcp};

    use DropReason as D;
    use ReleaseReason as R;

    /// Offset of the TCP header in a frame without IP options.
    const L4: usize = 14 + 20;

    /// A recognisable byte stream: any misaligned comparison of it differs.
    fn stream(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// The secondary's copy of a segment: same TCP payload, different everything else that may
    /// differ between replicas without changing the output.
    fn secondary(t: Tcp<'_>) -> Vec<u8> {
        Tcp {
            ip: Ip {
                mac: MAC_S,
                id: t.ip.id.wrapping_add(4321),
                ..t.ip
            },
            ..t
        }
        .frame()
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(after(1, 0));
        assert!(after(0x10, 0xFFFF_FFF0));
        assert!(!after(0xFFFF_FFF0, 0x10));
        assert!(!after(5, 5));
        assert_eq!(serial_min(0xFFFF_FFF0, 0x10), 0xFFFF_FFF0);
        assert_eq!(serial_min(7, 3), 3);
    }

    #[test]
    fn t01_identical_segment_is_released_once() {
        let data = stream(100);
        let seg = Tcp {
            payload: &data,
            ..SEG
        };
        let mut h = Harness::new();
        assert!(h.primary(seg.frame()).is_quiet());
        let st = h.secondary(secondary(seg));
        assert_eq!(st.released(), vec![(seg.frame(), R::Matched)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.held(), [0, 0]);
        assert_eq!(h.matched("tcp"), 1);
    }

    #[test]
    fn t02_headers_never_count() {
        let data = stream(100);
        let p = Tcp {
            payload: &data,
            timestamp: Some((100, 200)),
            ..SEG
        };
        let s = Tcp {
            ip: Ip {
                mac: MAC_S,
                id: 999,
                ttl: 3,
                dscp: 10,
                ..IP
            },
            window: 512,
            timestamp: Some((777, 888)),
            ..p
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(s.frame());
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);

        // A secondary without any TCP option (a shorter header) carries the same payload too.
        let q = Tcp { seq: 1100, ..p };
        h.primary(q.frame());
        let st = h.secondary(
            Tcp {
                timestamp: None,
                ..q
            }
            .frame(),
        );
        assert_eq!(st.released(), vec![(q.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t03_different_payload_holds_and_requests_one_checkpoint() {
        let a = [b'A'; 100];
        let mut b = a;
        b[37] = b'B';
        let p = Tcp { payload: &a, ..SEG };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(secondary(Tcp { payload: &b, ..SEG }));
        assert!(st.released().is_empty());
        assert!(st.dropped().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(st.checkpoints(), 1);
        assert_eq!(m[0].comparator, "tcp");
        assert_eq!(m[0].difference.offset, p.payload_offset() + 37);
        assert_eq!(m[0].difference.field, "tcp payload");
        assert_eq!(h.held(), [1, 1]);

        let st = h.checkpoint();
        assert_eq!(st.released(), vec![(p.frame(), R::CheckpointFlush)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::CheckpointFlush)]);
        assert_eq!(h.held(), [0, 0]);
    }

    #[test]
    fn t04_a_standing_mismatch_blocks_the_flow_and_repeats_the_request() {
        let (a, b) = ([b'A'; 100], [b'B'; 100]);
        let tail = stream(10);
        let mut h = Harness::new();
        h.primary(Tcp { payload: &a, ..SEG }.frame());
        assert_eq!(
            h.secondary(Tcp { payload: &b, ..SEG }.frame())
                .checkpoints(),
            1
        );
        let next = Tcp {
            seq: 1100,
            payload: &tail,
            ..SEG
        };
        for st in [h.primary(next.frame()), h.secondary(secondary(next))] {
            assert!(st.released().is_empty());
            assert_eq!(st.checkpoints(), 1);
        }
        assert_eq!(h.held(), [2, 2]);
    }

    #[test]
    fn t06_primary_segment_matches_two_secondary_segments() {
        let data = stream(100);
        let p = Tcp {
            payload: &data,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(secondary(Tcp {
            payload: &data[..50],
            ..SEG
        }));
        assert!(st.released().is_empty());
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(secondary(Tcp {
            seq: 1050,
            payload: &data[50..],
            ..SEG
        }));
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        // The used-up secondary segment goes at once (QEMU keeps it for a later run, which
        // would only let the timeout scan ask for a needless checkpoint).
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::Matched)]);
        assert_eq!(h.held(), [0, 0]);
    }

    #[test]
    fn t07_two_primary_segments_match_one_secondary_segment() {
        let data = stream(100);
        let p1 = Tcp {
            payload: &data[..50],
            ..SEG
        };
        let p2 = Tcp {
            seq: 1050,
            payload: &data[50..],
            ..SEG
        };
        let mut h = Harness::new();
        assert!(h.primary(p1.frame()).is_quiet());
        assert!(h.primary(p2.frame()).is_quiet());
        let st = h.secondary(secondary(Tcp {
            payload: &data,
            ..SEG
        }));
        assert_eq!(
            st.released(),
            vec![(p1.frame(), R::Matched), (p2.frame(), R::Matched)]
        );
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t08_ack_gate_on_the_split_path() {
        let data = stream(100);
        let mut h = Harness::new();
        let p1 = Tcp {
            payload: &data[..50],
            ack: Some(6000),
            ..SEG
        };
        h.primary(p1.frame());
        h.primary(
            Tcp {
                seq: 1050,
                payload: &data[50..],
                ..p1
            }
            .frame(),
        );
        let st = h.secondary(secondary(Tcp {
            payload: &data,
            ..SEG
        }));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].difference.field, ACK_GATE);
        assert_eq!(m[0].difference.offset, L4 + 8);
        assert_eq!(h.held(), [2, 1]);
    }

    #[test]
    fn t09_exact_segment_path_has_no_ack_gate() {
        let data = stream(100);
        let p = Tcp {
            payload: &data,
            ack: Some(6000),
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(secondary(Tcp {
            payload: &data,
            ..SEG
        }));
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t10_ack_gate_when_the_primary_segment_finishes() {
        let data = stream(100);
        let mut h = Harness::new();
        h.primary(
            Tcp {
                payload: &data,
                ack: Some(6000),
                ..SEG
            }
            .frame(),
        );
        // The first secondary half matches without a gate (the primary goes on).
        let st = h.secondary(secondary(Tcp {
            payload: &data[..50],
            ..SEG
        }));
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(secondary(Tcp {
            seq: 1050,
            payload: &data[50..],
            ..SEG
        }));
        assert!(st.released().is_empty());
        assert_eq!(st.mismatches().len(), 1);
        assert_eq!(st.mismatches()[0].difference.field, ACK_GATE);
    }

    #[test]
    fn ack_gate_uses_the_highest_ack_not_the_latest() {
        // D-TCP-2: the secondary's data arrives after an ACK that acknowledged more; QEMU's
        // "latest ACK" would fail the gate, the highest ACK passes it.
        let data = stream(100);
        let mut h = Harness::new();
        h.secondary(secondary(SEG));
        h.secondary(secondary(Tcp {
            payload: &data,
            ack: Some(4000),
            ..SEG
        }));
        let p = Tcp {
            payload: &data[..50],
            ..SEG
        };
        let st = h.primary(p.frame());
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::NoPayload)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn ack_gate_orders_acks_across_the_wrap() {
        // The secondary's highest ACK in serial order is 0x10 (after 0xFFFF_FFF0), so a
        // primary acknowledging 0x20 is ahead of it; an unsigned maximum would let it pass.
        let data = stream(100);
        let mut h = Harness::new();
        h.secondary(secondary(Tcp {
            payload: &data,
            ack: Some(0x10),
            ..SEG
        }));
        h.secondary(secondary(Tcp {
            seq: 1100,
            ack: Some(0xFFFF_FFF0),
            ..SEG
        }));
        let ahead = Tcp {
            payload: &data[..50],
            ack: Some(0x20),
            ..SEG
        };
        let st = h.primary(ahead.frame());
        assert!(st.released().is_empty());
        assert_eq!(st.mismatches()[0].difference.field, ACK_GATE);
        h.checkpoint();

        let mut h = Harness::new();
        h.secondary(secondary(Tcp {
            payload: &data,
            ack: Some(0x10),
            ..SEG
        }));
        h.secondary(secondary(Tcp {
            seq: 1100,
            ack: Some(0xFFFF_FFF0),
            ..SEG
        }));
        let behind = Tcp {
            ack: Some(0x08),
            ..ahead
        };
        assert_eq!(
            h.primary(behind.frame()).released(),
            vec![(behind.frame(), R::Matched)]
        );
    }

    #[test]
    fn unknown_secondary_ack_fails_the_gate_unless_the_primary_has_no_ack() {
        let data = stream(100);
        let s = Tcp {
            payload: &data,
            ack: None,
            ..SEG
        };
        let mut h = Harness::new();
        h.secondary(secondary(s));
        let st = h.primary(
            Tcp {
                payload: &data[..50],
                ..SEG
            }
            .frame(),
        );
        assert_eq!(st.mismatches()[0].difference.field, ACK_GATE);

        let mut h = Harness::new();
        h.secondary(secondary(s));
        let p = Tcp {
            payload: &data[..50],
            ack: None,
            ..SEG
        };
        let st = h.primary(p.frame());
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t11_pure_ack_waits_for_any_secondary_packet() {
        let mut h = Harness::new();
        assert!(h.primary(SEG.frame()).is_quiet());
        assert_eq!(h.held(), [1, 0]);
        let st = h.secondary(secondary(SEG));
        assert_eq!(st.released(), vec![(SEG.frame(), R::NoPayload)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::NoPayload)]);
        assert_eq!(st.checkpoints(), 0);

        // A secondary data segment releases it too, and stays for its own primary.
        let data = stream(20);
        let mut h = Harness::new();
        h.primary(SEG.frame());
        let st = h.secondary(secondary(Tcp {
            payload: &data,
            ..SEG
        }));
        assert_eq!(st.released(), vec![(SEG.frame(), R::NoPayload)]);
        assert!(st.dropped().is_empty());
        assert_eq!(h.held(), [0, 1]);
    }

    #[test]
    fn t12_syns_with_different_isns_are_not_compared() {
        let p = Tcp {
            seq: 1000,
            ack: None,
            syn: true,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(secondary(Tcp { seq: 777_777, ..p }));
        assert_eq!(st.released(), vec![(p.frame(), R::NoPayload)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::NoPayload)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t13_fin_without_data_is_released_against_a_pure_ack() {
        let fin = Tcp { fin: true, ..SEG };
        let mut h = Harness::new();
        h.primary(fin.frame());
        let st = h.secondary(secondary(SEG));
        assert_eq!(st.released(), vec![(fin.frame(), R::NoPayload)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t14_already_compared_data_is_released_uncompared() {
        let data = stream(100);
        let seg = Tcp {
            payload: &data,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(seg.frame());
        h.secondary(secondary(seg));

        // Q13 kept: a primary retransmission with different bytes goes out uncompared.
        let other = [0xEE; 100];
        let retrans = Tcp {
            payload: &other,
            ..seg
        };
        assert!(h.primary(retrans.frame()).is_quiet());
        let st = h.secondary(secondary(SEG));
        assert_eq!(st.released(), vec![(retrans.frame(), R::AlreadyCompared)]);
        assert_eq!(st.checkpoints(), 0);

        // A secondary copy alone is dropped by the next run that meets it.
        h.secondary(secondary(retrans));
        let next = Tcp {
            seq: 1100,
            payload: &data[..10],
            ..SEG
        };
        let st = h.primary(next.frame());
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::AlreadyCompared)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.held(), [1, 0]);
    }

    #[test]
    fn compared_sequence_zero_is_not_nothing_compared() {
        // A segment ending exactly at sequence 0: QEMU's 0 sentinel would forget it.
        let data = stream(16);
        let seg = Tcp {
            seq: 0u32.wrapping_sub(16),
            payload: &data,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(seg.frame());
        h.secondary(secondary(seg));
        let other = [1u8; 16];
        let retrans = Tcp {
            payload: &other,
            ..seg
        };
        h.primary(retrans.frame());
        let st = h.secondary(secondary(SEG));
        assert_eq!(st.released(), vec![(retrans.frame(), R::AlreadyCompared)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t15_out_of_order_primary_is_released_in_sequence_order() {
        let data = stream(200);
        let s1 = Tcp {
            payload: &data[..100],
            ..SEG
        };
        let s2 = Tcp {
            seq: 1100,
            payload: &data[100..],
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(s2.frame());
        h.primary(s1.frame());
        assert_eq!(
            h.secondary(secondary(s1)).released(),
            vec![(s1.frame(), R::Matched)]
        );
        assert_eq!(
            h.secondary(secondary(s2)).released(),
            vec![(s2.frame(), R::Matched)]
        );
        assert_eq!(h.held(), [0, 0]);
    }

    #[test]
    fn t16_flush_releases_in_sequence_order() {
        let data = stream(10);
        let at = |seq| {
            Tcp {
                seq,
                payload: &data,
                ..SEG
            }
            .frame()
        };
        let mut h = Harness::new();
        for seq in [1100, 1000, 1200] {
            assert!(h.primary(at(seq)).is_quiet());
        }
        let st = h.checkpoint();
        assert_eq!(
            st.released(),
            vec![
                (at(1000), R::CheckpointFlush),
                (at(1100), R::CheckpointFlush),
                (at(1200), R::CheckpointFlush),
            ]
        );
    }

    #[test]
    fn oldest_is_the_earliest_arrival_not_the_lowest_sequence() {
        let data = stream(10);
        let mut h = Harness::new();
        h.primary(
            Tcp {
                seq: 1100,
                payload: &data,
                ..SEG
            }
            .frame(),
        );
        h.primary(
            Tcp {
                payload: &data,
                ..SEG
            }
            .frame(),
        );
        let flows = h.tracker().flows();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].oldest, Some(Timestamp::from_millis(1)));
    }

    #[test]
    fn t17_sequence_numbers_wrap() {
        let data = stream(32);
        let start = 0xFFFF_FFF0;
        let whole = Tcp {
            seq: start,
            payload: &data,
            ..SEG
        };
        let first = Tcp {
            seq: start,
            payload: &data[..16],
            ..SEG
        };
        let second = Tcp {
            seq: 0,
            payload: &data[16..],
            ..SEG
        };

        // T06 across the wrap.
        let mut h = Harness::new();
        h.primary(whole.frame());
        assert!(h.secondary(secondary(first)).released().is_empty());
        let st = h.secondary(secondary(second));
        assert_eq!(st.released(), vec![(whole.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);

        // T07 across the wrap, the later segment arriving first.
        let mut h = Harness::new();
        h.primary(second.frame());
        h.primary(first.frame());
        let st = h.secondary(secondary(whole));
        assert_eq!(
            st.released(),
            vec![(first.frame(), R::Matched), (second.frame(), R::Matched)]
        );
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t46_padding_is_not_payload() {
        // D-TCP-1: padded pure ACKs have no payload, so the data after them is compared.
        let ack = Tcp { pad_to: 60, ..SEG };
        let data = Tcp {
            payload: b"data!",
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(ack.frame());
        let st = h.secondary(secondary(ack));
        assert_eq!(st.released(), vec![(ack.frame(), R::NoPayload)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, D::NoPayload)]);
        h.primary(data.frame());
        let st = h.secondary(secondary(data));
        assert_eq!(st.released(), vec![(data.frame(), R::Matched)]);

        // And compared for real: different data after the padded ACKs is a mismatch.
        let mut h = Harness::new();
        h.primary(ack.frame());
        h.secondary(secondary(ack));
        h.primary(data.frame());
        let st = h.secondary(secondary(Tcp {
            payload: b"datA!",
            ..SEG
        }));
        assert!(st.released().is_empty());
        assert_eq!(
            st.mismatches()[0].difference.offset,
            data.payload_offset() + 3
        );
    }

    #[test]
    fn padding_after_data_is_ignored() {
        let p = Tcp {
            payload: b"hi",
            pad_to: 60,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let mut s = secondary(p);
        let last = s.len() - 1;
        s[last] = 0x55;
        let st = h.secondary(s);
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
    }

    #[test]
    fn t47_ip_options_on_one_side() {
        let data = stream(100);
        let p = Tcp {
            ip: Ip {
                options: &[1, 1, 1, 0],
                ..IP
            },
            payload: &data,
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        let st = h.secondary(secondary(Tcp { ip: IP, ..p }));
        assert_eq!(st.released(), vec![(p.frame(), R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t52_missing_secondary_segment_is_a_misalignment() {
        let data = stream(300);
        let seg = |i: usize| Tcp {
            seq: 1000 + 100 * i as u32,
            payload: &data[100 * i..100 * (i + 1)],
            ..SEG
        };
        let mut h = Harness::new();
        h.primary(seg(0).frame());
        assert_eq!(h.secondary(secondary(seg(0))).released().len(), 1);
        assert!(h.primary(seg(1).frame()).is_quiet());
        let st = h.secondary(secondary(seg(2)));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].difference.field, "tcp sequence number");
        assert_eq!(m[0].difference.offset, L4 + 4);
        let st = h.primary(seg(2).frame());
        assert!(st.released().is_empty());
        assert_eq!(st.checkpoints(), 1);
        assert_eq!(h.held(), [2, 1]);
    }

    #[test]
    fn misaligned_secondary_inserting_data_is_a_mismatch() {
        // The secondary's segment starts inside the primary's: positions 1000 and 1040 differ.
        let data = stream(200);
        let mut h = Harness::new();
        h.primary(
            Tcp {
                payload: &data[..100],
                ..SEG
            }
            .frame(),
        );
        let st = h.secondary(secondary(Tcp {
            seq: 1040,
            payload: &data[40..50],
            ..SEG
        }));
        assert_eq!(st.mismatches()[0].difference.field, "tcp sequence number");
    }

    #[test]
    fn segments_beyond_64_kib_are_not_wrapped() {
        // A GSO-sized primary segment (IP length 0: the frame delimits it) against two
        // ordinary secondary segments; a 16-bit payload length would wrap 66000 to 464.
        let data = stream(66_000);
        let head = Tcp {
            payload: &data[..1000],
            ..SEG
        };
        let mut big = head.frame();
        big.extend_from_slice(&data[1000..]);
        big[16] = 0;
        big[17] = 0;
        let mut h = Harness::new();
        h.primary(big.clone());
        let st = h.secondary(secondary(Tcp {
            payload: &data[..40_000],
            ..SEG
        }));
        assert!(st.released().is_empty());
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(secondary(Tcp {
            seq: 41_000,
            payload: &data[40_000..],
            ..SEG
        }));
        assert_eq!(st.released(), vec![(big, R::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn settings_refuse_unknown_fields() {
        use colo_core::Registry;
        use colo_core::registry::ComparatorsConfig;
        let config = ComparatorsConfig {
            disabled: Vec::new(),
            settings: [(
                "tcp".to_string(),
                ron::from_str("(strict: true)").expect("ron"),
            )]
            .into(),
        };
        let err = Registry::build_from(&crate::BUILT_IN, &config)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("tcp"), "{err}");
    }

    /// Cuts `len` bytes into segments at the given points.
    fn cut(len: usize, points: &[usize]) -> Vec<(usize, usize)> {
        let mut at: Vec<usize> = points.iter().map(|p| p % len).filter(|&p| p > 0).collect();
        at.push(0);
        at.push(len);
        at.sort_unstable();
        at.dedup();
        at.windows(2).map(|w| (w[0], w[1])).collect()
    }

    struct Run {
        /// Release events: (index of the primary segment, reason), in order.
        released: Vec<(usize, ReleaseReason)>,
        mismatches: Vec<colo_core::Mismatch>,
        checkpoints: usize,
    }

    /// Feeds both sides' segments, each side in order, interleaved as `order` says.
    fn run(
        base: u32,
        p_data: &[u8],
        s_data: &[u8],
        p_cuts: &[(usize, usize)],
        s_cuts: &[(usize, usize)],
        order: &[bool],
    ) -> Run {
        let frame = |data: &[u8], (a, b): (usize, usize)| {
            Tcp {
                seq: base.wrapping_add(a as u32),
                payload: &data[a..b],
                ..SEG
            }
            .frame()
        };
        let p_frames: Vec<Vec<u8>> = p_cuts.iter().map(|&c| frame(p_data, c)).collect();
        let s_frames: Vec<Vec<u8>> = s_cuts.iter().map(|&c| frame(s_data, c)).collect();
        let mut h = Harness::new();
        let mut steps: Vec<Step> = Vec::new();
        let (mut pi, mut si) = (0, 0);
        let mut choices = order.iter().copied().cycle();
        while pi < p_frames.len() || si < s_frames.len() {
            let take_p =
                si == s_frames.len() || (pi < p_frames.len() && choices.next().unwrap_or(true));
            if take_p {
                steps.push(h.primary(p_frames[pi].clone()));
                pi += 1;
            } else {
                steps.push(h.secondary(s_frames[si].clone()));
                si += 1;
            }
        }
        let mut out = Run {
            released: Vec::new(),
            mismatches: Vec::new(),
            checkpoints: 0,
        };
        for st in &steps {
            for (f, r) in st.released() {
                let i = p_frames
                    .iter()
                    .position(|p| *p == f)
                    .expect("a primary frame");
                out.released.push((i, r));
            }
            out.mismatches.extend(st.mismatches());
            out.checkpoints += st.checkpoints();
        }
        out
    }

    /// Initial sequence numbers, half of them close enough to 2^32 for the stream to wrap.
    fn near_the_wrap() -> impl proptest::strategy::Strategy<Value = u32> {
        use proptest::strategy::Strategy;
        proptest::prop_oneof![
            proptest::prelude::any::<u32>(),
            (0u32..800).prop_map(|x| x.wrapping_sub(400)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_segmentation_matches(
            base in near_the_wrap(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..400),
            p_points in proptest::collection::vec(0usize..1000, 0..8),
            s_points in proptest::collection::vec(0usize..1000, 0..8),
            order in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..32),
        ) {
            let p_cuts = cut(data.len(), &p_points);
            let s_cuts = cut(data.len(), &s_points);
            let r = run(base, &data, &data, &p_cuts, &s_cuts, &order);
            let expected: Vec<_> = (0..p_cuts.len()).map(|i| (i, ReleaseReason::Matched)).collect();
            proptest::prop_assert_eq!(r.released, expected);
            proptest::prop_assert_eq!(r.checkpoints, 0);
        }

        #[test]
        fn one_differing_byte_is_never_released(
            base in near_the_wrap(),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..400),
            p_points in proptest::collection::vec(0usize..1000, 0..8),
            s_points in proptest::collection::vec(0usize..1000, 0..8),
            order in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..32),
            at in 0usize..1000,
            flip in 1u8..=255,
        ) {
            let d = at % data.len();
            let mut other = data.clone();
            other[d] ^= flip;
            let p_cuts = cut(data.len(), &p_points);
            let s_cuts = cut(data.len(), &s_points);
            let r = run(base, &data, &other, &p_cuts, &s_cuts, &order);
            // Exactly the primary segments wholly before the differing byte go out, in order.
            let before = p_cuts.iter().take_while(|&&(_, b)| b <= d).count();
            let expected: Vec<_> = (0..before).map(|i| (i, ReleaseReason::Matched)).collect();
            proptest::prop_assert_eq!(r.released, expected);
            proptest::prop_assert!(!r.mismatches.is_empty());
            proptest::prop_assert_eq!(r.checkpoints, r.mismatches.len());
            // The first report points at the differing byte inside the primary segment.
            let (start, _) = p_cuts[before];
            let first = r.mismatches[0].difference;
            proptest::prop_assert_eq!(first.offset, SEG.payload_offset() + d - start);
            proptest::prop_assert_eq!(first.field, "tcp payload");
        }

        #[test]
        fn arbitrary_segments_never_panic(
            segs in proptest::collection::vec(
                (proptest::prelude::any::<bool>(), 0u32..300, 0usize..120, proptest::prelude::any::<u8>(),
                 proptest::option::of(4900u32..5100)),
                1..40,
            ),
        ) {
            let mut h = Harness::new();
            for (primary, seq, len, fill, ack) in segs {
                let payload = vec![fill; len];
                let frame = Tcp { seq: 1000 + seq, ack, payload: &payload, ..SEG }.frame();
                if primary {
                    h.primary(frame);
                } else {
                    h.secondary(frame);
                }
            }
            h.checkpoint();
            proptest::prop_assert_eq!(h.held(), [0, 0]);
        }
    }
}
