//! The tracker: the state machine that owns one pipeline's flows and queues.
//!
//! Modelled on `quinn-proto`'s `Connection`. Inputs are `handle_*` calls, each given the
//! current time as a value ([`Tracker::handle_frame`], [`Tracker::handle_timeout`],
//! [`Tracker::handle_checkpoint`], [`Tracker::handle_failover`], [`Tracker::drain`]). Outputs
//! are polled: [`Tracker::poll_event`] until it returns `None` after every input, and
//! [`Tracker::poll_timeout`] for the next time [`Tracker::handle_timeout`] is due. Time must
//! not go backwards between calls (D-TIME-1: the daemon passes a monotonic clock).
//!
//! What it adds to QEMU's behaviour is all about not losing packets: a full queue asks for a
//! checkpoint instead of dropping (D-LOSS-3), a full connection table evicts idle connections
//! instead of wiping everything (D-LOSS-4), only a global byte budget can make it drop, and the
//! counters always add up (D-LOSS-5).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::comparator::{Difference, FlowState, Outcome};
use crate::config::TrackerConfig;
use crate::counters::{ComparatorCounters, Counters};
use crate::event::{CheckpointReason, DropReason, Event, Mismatch, ReleaseReason};
use crate::flow::{FlowKey, Side};
use crate::frame::Frame;
use crate::packet::{Packet, Uncompared};
use crate::registry::Registry;
use crate::time::Timestamp;

/// Where decisions are recorded: the event queue and the counters, updated together.
pub(crate) struct Sink {
    pub(crate) now: Timestamp,
    events: VecDeque<Event>,
    counters: Counters,
    names: Vec<&'static str>,
}

impl Sink {
    pub(crate) fn release(
        &mut self,
        frame: Frame,
        flow: Option<FlowKey>,
        reason: ReleaseReason,
        arrived: Timestamp,
    ) {
        self.counters.released[reason.index()] += 1;
        let held = self.now.saturating_since(arrived);
        self.events.push_back(Event::Release {
            frame,
            reason,
            flow,
            held,
        });
    }

    pub(crate) fn drop_packet(
        &mut self,
        side: Side,
        frame: Frame,
        flow: Option<FlowKey>,
        reason: DropReason,
    ) {
        self.counters.dropped[side.index()][reason.index()] += 1;
        self.events.push_back(Event::Drop {
            side,
            reason,
            flow,
            len: frame.len(),
        });
    }

    pub(crate) fn count_match(&mut self, comparator: usize) {
        if let Some(c) = self.counters.comparators.get_mut(comparator) {
            c.matched += 1;
        }
    }

    pub(crate) fn mismatch(
        &mut self,
        comparator: usize,
        flow: FlowKey,
        primary: &Packet,
        secondary: &Packet,
        difference: Difference,
    ) {
        if let Some(c) = self.counters.comparators.get_mut(comparator) {
            c.mismatched += 1;
        }
        let name = self.names.get(comparator).copied().unwrap_or("?");
        self.checkpoint(CheckpointReason::Mismatch(Box::new(Mismatch {
            flow,
            comparator: name,
            difference,
            primary: primary.frame.clone(),
            secondary: secondary.frame.clone(),
        })));
    }

    fn checkpoint(&mut self, reason: CheckpointReason) {
        self.counters.checkpoints[reason.index()] += 1;
        self.events.push_back(Event::Checkpoint(reason));
    }
}

/// One tracked connection.
struct Flow {
    key: FlowKey,
    comparator: usize,
    state: Box<dyn FlowState>,
    created: u64,
    held: [u32; 2],
    held_bytes: u64,
    /// Bumped whenever the flow becomes empty, to recognise stale idle-list entries.
    idle_stamp: u64,
}

impl Flow {
    fn is_empty(&self) -> bool {
        self.held == [0, 0]
    }
}

/// How a bulk flush treats what it takes out.
#[derive(Clone, Copy)]
enum Flush {
    Checkpoint,
    Shutdown,
    Failover,
}

impl Flush {
    fn release(self) -> ReleaseReason {
        match self {
            Flush::Checkpoint => ReleaseReason::CheckpointFlush,
            Flush::Shutdown => ReleaseReason::ShutdownFlush,
            Flush::Failover => ReleaseReason::Failover,
        }
    }

    fn drop(self) -> DropReason {
        match self {
            Flush::Checkpoint => DropReason::CheckpointFlush,
            Flush::Shutdown => DropReason::ShutdownFlush,
            Flush::Failover => DropReason::Failover,
        }
    }
}

