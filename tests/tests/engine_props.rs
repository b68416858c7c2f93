//! The "nothing lost, nothing wrong released" properties of the tracker, over random
//! interleavings of random primary and secondary streams.
//!
//! Each case builds a few TCP flows (one byte stream per flow, cut into segments differently
//! on each side, optionally with bytes changed on the secondary and segments swapped) and UDP
//! flows (datagrams, some changed on the secondary), then feeds both sides in a random
//! interleaving mixed with random checkpoints and passing time. After every step: the counter
//! identity holds by the tracker's account and by an outside [`Ledger`]; no primary frame comes
//! out twice (every primary frame carries a unique IP ID); and no primary frame released as
//! *matched* carries a byte that differs from what the secondary sent at that stream position
//! (or, for UDP, a payload the secondary did not send). At the end a checkpoint releases
//! everything still held. For clean cases (identical in-order streams, no flushes, default
//! limits) every primary frame must also have been released before that final flush, so the
//! safety properties cannot pass by releasing nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use colo_core::{
    CheckpointReason, Event, Frame, Registry, ReleaseReason, Side, Timestamp, Tracker,
    TrackerConfig,
};
use colo_protocols as _;
use colo_tests::frames::{Net, Tcp, Udp, tcp, udp};
use colo_tests::ledger::Ledger;
use etherparse::{LaxSlicedPacket, TransportSlice};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// One TCP flow: a byte stream and how each side cuts and alters it.
#[derive(Clone, Debug)]
struct TcpSpec {
    isn: u32,
    data: Vec<u8>,
    /// Segment sizes, used in turn, for the primary and the secondary.
    cuts: [Vec<usize>; 2],
    /// Stream positions the secondary changes.
    diffs: Vec<usize>,
    /// Segments swapped with their successor, per side.
    swaps: [Vec<usize>; 2],
    /// Segments sent again at the end, per side.
    retrans: [Vec<usize>; 2],
    /// Both sides start with a pure ACK.
    pure_acks: bool,
}

/// One UDP flow: datagrams as (filler length, changed on the secondary).
#[derive(Clone, Debug)]
struct UdpSpec {
    datagrams: Vec<(usize, bool)>,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Primary,
    Secondary,
    Advance(u64),
    Checkpoint,
}

#[derive(Clone, Debug)]
struct Case {
    tcp: Vec<TcpSpec>,
    udp: Vec<UdpSpec>,
    /// Flow choices for each side's interleaving.
    order: [Vec<u8>; 2],
    ops: Vec<Op>,
    /// Small queue, table and byte limits.
    tight: bool,
}

impl Case {
    /// The same streams and interleaving with every alteration and flush taken out.
    fn cleaned(mut self) -> Case {
        for t in &mut self.tcp {
            t.diffs.clear();
            t.swaps = [Vec::new(), Vec::new()];
            t.retrans = [Vec::new(), Vec::new()];
        }
        for u in &mut self.udp {
            for d in &mut u.datagrams {
                d.1 = false;
            }
        }
        self.ops.retain(|o| !matches!(o, Op::Checkpoint));
        self.tight = false;
        self
    }

    /// Identical, in-order streams, no flushes, default limits: everything must match.
    fn clean(&self) -> bool {
        !self.tight
            && self.tcp.iter().all(|t| {
                t.diffs.is_empty()
                    && t.swaps.iter().all(Vec::is_empty)
                    && t.retrans.iter().all(Vec::is_empty)
            })
            && self.udp.iter().all(|u| u.datagrams.iter().all(|d| !d.1))
            && self.ops.iter().all(|o| !matches!(o, Op::Checkpoint))
    }
}

/// Mostly nothing, sometimes one or two indices: alterations stay rare enough that many cases
/// are clean.
fn rarely() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        4 => Just(Vec::new()),
        1 => prop::collection::vec(0usize..400, 1..3),
    ]
}

