//! Floods at the engine level, where a million inputs take seconds rather than minutes in a
//! debug build: a million distinct flows, and one flow with 100 000 packets and no secondary.
//! The engine must keep memory within its budget (`max_held_bytes`) plus a stated constant,
//! drop only past the budget (counted, reason `over-budget`, each drop with its checkpoint
//! request), never drop a held packet to make room (idle connections are evicted instead,
//! D-LOSS-4), and keep the counters adding up.
//!
//! The constant: the connection table up to `max_connections` (a tracked connection costs
//! under [`FLOW_OVERHEAD`] bytes) plus [`SLACK`] for allocator rounding and the test's own
//! buffers. Each test runs in its own process (nextest), so the process's peak resident set
//! size, reset right before the flood, is the engine's.

use std::sync::Arc;

use colo_core::tracker::FLOW_OVERHEAD;
use colo_core::{
    CheckpointReason, DropReason, Event, Frame, Registry, ReleaseReason, Side, Timestamp, Tracker,
    TrackerConfig,
};
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::memory::{MIB, peak, reset_peak, rss};

/// Allocator rounding, the event queue and the test's own state.
const SLACK: u64 = 16 * MIB;

/// What came out of the engine, counted by kind.
#[derive(Debug, Default)]
struct Tally {
    released: u64,
    dropped_primary_over_budget: u64,
    dropped_primary_other: u64,
    dropped_secondary: u64,
    dropped_secondary_over_budget: u64,
    over_budget_requests: u64,
    table_full_requests: u64,
    queue_full_requests: u64,
    other_requests: u64,
}

impl Tally {
    fn take(&mut self, t: &mut Tracker) {
        while let Some(e) = t.poll_event() {
            match e {
                Event::Release { .. } => self.released += 1,
                Event::Drop {
                    side: Side::Primary,
                    reason,
                    ..
                } => {
                    if reason == DropReason::OverBudget {
                        self.dropped_primary_over_budget += 1;
                    } else {
                        self.dropped_primary_other += 1;
                    }
                }
                Event::Drop { reason, .. } => {
                    self.dropped_secondary += 1;
                    if reason == DropReason::OverBudget {
                        self.dropped_secondary_over_budget += 1;
                    }
                }
                Event::Checkpoint(CheckpointReason::OverBudget { .. }) => {
                    self.over_budget_requests += 1
                }
                Event::Checkpoint(CheckpointReason::TableFull { .. }) => {
                    self.table_full_requests += 1
                }
                Event::Checkpoint(CheckpointReason::QueueFull { .. }) => {
                    self.queue_full_requests += 1
                }
                Event::Checkpoint(_) | Event::WouldCheckpoint(_) => self.other_requests += 1,
            }
        }
    }
}

fn tracker(config: TrackerConfig) -> Tracker {
    let registry = Registry::build(&Default::default()).expect("the built-in comparators");
    Tracker::new(config, Arc::new(registry), Timestamp::ZERO)
}

/// A small UDP frame (47 bytes, the worst case for overhead per byte) whose source address
/// and port say which flow it is: `flow` < 2^24.
struct Flows {
    template: Vec<u8>,
}

impl Flows {
    fn new() -> Self {
        Flows {
            template: udp(&Net::default(), &Udp::payload(*b"flood")).data.to_vec(),
        }
    }

    fn frame(&self, flow: u32) -> Frame {
        let mut d = self.template.clone();
        // IPv4 source address 10.x.y.z; the checksum is not checked by the classifier.
        d[27..30].copy_from_slice(&flow.to_be_bytes()[1..]);
        Frame::new(d)
    }
}