type FlowMap = HashMap<FlowKey, u32, foldhash::fast::RandomState>;

/// The comparison engine of one pipeline.
pub struct Tracker {
    config: TrackerConfig,
    registry: Arc<Registry>,
    sink: Sink,
    index: FlowMap,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    /// Flows that became empty, oldest first: the eviction candidates (entries may be stale).
    idle: VecDeque<(u32, u64)>,
    next_created: u64,
    next_stamp: u64,
    origin: Timestamp,
    last_scan: Timestamp,
    failed_over: bool,
    scratch: Vec<Packet>,
}

impl Tracker {
    /// A tracker with these settings, comparing with `registry`, started at `now`.
    ///
    /// The settings should have passed [`TrackerConfig::validate`]; zero values are clamped
    /// to 1 so that a tracker can never spin.
    pub fn new(config: TrackerConfig, registry: Arc<Registry>, now: Timestamp) -> Self {
        let comparators = registry
            .entries()
            .iter()
            .map(|e| ComparatorCounters {
                name: e.name,
                ..Default::default()
            })
            .collect();
        let names = registry.entries().iter().map(|e| e.name).collect();
        Tracker {
            config: Self::clamp(config),
            registry,
            sink: Sink {
                now,
                events: VecDeque::new(),
                counters: Counters {
                    comparators,
                    ..Default::default()
                },
                names,
            },
            index: FlowMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            idle: VecDeque::new(),
            next_created: 0,
            next_stamp: 0,
            origin: now,
            last_scan: now,
            failed_over: false,
            scratch: Vec::new(),
        }
    }

    fn clamp(mut c: TrackerConfig) -> TrackerConfig {
        c.compare_timeout = c.compare_timeout.max(1);
        c.expired_scan_cycle = c.expired_scan_cycle.max(1);
        c.max_queue_size = c.max_queue_size.max(1);
        c.max_connections = c.max_connections.max(1);
        c
    }

    /// The settings in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Replaces the settings; held packets and flows are kept. Takes effect from the next
    /// input (timeouts at the next scan, as QEMU's `qom-set`).
    pub fn set_config(&mut self, config: TrackerConfig) {
        self.config = Self::clamp(config);
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.sink.counters
    }

    /// The registry this tracker compares with.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Whether failover has happened: the primary is passed straight through.
    pub fn failed_over(&self) -> bool {
        self.failed_over
    }