fn tcp_spec() -> impl Strategy<Value = TcpSpec> {
    let cuts = || prop::collection::vec(1usize..120, 1..6);
    (
        prop_oneof![any::<u32>(), 0xFFFF_FE00u32..=u32::MAX],
        prop::collection::vec(any::<u8>(), 1..400),
        [cuts(), cuts()],
        rarely(),
        [rarely(), rarely()],
        [rarely(), rarely()],
        any::<bool>(),
    )
        .prop_map(
            |(isn, data, cuts, diffs, swaps, retrans, pure_acks)| TcpSpec {
                isn,
                diffs: diffs.into_iter().map(|d| d % data.len()).collect(),
                data,
                cuts,
                swaps,
                retrans,
                pure_acks,
            },
        )
}

fn udp_spec() -> impl Strategy<Value = UdpSpec> {
    prop::collection::vec((0usize..40, prop::bool::weighted(0.05)), 1..6)
        .prop_map(|datagrams| UdpSpec { datagrams })
}

/// Frames and passing time, with checkpoints in some cases only.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let ops = |checkpoints: u32| {
        prop::collection::vec(
            prop_oneof![
                8 => Just(Op::Primary),
                8 => Just(Op::Secondary),
                2 => (0u64..2500).prop_map(Op::Advance),
                checkpoints => Just(Op::Checkpoint),
            ],
            0..80,
        )
    };
    prop_oneof![ops(0), ops(1)]
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![3 => any_case(), 1 => any_case().prop_map(Case::cleaned)]
}

fn any_case() -> impl Strategy<Value = Case> {
    let order = || prop::collection::vec(any::<u8>(), 0..60);
    (
        prop::collection::vec(tcp_spec(), 1..4),
        prop::collection::vec(udp_spec(), 0..3),
        [order(), order()],
        ops(),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(tcp, udp, order, ops, tight)| Case {
            tcp,
            udp,
            order,
            ops,
            tight,
        })
}

const TCP_PORT_BASE: u16 = 6000;
const UDP_PORT_BASE: u16 = 7000;
const ACK: u32 = 5000;

/// What a side sent on a TCP flow, by stream position.
struct Streams {
    isn: u32,
    sent: [Vec<u8>; 2],
}

/// The frames of one side, per flow, in that side's sending order.
type SideFrames = Vec<VecDeque<Frame>>;

/// A case turned into frames, with what the checks need to know about them.
struct Built {
    /// Per side, per flow.
    frames: [SideFrames; 2],
    /// TCP streams by flow (source port).
    streams: HashMap<u16, Streams>,
    /// The secondary's UDP payloads by flow (source port).
    udp_secondary: HashMap<u16, Vec<Vec<u8>>>,
}

