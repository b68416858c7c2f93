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

use std::collections::VecDeque;
use std::sync::Arc;

use crate::compact::{self, Compactor};
use crate::comparator::{Difference, FlowState, Outcome};
use crate::config::{ConfigError, TrackerConfig};
use crate::counters::{ComparatorCounters, Counters};
use crate::event::{CheckpointReason, DropReason, Event, Mismatch, ReleaseReason};
use crate::flow::{FlowKey, Side};
use crate::flow_index::FlowIndex;
use crate::frame::Frame;
use crate::packet::{Classified, Packet, Uncompared, classify};
use crate::registry::Registry;
use crate::time::Timestamp;

/// Where decisions are recorded: the event queue and the counters, updated together.
///
/// Observe mode is decided here too, at the one place each decision passes: a held primary
/// packet's release becomes a would-be release (its frame went out on arrival) and a
/// checkpoint request a would-be one, followed by a flush as if it had been answered.
pub(crate) struct Sink {
    pub(crate) now: Timestamp,
    events: VecDeque<Event>,
    counters: Counters,
    names: Vec<&'static str>,
    observe: bool,
    /// Observe mode: a would-be checkpoint was requested; flush before the input returns.
    flush_due: bool,
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
        // In observe mode the held-time histogram records the would-be hold instead.
        if reason != ReleaseReason::Observed {
            self.counters.held_time.record(held);
        }
        self.events.push_back(Event::Release {
            frame,
            reason,
            flow,
            held,
        });
    }

    /// A held primary packet leaves its queue: released, or in observe mode (where it went out
    /// on arrival) counted as what protection would have done.
    pub(crate) fn release_held(
        &mut self,
        frame: Frame,
        flow: Option<FlowKey>,
        reason: ReleaseReason,
        arrived: Timestamp,
    ) {
        if self.observe {
            self.counters.would_release[reason.index()] += 1;
            let held = self.now.saturating_since(arrived);
            self.counters.held_time.record(held);
        } else {
            self.release(frame, flow, reason, arrived);
        }
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
        if self.observe {
            self.counters.would_checkpoints[reason.index()] += 1;
            self.events.push_back(Event::WouldCheckpoint(reason));
            self.flush_due = true;
        } else {
            self.counters.checkpoints[reason.index()] += 1;
            self.events.push_back(Event::Checkpoint(reason));
        }
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
    /// Packets that arrived before this were compacted when still held.
    compacted_until: Timestamp,
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

/// Memory a held packet takes besides its DATA (its queue entry and buffer bookkeeping),
/// charged to the budget; measured at under 230 bytes for TCP and UDP queues.
pub const PACKET_OVERHEAD: u64 = 256;

/// Memory a connection's entry and comparator state take, charged to the budget for every
/// connection beyond `max_connections`; measured at under 800 bytes (TCP).
pub const FLOW_OVERHEAD: u64 = 1024;

/// The comparison engine of one pipeline.
pub struct Tracker {
    config: TrackerConfig,
    registry: Arc<Registry>,
    sink: Sink,
    index: FlowIndex,
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
    /// [`Tracker::handle_frames`]' group of classified frames (kept for its capacity).
    ahead: Vec<(Frame, Classified, Option<u64>)>,
    compactor: Compactor,
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
        let observe = config.observe;
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
                observe,
                flush_due: false,
            },
            index: FlowIndex::default(),
            slots: Vec::new(),
            free: Vec::new(),
            idle: VecDeque::new(),
            next_created: 0,
            next_stamp: 0,
            origin: now,
            last_scan: now,
            failed_over: false,
            scratch: Vec::new(),
            ahead: Vec::new(),
            compactor: Compactor::new(now),
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
    /// input (timeouts at the next scan, as QEMU's `qom-set`). `observe` cannot change: the
    /// copies held in observe mode were already released, and protection would release them
    /// again.
    pub fn set_config(&mut self, config: TrackerConfig) -> Result<(), ConfigError> {
        if config.observe != self.config.observe {
            return Err(ConfigError {
                field: "observe",
                problem: "cannot change while running (held copies were already released); restart to switch".into(),
            });
        }
        self.config = Self::clamp(config);
        Ok(())
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
        if self.sink.counters.held_total() == 0 {
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
        let classified = classify(&frame);
        self.frame(side, frame, classified, None, now);
        self.answer_would_be_checkpoint();
        self.compact_held(now, compact::STEP);
    }

    /// Frames that arrived together from `side` at `now`, in order: the same as
    /// [`Tracker::handle_frame`] for each of them, faster. Frames are classified a group at a
    /// time and their flows' places in the flow index read together before the group is
    /// handled, so that with many flows the cache misses of those reads overlap instead of
    /// stalling each frame in turn.
    pub fn handle_frames(
        &mut self,
        side: Side,
        frames: impl IntoIterator<Item = Frame>,
        now: Timestamp,
    ) {
        const GROUP: usize = 8;
        let mut frames = frames.into_iter();
        let mut group = std::mem::take(&mut self.ahead);
        loop {
            let index = &self.index;
            group.extend(frames.by_ref().take(GROUP).map(|f| {
                let classified = classify(&f);
                let hash = match &classified {
                    Classified::Comparable(meta) => Some(index.hash(&meta.key)),
                    Classified::Uncompared(_) => None,
                };
                (f, classified, hash)
            }));
            if group.is_empty() {
                break;
            }
            for &(_, _, hash) in &group {
                if let Some(hash) = hash {
                    self.index.touch(hash);
                }
            }
            for (frame, classified, hash) in group.drain(..) {
                self.frame(side, frame, classified, hash, now);
                self.answer_would_be_checkpoint();
            }
        }
        self.ahead = group;
        self.compact_held(now, compact::STEP);
    }

    /// Copies packets held for longer than [`compact::COMPACT_AFTER`] out of the read buffers
    /// they share, looking at up to `step` connections of the pass under way or due. Passes
    /// advance as frames arrive (only arriving frames bring in new read buffers) and finish
    /// at the timeout scan.
    fn compact_held(&mut self, now: Timestamp, step: usize) {
        let counters = &self.sink.counters;
        let held = || counters.held_total() > 0;
        let Some((range, until)) = self.compactor.next(now, self.slots.len(), step, held) else {
            return;
        };
        let slots = self.slots.get_mut(range).unwrap_or_default();
        for f in slots.iter_mut().flatten() {
            if f.is_empty() || f.compacted_until >= until {
                continue;
            }
            let from = std::mem::replace(&mut f.compacted_until, until);
            let state = f.state.as_mut();
            if Side::BOTH
                .iter()
                .any(|&side| state.oldest(side).is_some_and(|t| t < until))
            {
                self.sink.counters.compacted += compact::compact(state, from, until);
            }
        }
    }

    /// Observe mode: flushes after a would-be checkpoint, as an answering controller would,
    /// so that copies do not pile up behind a mismatch.
    fn answer_would_be_checkpoint(&mut self) {
        if std::mem::take(&mut self.sink.flush_due) {
            self.flush(Flush::Checkpoint);
        }
    }

    /// One frame, classified; `hash` is its flow key's hash in the index when already known.
    fn frame(
        &mut self,
        side: Side,
        frame: Frame,
        classified: Classified,
        hash: Option<u64>,
        now: Timestamp,
    ) {
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
        // The packet is built only where it is queued: moving it through every step would copy
        // it each time.
        let meta = match classified {
            Classified::Comparable(m) => m,
            Classified::Uncompared(why) => return self.uncompared(side, frame, None, why),
        };
        if self.config.passthrough.iter().any(|r| r.matches(&meta)) {
            return self.uncompared(side, frame, Some(meta.key), Uncompared::Passthrough);
        }
        let hash = hash.unwrap_or_else(|| self.index.hash(&meta.key));
        let Some(slot) = self.flow_for(&meta.key, hash) else {
            return self.uncompared(side, frame, Some(meta.key), Uncompared::NoComparator);
        };
        self.admit(
            slot,
            side,
            Packet {
                frame,
                meta,
                arrived: now,
            },
        );
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

    /// The slot of the flow for `key` (whose index hash is `hash`), created if needed; `None`
    /// when no comparator claims it.
    fn flow_for(&mut self, key: &FlowKey, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        if let Some(slot) = self.index.get(key, hash, |s| {
            slots.get(s as usize)?.as_ref().map(|f| &f.key)
        }) {
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
            compacted_until: Timestamp::ZERO,
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
        let slots = &self.slots;
        self.index.insert(hash, slot, |s| {
            slots.get(s as usize)?.as_ref().map(|f| &f.key)
        });
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
            let slots = &self.slots;
            self.index.remove(&victim, slot, |s| {
                slots.get(s as usize)?.as_ref().map(|f| &f.key)
            });
            self.slots[slot as usize] = None;
            self.free.push(slot);
            self.sink.counters.flows_evicted += 1;
            self.sink.counters.flows = self.index.len() as u64;
            return true;
        }
        false
    }

    /// Whether holding one more packet of `len` bytes would exceed the memory budget
    /// (D-LOSS-3). The budget bounds memory, not just DATA: every held packet is charged
    /// [`PACKET_OVERHEAD`] on top of its DATA, and every connection beyond `max_connections`
    /// (there are such only while every connection holds packets) [`FLOW_OVERHEAD`]. The
    /// connections up to `max_connections` are the fixed cost of the table.
    fn over_budget(&self, len: u64) -> bool {
        let c = &self.sink.counters;
        let packets = c.held_total() + 1;
        let extra_flows = c
            .flows
            .saturating_sub(u64::from(self.config.max_connections));
        let charged = c
            .held_bytes
            .saturating_add(len)
            .saturating_add(packets.saturating_mul(PACKET_OVERHEAD))
            .saturating_add(extra_flows.saturating_mul(FLOW_OVERHEAD));
        charged > self.config.max_held_bytes
    }

    fn admit(&mut self, slot: u32, side: Side, packet: Packet) {
        let len = packet.len() as u64;
        let over_budget = self.over_budget(len);
        let Some(Some(flow)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let held_bytes = self.sink.counters.held_bytes;
        let observed = self.config.observe && side == Side::Primary;
        if over_budget {
            let key = Some(flow.key);
            if observed {
                let why = ReleaseReason::Uncompared(Uncompared::OverBudget);
                self.sink.release(packet.frame, key, why, packet.arrived);
            } else {
                self.sink
                    .drop_packet(side, packet.frame, key, DropReason::OverBudget);
            }
            self.sink
                .checkpoint(CheckpointReason::OverBudget { held_bytes });
        } else {
            if observed {
                let (frame, key) = (packet.frame.clone(), Some(flow.key));
                self.sink
                    .release(frame, key, ReleaseReason::Observed, packet.arrived);
            }
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
            let counters = &mut self.sink.counters;
            counters.held[side.index()] += 1;
            counters.held_bytes += len;
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
            c.held[s] =
                (c.held[s] + u64::from(flow.held[s])).saturating_sub(u64::from(before.0[s]));
        }
        c.held_bytes = (c.held_bytes + flow.held_bytes).saturating_sub(before.1);
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
        self.compact_held(now, usize::MAX);
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
        self.answer_would_be_checkpoint();
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

    /// Orderly shutdown (D-LOSS-1): releases every held primary packet and returns how many
    /// (none in observe mode, where they went out on arrival).
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
                        Side::Primary => {
                            self.sink
                                .release_held(p.frame, key, how.release(), p.arrived)
                        }
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::comparator::{Claim, Comparator, Verdict};
    use crate::fifo::{FifoComparator, Matcher};
    use crate::registry::{ComparatorsConfig, Registration};
    use etherparse::PacketBuilder;
    use std::time::Duration;

    /// Byte-equal IP payloads: the smallest comparator that exercises the tracker.
    struct Equal;
    impl Matcher for Equal {
        fn compare(&self, p: &Packet, s: &Packet) -> Verdict {
            match Difference::between(p, p.meta.l4 as usize, p.from_l4(), s.from_l4()) {
                None => Verdict::Same,
                Some(d) => Verdict::Differ(d),
            }
        }
    }

    fn build(_: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
        Ok(Arc::new(FifoComparator::new(vec![Claim::Fallback], Equal)))
    }

    const EQUAL: Registration = Registration {
        name: "equal",
        summary: "test",
        build,
    };

    fn tracker(config: TrackerConfig) -> Tracker {
        let registry =
            Registry::build_from(&[&EQUAL], &ComparatorsConfig::default()).expect("registry");
        Tracker::new(config, Arc::new(registry), Timestamp::ZERO)
    }

    fn udp(port: u16, payload: &[u8]) -> Frame {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(port, 53)
            .write(&mut v, payload)
            .expect("build");
        Frame::new(v)
    }

    fn arp() -> Frame {
        let mut v = vec![0u8; 42];
        v[12] = 0x08;
        v[13] = 0x06;
        Frame::new(v)
    }

    fn ms(t: u64) -> Timestamp {
        Timestamp::from_millis(t)
    }

    fn events(t: &mut Tracker) -> Vec<Event> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    fn released(ev: &[Event]) -> Vec<(Frame, ReleaseReason)> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Release { frame, reason, .. } => Some((frame.clone(), *reason)),
                _ => None,
            })
            .collect()
    }

    fn checkpoints(ev: &[Event]) -> Vec<&'static str> {
        ev.iter()
            .filter_map(|e| match e {
                Event::Checkpoint(r) => Some(r.name()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn matching_pair_is_released_with_its_held_time() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(1, b"abc"), ms(10));
        assert!(events(&mut t).is_empty());
        assert_eq!(t.poll_timeout(), Some(ms(1000)));
        t.handle_frame(Side::Secondary, udp(1, b"abc"), ms(13));
        let ev = events(&mut t);
        match &ev[0] {
            Event::Release {
                reason, held, flow, ..
            } => {
                assert_eq!(*reason, ReleaseReason::Matched);
                assert_eq!(*held, Duration::from_millis(3));
                assert!(flow.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ev[1],
            Event::Drop {
                side: Side::Secondary,
                reason: DropReason::Matched,
                ..
            }
        ));
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.counters().comparators[0].matched, 1);
        t.counters().check().expect("identity");
    }

    #[test]
    fn non_ip_primary_goes_out_at_once_and_secondary_is_dropped() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(1, b"held"), ms(0));
        t.handle_frame(Side::Primary, arp(), ms(1));
        t.handle_frame(Side::Secondary, arp(), ms(2));
        let ev = events(&mut t);
        let rel = released(&ev);
        assert_eq!(rel.len(), 1);
        assert_eq!(
            rel[0].1,
            ReleaseReason::Uncompared(Uncompared::NotIp { ethertype: 0x0806 })
        );
        assert_eq!(
            t.counters().dropped[1][DropReason::Uncompared(Uncompared::MalformedIp).index()],
            1
        );
        assert_eq!(t.counters().held, [1, 0]);
        t.counters().check().expect("identity");
    }

    #[test]
    fn passthrough_rule_releases_uncompared() {
        let rule = crate::config::PassthroughRule {
            protocol: Some(17),
            port: Some(7),
            ..Default::default()
        };
        let mut t = tracker(TrackerConfig {
            passthrough: vec![rule],
            ..Default::default()
        });
        t.handle_frame(Side::Primary, udp(7, b"x"), ms(0));
        t.handle_frame(Side::Primary, udp(8, b"x"), ms(0));
        let rel = released(&events(&mut t));
        assert_eq!(rel.len(), 1);
        assert_eq!(rel[0].1, ReleaseReason::Uncompared(Uncompared::Passthrough));
    }

    #[test]
    fn mismatch_requests_a_checkpoint_and_flush_releases() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(1, b"abc"), ms(0));
        t.handle_frame(Side::Secondary, udp(1, b"abd"), ms(1));
        let ev = events(&mut t);
        assert!(released(&ev).is_empty());
        match &ev[..] {
            [Event::Checkpoint(CheckpointReason::Mismatch(m))] => {
                assert_eq!(m.comparator, "equal");
                // The checksum is the first byte that differs when the payload does.
                assert_eq!(m.difference.field, "udp checksum");
                assert_eq!(m.difference.offset, 14 + 20 + 6);
            }
            other => panic!("{other:?}"),
        }
        t.handle_checkpoint(ms(2));
        let ev = events(&mut t);
        assert_eq!(released(&ev)[0].1, ReleaseReason::CheckpointFlush);
        assert_eq!(t.counters().flushes, 1);
        assert_eq!(t.counters().held, [0, 0]);
        t.counters().check().expect("identity");
    }

    #[test]
    fn timeout_scan_runs_on_its_grid_and_requests_once_per_cycle() {
        let mut t = tracker(TrackerConfig {
            compare_timeout: 400,
            expired_scan_cycle: 100,
            ..Default::default()
        });
        t.handle_frame(Side::Primary, udp(1, b"lonely"), ms(0));
        t.handle_frame(Side::Primary, udp(2, b"lonely too"), ms(0));
        let mut requests = Vec::new();
        let mut now = ms(0);
        while now < ms(800) {
            let due = t.poll_timeout().expect("something is held");
            assert!(due > now);
            now = due;
            t.handle_timeout(now);
            requests.extend(checkpoints(&events(&mut t)).into_iter().map(|r| (now, r)));
        }
        let times: Vec<u64> = requests.iter().map(|(t, _)| t.as_micros() / 1000).collect();
        assert_eq!(times, vec![500, 600, 700, 800]);
        assert!(requests.iter().all(|(_, r)| *r == "timeout"));
    }

    #[test]
    fn full_queue_asks_for_a_checkpoint_but_keeps_the_packet() {
        let mut t = tracker(TrackerConfig {
            max_queue_size: 2,
            ..Default::default()
        });
        for i in 0..5u8 {
            t.handle_frame(Side::Primary, udp(1, &[i]), ms(0));
        }
        let ev = events(&mut t);
        assert_eq!(checkpoints(&ev), vec!["queue-full", "queue-full"]);
        assert_eq!(t.counters().held, [5, 0]);
        t.handle_checkpoint(ms(1));
        let rel = released(&events(&mut t));
        let payloads: Vec<u8> = rel.iter().map(|(f, _)| f.data[f.data.len() - 1]).collect();
        assert_eq!(payloads, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn over_budget_packets_are_dropped_and_counted() {
        let frame_len = udp(1, &[0]).len() as u64;
        let mut t = tracker(TrackerConfig {
            max_held_bytes: 2 * (frame_len + PACKET_OVERHEAD),
            ..Default::default()
        });
        for i in 0..4u8 {
            t.handle_frame(Side::Primary, udp(1, &[i]), ms(0));
        }
        let ev = events(&mut t);
        assert_eq!(checkpoints(&ev), vec!["over-budget", "over-budget"]);
        assert_eq!(t.counters().dropped[0][DropReason::OverBudget.index()], 2);
        assert_eq!(t.counters().held_bytes, 2 * frame_len);
        t.counters().check().expect("identity");
    }

    #[test]
    fn the_budget_charges_packet_and_extra_connection_overheads() {
        // Found by the flood tests: counting DATA alone let 47-byte frames on a million
        // connections take 19 times the budget.
        let len = udp(1, &[0]).len() as u64;
        for (spare, admitted) in [(0, true), (-1, false)] {
            let mut t = tracker(TrackerConfig {
                max_connections: 1,
                max_held_bytes: (2 * (len + PACKET_OVERHEAD) + FLOW_OVERHEAD)
                    .saturating_add_signed(spare),
                ..Default::default()
            });
            t.handle_frame(Side::Primary, udp(1, &[0]), ms(0));
            // A second connection while the only one is busy: beyond the table, so it is
            // charged its own overhead as well.
            t.handle_frame(Side::Primary, udp(2, &[0]), ms(0));
            let want = if admitted { [2, 0] } else { [1, 0] };
            assert_eq!(t.counters().held, want, "spare {spare}");
            assert_eq!(
                t.counters().dropped[0][DropReason::OverBudget.index()],
                u64::from(!admitted)
            );
            t.counters().check().expect("identity");
        }
    }

    #[test]
    fn full_table_evicts_idle_flows_never_busy_ones() {
        let mut t = tracker(TrackerConfig {
            max_connections: 4,
            ..Default::default()
        });
        t.handle_frame(Side::Primary, udp(1000, b"victim?"), ms(0));
        for port in 1..=20u16 {
            t.handle_frame(Side::Primary, udp(port, b"x"), ms(1));
            t.handle_frame(Side::Secondary, udp(port, b"x"), ms(1));
        }
        let ev = events(&mut t);
        assert!(checkpoints(&ev).is_empty());
        assert!(t.counters().flows <= 4);
        assert!(t.counters().flows_evicted >= 16);
        t.handle_checkpoint(ms(2));
        let rel = released(&events(&mut t));
        assert_eq!(rel.len(), 1);
        assert!(rel[0].0.data.ends_with(b"victim?"));
        t.counters().check().expect("identity");
    }

    #[test]
    fn full_table_of_busy_flows_asks_for_a_checkpoint_and_keeps_everything() {
        let mut t = tracker(TrackerConfig {
            max_connections: 2,
            ..Default::default()
        });
        for port in 1..=4u16 {
            t.handle_frame(Side::Primary, udp(port, b"held"), ms(0));
        }
        assert_eq!(
            checkpoints(&events(&mut t)),
            vec!["table-full", "table-full"]
        );
        assert_eq!(t.counters().held, [4, 0]);
        t.handle_checkpoint(ms(1));
        assert_eq!(released(&events(&mut t)).len(), 4);
    }

    #[test]
    fn flush_follows_connection_creation_order() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(3, b"a1"), ms(0));
        t.handle_frame(Side::Primary, udp(1, b"b1"), ms(0));
        t.handle_frame(Side::Primary, udp(3, b"a2"), ms(0));
        t.handle_frame(Side::Primary, udp(2, b"c1"), ms(0));
        t.handle_checkpoint(ms(1));
        let order: Vec<Vec<u8>> = released(&events(&mut t))
            .iter()
            .map(|(f, _)| f.data[f.data.len() - 2..].to_vec())
            .collect();
        assert_eq!(
            order,
            vec![
                b"a1".to_vec(),
                b"a2".to_vec(),
                b"b1".to_vec(),
                b"c1".to_vec()
            ]
        );
    }

    #[test]
    fn failover_releases_everything_then_passes_through() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(1, b"held"), ms(0));
        t.handle_frame(Side::Secondary, udp(2, b"held"), ms(0));
        t.handle_failover(ms(1));
        t.handle_frame(Side::Primary, udp(1, b"after"), ms(2));
        t.handle_frame(Side::Secondary, udp(1, b"after"), ms(2));
        let ev = events(&mut t);
        let rel = released(&ev);
        assert_eq!(rel.len(), 2);
        assert!(rel.iter().all(|(_, r)| *r == ReleaseReason::Failover));
        assert!(t.failed_over());
        assert_eq!(t.counters().dropped[1][DropReason::Failover.index()], 2);
        t.counters().check().expect("identity");
    }

    #[test]
    fn drain_releases_every_held_primary_and_reports_the_count() {
        let mut t = tracker(TrackerConfig::default());
        for port in 1..=3u16 {
            t.handle_frame(Side::Primary, udp(port, b"x"), ms(0));
        }
        t.handle_frame(Side::Secondary, udp(9, b"x"), ms(0));
        assert_eq!(t.drain(ms(5)), 3);
        let rel = released(&events(&mut t));
        assert!(rel.iter().all(|(_, r)| *r == ReleaseReason::ShutdownFlush));
        assert_eq!(t.counters().held, [0, 0]);
        t.counters().check().expect("identity");
    }

    #[test]
    fn flows_lists_held_queues_in_creation_order() {
        let mut t = tracker(TrackerConfig::default());
        t.handle_frame(Side::Primary, udp(5, b"x"), ms(1));
        t.handle_frame(Side::Secondary, udp(6, b"y"), ms(2));
        let flows = t.flows();
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].held, [1, 0]);
        assert_eq!(flows[1].held, [0, 1]);
        assert_eq!(flows[1].oldest, Some(ms(2)));
        assert_eq!(flows[0].comparator, "equal");
    }

    fn observing() -> Tracker {
        tracker(TrackerConfig {
            observe: true,
            compare_timeout: 400,
            expired_scan_cycle: 100,
            ..Default::default()
        })
    }

    #[test]
    fn observe_releases_on_arrival_and_counts_what_protection_would_do() {
        let mut t = observing();
        t.handle_frame(Side::Primary, udp(1, b"abc"), ms(10));
        let ev = events(&mut t);
        assert_eq!(released(&ev)[0].1, ReleaseReason::Observed);
        assert_eq!(t.counters().held, [1, 0]);
        assert_eq!(t.counters().observed_held(), 1);
        t.counters().check().expect("identity with a copy held");
        t.handle_frame(Side::Secondary, udp(1, b"abc"), ms(13));
        let ev = events(&mut t);
        assert!(released(&ev).is_empty(), "released twice: {ev:?}");
        let c = t.counters();
        assert_eq!(c.would_release[ReleaseReason::Matched.index()], 1);
        assert_eq!(c.comparators[0].matched, 1);
        assert_eq!(c.held_time.max(), Duration::from_millis(3));
        assert_eq!((c.held, c.observed_held()), ([0, 0], 0));
        c.check().expect("identity");
    }

    #[test]
    fn observe_never_requests_a_checkpoint_and_flushes_as_if_answered() {
        let mut t = observing();
        t.handle_frame(Side::Primary, udp(1, b"abc"), ms(0));
        t.handle_frame(Side::Secondary, udp(1, b"abd"), ms(1));
        let ev = events(&mut t);
        assert!(checkpoints(&ev).is_empty());
        assert!(matches!(
            ev.iter().find(|e| matches!(e, Event::WouldCheckpoint(_))),
            Some(Event::WouldCheckpoint(CheckpointReason::Mismatch(_)))
        ));
        let c = t.counters();
        assert_eq!(c.checkpoints_total(), 0);
        assert_eq!(c.would_checkpoints[0], 1);
        assert_eq!(c.would_release[ReleaseReason::CheckpointFlush.index()], 1);
        assert_eq!(c.held, [0, 0]);
        c.check().expect("identity");
        // A lonely packet times out on the scan grid: one would-be request, then it is gone.
        t.handle_frame(Side::Primary, udp(2, b"lonely"), ms(2));
        let mut reasons = Vec::new();
        while let Some(due) = t.poll_timeout() {
            t.handle_timeout(due);
            reasons.extend(events(&mut t).into_iter().filter_map(|e| match e {
                Event::WouldCheckpoint(r) => Some(r.name()),
                _ => None,
            }));
        }
        assert_eq!(reasons, vec!["timeout"]);
        assert_eq!(t.counters().released[ReleaseReason::Observed.index()], 2);
        t.counters().check().expect("identity");
    }

    #[test]
    fn observe_over_budget_releases_uncompared_and_drains_nothing() {
        let len = udp(1, &[0]).len() as u64;
        let mut t = tracker(TrackerConfig {
            observe: true,
            max_held_bytes: len + PACKET_OVERHEAD,
            ..Default::default()
        });
        t.handle_frame(Side::Primary, udp(1, &[0]), ms(0));
        t.handle_frame(Side::Primary, udp(1, &[1]), ms(0));
        let rel = released(&events(&mut t));
        assert_eq!(rel.len(), 2);
        assert_eq!(rel[1].1, ReleaseReason::Uncompared(Uncompared::OverBudget));
        assert_eq!(t.counters().dropped_total(Side::Primary), 0);
        assert_eq!(t.counters().would_checkpoints[4], 1);
        // The would-be request was answered at once: the first copy is settled by its flush.
        assert_eq!(
            t.counters().would_release[ReleaseReason::CheckpointFlush.index()],
            1
        );
        t.handle_frame(Side::Primary, udp(1, &[2]), ms(1));
        assert_eq!(released(&events(&mut t)).len(), 1);
        assert_eq!(t.drain(ms(2)), 0);
        assert!(released(&events(&mut t)).is_empty());
        let c = t.counters();
        assert_eq!(c.would_release[ReleaseReason::ShutdownFlush.index()], 1);
        c.check().expect("identity");
    }

    #[test]
    fn observe_cannot_be_switched_on_a_running_tracker() {
        let mut t = tracker(TrackerConfig::default());
        let err = t.set_config(TrackerConfig {
            observe: true,
            ..Default::default()
        });
        assert_eq!(err.map_err(|e| e.field), Err("observe"));
        assert!(!t.config().observe);
        t.set_config(TrackerConfig {
            compare_timeout: 5,
            ..Default::default()
        })
        .expect("other settings change");
        assert_eq!(t.config().compare_timeout, 5);
    }

    #[test]
    fn the_identity_catches_a_copy_counted_twice() {
        let mut t = observing();
        t.handle_frame(Side::Primary, udp(1, b"abc"), ms(0));
        let mut c = t.counters().clone();
        c.would_release[0] += 1;
        assert!(c.check().is_err());
    }

    /// Frames cut from one read, as the decoder makes them: they share one allocation.
    fn one_read(frames: &[Frame]) -> Vec<Frame> {
        let mut wire = Vec::new();
        for f in frames {
            crate::frame::encode(f, false, &mut wire);
        }
        let mut dec = crate::frame::Decoder::new(false);
        dec.feed(&wire);
        std::iter::from_fn(|| match dec.next_frame() {
            Ok(Some(crate::frame::Decoded::Frame(f))) => Some(f),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn packets_held_past_compact_after_stop_sharing_their_read_buffer() {
        let mut t = tracker(TrackerConfig::default());
        // One read brings three packets of a flow the secondary does not answer (port 1) and
        // three that it answers at once (port 2).
        let read: Vec<Frame> = (0..6u8)
            .map(|i| udp(1 + u16::from(i % 2), &[i; 40]))
            .collect();
        let frames = one_read(&read);
        assert!(
            frames
                .clone()
                .into_iter()
                .all(|f| f.data.try_into_mut().is_err()),
            "the decoder's frames share the read's allocation"
        );
        t.handle_frames(Side::Primary, frames, ms(0));
        let answers: Vec<Frame> = read.iter().skip(1).step_by(2).cloned().collect();
        t.handle_frames(Side::Secondary, answers, ms(1));
        assert_eq!(released(&events(&mut t)).len(), 3);
        // Not yet held for COMPACT_AFTER: nothing is copied.
        t.handle_frame(Side::Secondary, arp(), ms(99));
        assert_eq!(t.counters().compacted, 0);
        t.handle_timeout(ms(150));
        assert_eq!(t.counters().compacted, 3);
        // A later pass does not copy them again.
        t.handle_frame(Side::Secondary, arp(), ms(400));
        assert_eq!(t.counters().compacted, 3);
        events(&mut t);
        t.handle_checkpoint(ms(500));
        let out = released(&events(&mut t));
        assert_eq!(out.len(), 3);
        for ((f, reason), want) in out.into_iter().zip(read.iter().step_by(2)) {
            assert_eq!(reason, ReleaseReason::CheckpointFlush);
            assert_eq!(&f, want, "compaction keeps the bytes");
            let Ok(own) = f.data.try_into_mut() else {
                panic!("a compacted frame still shares its allocation");
            };
            assert_eq!(own.capacity(), own.len());
        }
        t.counters().check().expect("identity");
    }
}