    /// The next decision, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.sink.events.pop_front()
    }

    /// When [`Tracker::handle_timeout`] should next be called; `None` while nothing is held.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.held_total() == 0 {
            return None;
        }
        let cycle = self.config.expired_scan_cycle.saturating_mul(1000).max(1);
        let since = self
            .last_scan
            .as_micros()
            .saturating_sub(self.origin.as_micros());
        let k = since / cycle + 1;
        Some(Timestamp::from_micros(
            self.origin
                .as_micros()
                .saturating_add(k.saturating_mul(cycle)),
        ))
    }

    fn held_total(&self) -> u64 {
        self.sink.counters.held[0] + self.sink.counters.held[1]
    }

    /// Counts a zero-length frame, skipped by the decoder (D-IN-1).
    pub fn note_empty_frame(&mut self, side: Side) {
        self.sink.counters.empty_frames[side.index()] += 1;
    }

    /// Information about the tracked flows with packets held, in creation order.
    pub fn flows(&self) -> Vec<FlowInfo> {
        let mut v: Vec<(u64, FlowInfo)> = self
            .slots
            .iter()
            .flatten()
            .map(|f| {
                let oldest = Side::BOTH.iter().filter_map(|&s| f.state.oldest(s)).min();
                (
                    f.created,
                    FlowInfo {
                        key: f.key,
                        comparator: self.sink.names.get(f.comparator).copied().unwrap_or("?"),
                        held: f.held,
                        held_bytes: f.held_bytes,
                        oldest,
                    },
                )
            })
            .collect();
        v.sort_by_key(|(c, _)| *c);
        v.into_iter().map(|(_, i)| i).collect()
    }

    /// One frame arrived from `side` at `now`.
    pub fn handle_frame(&mut self, side: Side, frame: Frame, now: Timestamp) {
        self.sink.now = now;
        let c = &mut self.sink.counters;
        c.received[side.index()] += 1;
        c.received_bytes[side.index()] += frame.len() as u64;
        if self.failed_over {
            match side {
                Side::Primary => self.sink.release(frame, None, ReleaseReason::Failover, now),
                Side::Secondary => self
                    .sink
                    .drop_packet(side, frame, None, DropReason::Failover),
            }
            return;
        }
        let packet = match Packet::parse(frame, now) {
            Ok(p) if self.config.passthrough.iter().any(|r| r.matches(&p.meta)) => {
                let key = p.meta.key;
                return self.uncompared(side, p.frame, Some(key), Uncompared::Passthrough);
            }
            Ok(p) => p,
            Err((frame, why)) => return self.uncompared(side, frame, None, why),
        };
        let Some(slot) = self.flow_for(&packet.meta.key) else {
            let key = packet.meta.key;
            return self.uncompared(side, packet.frame, Some(key), Uncompared::NoComparator);
        };
        self.admit(slot, side, packet);
    }

    fn uncompared(&mut self, side: Side, frame: Frame, flow: Option<FlowKey>, why: Uncompared) {
        match side {
            Side::Primary => {
                let now = self.sink.now;
                self.sink
                    .release(frame, flow, ReleaseReason::Uncompared(why), now)
            }
            Side::Secondary => {
                self.sink
                    .drop_packet(side, frame, flow, DropReason::Uncompared(why))
            }
        }
    }

    /// The slot of the flow for `key`, created if needed; `None` when no comparator claims it.
    fn flow_for(&mut self, key: &FlowKey) -> Option<u32> {
        if let Some(&slot) = self.index.get(key) {
            return Some(slot);
        }
        let comparator = self.registry.select(key)?;
        if self.index.len() >= self.config.max_connections as usize && !self.evict_one() {
            let flows = self.index.len();
            self.sink.checkpoint(CheckpointReason::TableFull { flows });
        }
        let state = self.registry.entries()[comparator].comparator.new_flow(key);
        let flow = Flow {
            key: *key,
            comparator,
            state,
            created: self.next_created,
            held: [0, 0],
            held_bytes: 0,
            idle_stamp: 0,
        };
        self.next_created += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(flow);
                s
            }
            None => {
                self.slots.push(Some(flow));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.index.insert(*key, slot);
        let c = &mut self.sink.counters;
        c.flows = self.index.len() as u64;
        c.flows_created += 1;
        if let Some(cc) = c.comparators.get_mut(comparator) {
            cc.flows += 1;
        }
        Some(slot)
    }

    /// Evicts the least recently emptied idle flow; false when every flow holds packets.
    fn evict_one(&mut self) -> bool {
        while let Some((slot, stamp)) = self.idle.pop_front() {
            let victim = match self.slots.get(slot as usize) {
                Some(Some(f)) if f.idle_stamp == stamp && f.is_empty() => f.key,
                _ => continue,
            };
            self.index.remove(&victim);
            self.slots[slot as usize] = None;
            self.free.push(slot);
            self.sink.counters.flows_evicted += 1;
            self.sink.counters.flows = self.index.len() as u64;
            return true;
        }
        false
    }

    fn admit(&mut self, slot: u32, side: Side, packet: Packet) {
        let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let len = packet.len() as u64;
        let counters = &mut self.sink.counters;
        if counters.held_bytes.saturating_add(len) > self.config.max_held_bytes {
            let held_bytes = counters.held_bytes;
            let key = flow.key;
            self.sink
                .drop_packet(side, packet.frame, Some(key), DropReason::OverBudget);
            self.sink
                .checkpoint(CheckpointReason::OverBudget { held_bytes });
        } else {
            let held = flow.held[side.index()] + 1;
            if held > self.config.max_queue_size + 1 {
                let key = flow.key;
                self.sink.checkpoint(CheckpointReason::QueueFull {
                    flow: key,
                    side,
                    held,
                });
            }
            flow.held[side.index()] = held;
            flow.held_bytes += len;
            flow.state.push(side, packet);
        }
        self.compare(slot);
    }

    /// Runs the flow's comparator and brings the totals up to date.
    fn compare(&mut self, slot: u32) {
        let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let before = (flow.held, flow.held_bytes);
        let mut out = Outcome {
            sink: &mut self.sink,
            key: &flow.key,
            comparator: flow.comparator,
            held: &mut flow.held,
            held_bytes: &mut flow.held_bytes,
        };
        flow.state.compare(&mut out);
        let c = &mut self.sink.counters;
        for s in 0..2 {
            c.held[s] = c.held[s] + u64::from(flow.held[s]) - u64::from(before.0[s]);
        }
        c.held_bytes = c.held_bytes + flow.held_bytes - before.1;
        if flow.is_empty() {
            self.next_stamp += 1;
            flow.idle_stamp = self.next_stamp;
            self.idle.push_back((slot, self.next_stamp));
            if self.idle.len() > 2 * self.slots.len() + 64 {
                self.compact_idle();
            }
        }
    }

    /// Drops stale idle-list entries so the list stays proportional to the table.
    fn compact_idle(&mut self) {
        let slots = &self.slots;
        self.idle.retain(|&(slot, stamp)| {
            matches!(slots.get(slot as usize), Some(Some(f)) if f.idle_stamp == stamp && f.is_empty())
        });
    }

    /// Time has passed: runs the old-packet scan when it is due (§7.1). At most one
    /// checkpoint request per scan, for the first expired packet in connection order.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.sink.now = now;
        let Some(due) = self.poll_timeout() else {
            self.last_scan = now;
            return;
        };
        if now < due {
            return;
        }
        self.last_scan = now;
        let timeout = self.config.timeout();
        let mut first: Option<(u64, FlowKey, Side, std::time::Duration)> = None;
        for f in self.slots.iter().flatten() {
            if f.is_empty() || first.as_ref().is_some_and(|(c, ..)| *c < f.created) {
                continue;
            }
            for side in Side::BOTH {
                if let Some(t) = f.state.oldest(side) {
                    let age = now.saturating_since(t);
                    if age > timeout {
                        first = Some((f.created, f.key, side, age));
                        break;
                    }
                }
            }
        }
        if let Some((_, flow, side, age)) = first {
            self.sink
                .checkpoint(CheckpointReason::Timeout { flow, side, age });
        }
    }

    /// A checkpoint happened (`COLO_CHECKPOINT`): release every held primary packet and drop
    /// every held secondary one, connection by connection in creation order, each queue in
    /// its release order (D-ORDER-2). Flows and their protocol state are kept.
    pub fn handle_checkpoint(&mut self, now: Timestamp) {
        self.sink.now = now;
        self.sink.counters.flushes += 1;
        self.flush(Flush::Checkpoint);
    }

    /// Failover: release everything held, then pass the primary straight through and discard
    /// the secondary from now on.
    pub fn handle_failover(&mut self, now: Timestamp) {
        self.sink.now = now;
        self.flush(Flush::Failover);
        self.failed_over = true;
    }

    /// Orderly shutdown (D-LOSS-1): releases every held primary packet and returns how many.
    pub fn drain(&mut self, now: Timestamp) -> u64 {
        self.sink.now = now;
        let before = self.sink.counters.released[ReleaseReason::ShutdownFlush.index()];
        self.flush(Flush::Shutdown);
        self.sink.counters.released[ReleaseReason::ShutdownFlush.index()] - before
    }

    fn flush(&mut self, how: Flush) {
        let mut order: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Some(f) if !f.is_empty() => Some((f.created, u32::try_from(i).unwrap_or(u32::MAX))),
                _ => None,
            })
            .collect();
        order.sort_unstable();
        let mut taken = std::mem::take(&mut self.scratch);
        for (_, slot) in order {
            let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            for side in Side::BOTH {
                flow.state.take_all(side, &mut taken);
                for p in taken.drain(..) {
                    let len = p.len() as u64;
                    flow.held[side.index()] = flow.held[side.index()].saturating_sub(1);
                    flow.held_bytes = flow.held_bytes.saturating_sub(len);
                    let c = &mut self.sink.counters;
                    c.held[side.index()] = c.held[side.index()].saturating_sub(1);
                    c.held_bytes = c.held_bytes.saturating_sub(len);
                    let key = Some(p.meta.key);
                    match side {
                        Side::Primary => self.sink.release(p.frame, key, how.release(), p.arrived),
                        Side::Secondary => self.sink.drop_packet(side, p.frame, key, how.drop()),
                    }
                }
            }
            debug_assert!(
                flow.is_empty(),
                "flow {} kept packets after a flush",
                flow.key
            );
            self.next_stamp += 1;
            flow.idle_stamp = self.next_stamp;
            self.idle.push_back((slot, self.next_stamp));
        }
        self.scratch = taken;
    }
}

/// A snapshot of one tracked flow, for the control interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// The flow.
    pub key: FlowKey,
    /// The comparator handling it.
    pub comparator: &'static str,
    /// Packets held per side.
    pub held: [u32; 2],
    /// Bytes held.
    pub held_bytes: u64,
    /// Arrival time of its oldest held packet.
    pub oldest: Option<Timestamp>,
}