/// Builds both sides' frames. Every frame gets a fresh IP ID, so no two frames are equal.
fn build(case: &Case) -> Built {
    let mut ip_id: u16 = 0;
    let mut next_net = || {
        ip_id = ip_id.wrapping_add(1);
        Net::default().with_id(ip_id)
    };
    let mut frames: [SideFrames; 2] = [Vec::new(), Vec::new()];
    let mut streams = HashMap::new();
    for (f, spec) in case.tcp.iter().enumerate() {
        let port = TCP_PORT_BASE + u16::try_from(f).expect("few flows");
        let mut secondary = spec.data.clone();
        for &d in &spec.diffs {
            secondary[d] ^= 0x5a;
        }
        let sent = [spec.data.clone(), secondary];
        for side in Side::BOTH {
            let i = side.index();
            let mut segs = Vec::new();
            let segment = |seq: u32, payload: Vec<u8>| Tcp {
                src_port: port,
                ..Tcp::data(seq, ACK, payload)
            };
            if spec.pure_acks {
                segs.push(segment(spec.isn, Vec::new()));
            }
            let mut at = 0;
            for &cut in spec.cuts[i].iter().cycle() {
                if at >= sent[i].len() {
                    break;
                }
                let end = (at + cut).min(sent[i].len());
                let seq = spec
                    .isn
                    .wrapping_add(u32::try_from(at).expect("short stream"));
                segs.push(segment(seq, sent[i][at..end].to_vec()));
                at = end;
            }
            for &sw in &spec.swaps[i] {
                if segs.len() >= 2 {
                    let k = sw % (segs.len() - 1);
                    segs.swap(k, k + 1);
                }
            }
            for &again in &spec.retrans[i] {
                let copy = segs[again % segs.len()].clone();
                segs.push(copy);
            }
            frames[i].push(segs.iter().map(|s| tcp(&next_net(), s)).collect());
        }
        streams.insert(
            port,
            Streams {
                isn: spec.isn,
                sent,
            },
        );
    }
    let mut payloads = HashMap::new();
    for (f, spec) in case.udp.iter().enumerate() {
        let port = UDP_PORT_BASE + u16::try_from(f).expect("few flows");
        let mut sent = [VecDeque::new(), VecDeque::new()];
        let mut secondary_payloads = Vec::new();
        for (n, &(filler, changed)) in spec.datagrams.iter().enumerate() {
            let payload = format!("f{f}-d{n}-{}", "x".repeat(filler)).into_bytes();
            let mut other = payload.clone();
            if changed {
                let last = other.len() - 1;
                other[last] ^= 0x80;
            }
            let dgram = |payload: Vec<u8>| Udp {
                src_port: port,
                ..Udp::payload(payload)
            };
            sent[0].push_back(udp(&next_net(), &dgram(payload)));
            sent[1].push_back(udp(&next_net(), &dgram(other.clone())));
            secondary_payloads.push(other);
        }
        let [p, s] = sent;
        frames[0].push(p);
        frames[1].push(s);
        payloads.insert(port, secondary_payloads);
    }
    Built {
        frames,
        streams,
        udp_secondary: payloads,
    }
}

/// Each side's frames as one sequence: flows interleaved as `order` says, each flow's own
/// order kept.
fn interleave(mut flows: SideFrames, order: &[u8]) -> VecDeque<Frame> {
    let mut out = VecDeque::new();
    let mut choices = order.iter().copied();
    loop {
        let live: Vec<usize> = (0..flows.len()).filter(|&i| !flows[i].is_empty()).collect();
        if live.is_empty() {
            return out;
        }
        let pick = choices.next().map_or(0, |c| usize::from(c) % live.len());
        if let Some(f) = flows[live[pick]].pop_front() {
            out.push_back(f);
        }
    }
}

/// A tracker under test, its clock, and what the properties need to know.
struct Run {
    tracker: Tracker,
    now: Timestamp,
    ledger: Ledger,
    streams: HashMap<u16, Streams>,
    udp_secondary: HashMap<u16, Vec<Vec<u8>>>,
    mismatches: u64,
}

impl Run {
    fn feed(&mut self, side: Side, frame: Frame) -> Result<(), TestCaseError> {
        self.ledger.fed(side, &frame);
        self.tracker.handle_frame(side, frame, self.now);
        self.settle("frame")
    }

    fn advance(&mut self, ms: u64) -> Result<(), TestCaseError> {
        let target = Timestamp::from_micros(self.now.as_micros() + ms * 1000);
        while let Some(due) = self.tracker.poll_timeout() {
            if due > target {
                break;
            }
            self.now = due.max(self.now);
            self.tracker.handle_timeout(self.now);
            self.settle("timeout")?;
            let next = self.tracker.poll_timeout();
            prop_assert!(next.is_none_or(|n| n > self.now), "timeout not re-armed");
        }
        self.now = target;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), TestCaseError> {
        self.tracker.handle_checkpoint(self.now);
        self.settle("checkpoint")
    }

    /// Polls every event and checks the properties.
    fn settle(&mut self, what: &str) -> Result<(), TestCaseError> {
        while let Some(event) = self.tracker.poll_event() {
            self.ledger
                .observe(&event)
                .map_err(|e| TestCaseError::fail(format!("after {what}: {e}")))?;
            match &event {
                Event::Release {
                    frame,
                    reason: ReleaseReason::Matched,
                    ..
                } => self.check_matched(frame)?,
                Event::Checkpoint(CheckpointReason::Mismatch(_)) => self.mismatches += 1,
                _ => {}
            }
        }
        self.ledger
            .check(&self.tracker)
            .map_err(|e| TestCaseError::fail(format!("after {what}: {e}")))
    }