/// A million distinct flows at 1 µs intervals: every fourth one is answered by the secondary
/// (matched, so its connection goes idle and can be evicted), the rest stay held until the
/// budget is reached and are dropped from there on. The 65 536-connection table is full after
/// the first 65 536 flows: idle connections are evicted, busy ones never.
#[test]
fn a_million_flows() {
    const FLOWS: u32 = 1_000_000;
    const BUDGET: u64 = 32 * MIB;
    let config = TrackerConfig {
        max_held_bytes: BUDGET,
        ..TrackerConfig::default()
    };
    let table = u64::from(config.max_connections) * FLOW_OVERHEAD;
    let mut t = tracker(config);
    let flows = Flows::new();
    let mut tally = Tally::default();
    reset_peak();
    let before = rss();
    for i in 0..FLOWS {
        let now = Timestamp::from_micros(u64::from(i));
        let f = flows.frame(i);
        if i % 4 == 0 {
            t.handle_frame(Side::Primary, f.clone(), now);
            t.handle_frame(Side::Secondary, f, now);
        } else {
            t.handle_frame(Side::Primary, f, now);
        }
        tally.take(&mut t);
    }
    let grew = peak().saturating_sub(before);
    let c = t.counters().clone();
    c.check().expect("the counters add up");
    eprintln!(
        "a million flows: peak RSS grew {} MiB (budget {} MiB, table {} MiB, slack {} MiB); \
         held {:?} ({} bytes), flows {}, evicted {}, {tally:?}",
        grew / MIB,
        BUDGET / MIB,
        table / MIB,
        SLACK / MIB,
        c.held,
        c.held_bytes,
        c.flows,
        c.flows_evicted
    );
    assert!(
        grew <= BUDGET + table + SLACK,
        "peak RSS grew {grew} bytes, more than the budget {BUDGET} + table {table} + slack {SLACK}"
    );
    assert_eq!(tally.dropped_primary_other, 0, "{tally:?}");
    assert!(
        tally.dropped_primary_over_budget > 0,
        "the budget was never reached"
    );
    assert_eq!(
        tally.over_budget_requests,
        tally.dropped_primary_over_budget + tally.dropped_secondary_over_budget,
        "every over-budget drop asks for a checkpoint"
    );
    assert_eq!(
        c.dropped[Side::Primary.index()][DropReason::OverBudget.index()],
        tally.dropped_primary_over_budget
    );
    assert!(c.flows_evicted > 0, "no idle connection was evicted");
    assert!(c.held_bytes <= BUDGET);
    assert_eq!(tally.other_requests, 0, "{tally:?}");
    // Every primary packet is released or dropped once flushed.
    t.handle_checkpoint(Timestamp::from_micros(u64::from(FLOWS)));
    tally.take(&mut t);
    let c = t.counters();
    assert_eq!(c.held, [0, 0]);
    assert_eq!(
        tally.released + tally.dropped_primary_over_budget,
        u64::from(FLOWS)
    );
    c.check().expect("the counters add up");
}

/// One flow, 100 000 packets from the primary, no secondary: every packet past the queue
/// size asks for a checkpoint (`queue-full`) and is still held while the budget allows; past
/// the budget packets are dropped, counted and each asks for a checkpoint (`over-budget`).
/// A checkpoint then releases what was held, oldest first.
#[test]
fn one_flow_with_100k_packets_and_no_secondary() {
    const PACKETS: u32 = 100_000;
    const BUDGET: u64 = 16 * MIB;
    let config = TrackerConfig {
        max_held_bytes: BUDGET,
        ..TrackerConfig::default()
    };
    let queue = config.max_queue_size;
    let mut t = tracker(config);
    let net = Net::default();
    let mut tally = Tally::default();
    reset_peak();
    let before = rss();
    for i in 0..PACKETS {
        let f = udp(
            &net.with_id(i as u16),
            &Udp::payload(format!("{i:08}").repeat(8)),
        );
        t.handle_frame(Side::Primary, f, Timestamp::from_micros(u64::from(i)));
        tally.take(&mut t);
    }
    let grew = peak().saturating_sub(before);
    let c = t.counters().clone();
    c.check().expect("the counters add up");
    eprintln!(
        "one flow, {PACKETS} packets: peak RSS grew {} MiB (budget {} MiB); held {:?} ({} bytes), {tally:?}",
        grew / MIB,
        BUDGET / MIB,
        c.held,
        c.held_bytes
    );
    assert!(grew <= BUDGET + SLACK, "peak RSS grew {grew} bytes");
    let held = c.held[Side::Primary.index()];
    assert!(
        held > u64::from(queue) + 1,
        "held only {held}: the queue size dropped packets"
    );
    assert_eq!(
        tally.queue_full_requests,
        held - u64::from(queue) - 1,
        "every packet held past the queue size asks for a checkpoint"
    );
    assert_eq!(tally.dropped_primary_other, 0);
    assert_eq!(held + tally.dropped_primary_over_budget, u64::from(PACKETS));
    assert_eq!(
        tally.over_budget_requests,
        tally.dropped_primary_over_budget
    );
    assert_eq!(tally.table_full_requests + tally.other_requests, 0);
    // The flush releases the held packets in arrival order: the first `held` ones sent.
    t.handle_checkpoint(Timestamp::from_micros(u64::from(PACKETS)));
    let mut order = Vec::new();
    while let Some(e) = t.poll_event() {
        if let Event::Release { frame, reason, .. } = e {
            assert_eq!(reason, ReleaseReason::CheckpointFlush);
            order.push(colo_tests::frames::ipv4_id(&frame).expect("IPv4"));
        }
    }
    let want: Vec<u16> = (0..held).map(|i| i as u16).collect();
    assert!(order == want, "the flush is not in arrival order");
    t.counters().check().expect("the counters add up");
}