    /// A primary frame released as matched carries only what the secondary sent.
    fn check_matched(&self, frame: &Frame) -> Result<(), TestCaseError> {
        let parsed = LaxSlicedPacket::from_ethernet(frame.ethernet())
            .map_err(|e| TestCaseError::fail(format!("released frame does not parse: {e}")))?;
        match parsed.transport {
            Some(TransportSlice::Tcp(t)) => {
                let Some(stream) = self.streams.get(&t.source_port()) else {
                    return Err(TestCaseError::fail("matched TCP frame of an unknown flow"));
                };
                let start = t.sequence_number().wrapping_sub(stream.isn) as usize;
                for (i, byte) in t.payload().iter().enumerate() {
                    let pos = start + i;
                    prop_assert_eq!(
                        Some(byte),
                        stream.sent[1].get(pos),
                        "matched TCP byte at stream position {} differs from the secondary's",
                        pos
                    );
                }
            }
            Some(TransportSlice::Udp(u)) => {
                let sent = self.udp_secondary.get(&u.source_port());
                prop_assert!(
                    sent.is_some_and(|s| s.iter().any(|p| p == u.payload())),
                    "matched UDP payload the secondary never sent"
                );
            }
            _ => return Err(TestCaseError::fail("matched frame is neither TCP nor UDP")),
        }
        Ok(())
    }
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let registry = Arc::new(Registry::build(&Default::default()).expect("built-in comparators"));
    let config = if case.tight {
        TrackerConfig {
            max_queue_size: 2,
            max_held_bytes: 1200,
            max_connections: 2,
            ..TrackerConfig::default()
        }
    } else {
        TrackerConfig::default()
    };
    let Built {
        frames: [p_flows, s_flows],
        streams,
        udp_secondary,
    } = build(case);
    let mut queues = [
        interleave(p_flows, &case.order[0]),
        interleave(s_flows, &case.order[1]),
    ];
    let mut r = Run {
        tracker: Tracker::new(config, registry, Timestamp::ZERO),
        now: Timestamp::ZERO,
        ledger: Ledger::default(),
        streams,
        udp_secondary,
        mismatches: 0,
    };
    for op in &case.ops {
        match *op {
            Op::Primary | Op::Secondary => {
                let side = if matches!(op, Op::Primary) {
                    Side::Primary
                } else {
                    Side::Secondary
                };
                if let Some(f) = queues[side.index()].pop_front() {
                    r.feed(side, f)?;
                }
            }
            Op::Advance(ms) => r.advance(ms)?,
            Op::Checkpoint => r.checkpoint()?,
        }
    }
    // Whatever the ops left, fed alternately.
    while !queues[0].is_empty() || !queues[1].is_empty() {
        for side in Side::BOTH {
            if let Some(f) = queues[side.index()].pop_front() {
                r.feed(side, f)?;
            }
        }
    }
    if case.clean() {
        prop_assert_eq!(r.mismatches, 0, "identical in-order streams mismatched");
        prop_assert_eq!(
            r.ledger.held(Side::Primary),
            0,
            "identical streams left primary packets held"
        );
    }
    r.checkpoint()?;
    let fed = r.ledger.fed_count(Side::Primary);
    prop_assert_eq!(r.tracker.counters().held, [0, 0]);
    prop_assert_eq!(
        r.ledger.released() + r.ledger.dropped(Side::Primary),
        fed,
        "received = released + dropped after the final checkpoint"
    );
    if !case.tight {
        prop_assert_eq!(
            r.ledger.dropped(Side::Primary),
            0,
            "no primary drop within limits"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_lost_nothing_wrong_released(case in case()) {
        run(&case)?;
    }
}
