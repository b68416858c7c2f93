//! The engine's counters, kept in one place as every decision is made.
//!
//! They satisfy, per side, `received = released + dropped + held` (D-LOSS-5); the secondary
//! never releases. [`Counters::check`] states the identity so tests can assert it after any
//! step.
//!
//! Observe mode releases a primary packet on arrival (reason `observed`) and keeps a copy in
//! its queue to compare; the copy counts in `held` (it takes the memory and the queue slot)
//! until its comparison ends, which is counted in `would_release` under the reason protection
//! would have released it for. The identity then reads
//! `received = released + dropped + held - observed_held`, where `observed_held =
//! released[observed] - sum(would_release)` are the copies still held: every primary packet is
//! counted once by its real fate, and every copy once by its would-be one.

use crate::event::{CheckpointReason, DropReason, ReleaseReason};
use crate::flow::Side;
use crate::histogram::Histogram;

/// Per-comparator decision counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComparatorCounters {
    /// The comparator's registered name.
    pub name: &'static str,
    /// Primary packets released because they matched.
    pub matched: u64,
    /// Failed comparisons (each one a checkpoint request).
    pub mismatched: u64,
    /// Flows the comparator took.
    pub flows: u64,
}

/// Everything the engine counts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received per side (zero-length frames excluded).
    pub received: [u64; 2],
    /// Zero-length frames skipped per side (D-IN-1).
    pub empty_frames: [u64; 2],
    /// Bytes of DATA received per side.
    pub received_bytes: [u64; 2],
    /// Primary packets released, by [`ReleaseReason::index`].
    pub released: [u64; ReleaseReason::COUNT],
    /// Packets dropped per side, by [`DropReason::index`].
    pub dropped: [[u64; DropReason::COUNT]; 2],
    /// Packets held now, per side.
    pub held: [u64; 2],
    /// Bytes held now, both sides.
    pub held_bytes: u64,
    /// Checkpoint requests, by [`CheckpointReason::index`].
    pub checkpoints: [u64; CheckpointReason::COUNT],
    /// Checkpoint flushes performed.
    pub flushes: u64,
    /// Connections tracked now.
    pub flows: u64,
    /// Connections created since start.
    pub flows_created: u64,
    /// Idle connections evicted to make room (D-LOSS-4).
    pub flows_evicted: u64,
    /// Held packets copied out of the read buffer they shared, after
    /// [`COMPACT_AFTER`](crate::compact::COMPACT_AFTER) held.
    pub compacted: u64,
    /// Per-comparator decisions, in registry order.
    pub comparators: Vec<ComparatorCounters>,
    /// How long released primary packets were held (uncompared ones count as zero). In observe
    /// mode: how long protection would have held them, recorded when their comparison ends.
    pub held_time: Histogram,
    /// Observe mode: how the comparison of primary packets released on arrival ended, by the
    /// [`ReleaseReason::index`] protection would have released them for.
    pub would_release: [u64; ReleaseReason::COUNT],
    /// Observe mode: checkpoint requests protection would have made, by
    /// [`CheckpointReason::index`]. None of them is sent.
    pub would_checkpoints: [u64; CheckpointReason::COUNT],
}

/// The daemon publishes a copy of the counters after every batch it handles; `clone_from`
/// reuses the copy's allocations (the comparator list, the histogram) instead of allocating new
/// ones each time. Every field is named, so that a new one cannot be forgotten here.
impl Clone for Counters {
    fn clone(&self) -> Self {
        let mut c = Counters::default();
        c.clone_from(self);
        c
    }

    fn clone_from(&mut self, source: &Self) {
        let Counters {
            received,
            empty_frames,
            received_bytes,
            released,
            dropped,
            held,
            held_bytes,
            checkpoints,
            flushes,
            flows,
            flows_created,
            flows_evicted,
            compacted,
            comparators,
            held_time,
            would_release,
            would_checkpoints,
        } = source;
        self.received = *received;
        self.empty_frames = *empty_frames;
        self.received_bytes = *received_bytes;
        self.released = *released;
        self.dropped = *dropped;
        self.held = *held;
        self.held_bytes = *held_bytes;
        self.checkpoints = *checkpoints;
        self.flushes = *flushes;
        self.flows = *flows;
        self.flows_created = *flows_created;
        self.flows_evicted = *flows_evicted;
        self.compacted = *compacted;
        self.comparators.clone_from(comparators);
        self.held_time.clone_from(held_time);
        self.would_release = *would_release;
        self.would_checkpoints = *would_checkpoints;
    }
}

impl Counters {
    /// Primary packets released, all reasons.
    pub fn released_total(&self) -> u64 {
        self.released.iter().sum()
    }

    /// Packets held now, both sides.
    pub fn held_total(&self) -> u64 {
        self.held[0] + self.held[1]
    }

    /// Packets dropped from `side`, all reasons.
    pub fn dropped_total(&self, side: Side) -> u64 {
        self.dropped[side.index()].iter().sum()
    }

    /// Checkpoint requests, all reasons.
    pub fn checkpoints_total(&self) -> u64 {
        self.checkpoints.iter().sum()
    }

    /// Would-be checkpoint requests (observe mode), all reasons.
    pub fn would_checkpoints_total(&self) -> u64 {
        self.would_checkpoints.iter().sum()
    }

    /// Observe mode: copies of primary packets released on arrival whose comparison has not
    /// ended yet (they are part of `held`).
    pub fn observed_held(&self) -> u64 {
        let settled: u64 = self.would_release.iter().sum();
        self.released[ReleaseReason::Observed.index()].saturating_sub(settled)
    }

    /// Checks `received = released + dropped + held - observed_held` for the primary (plain
    /// `received = released + dropped + held` outside observe mode) and
    /// `received = dropped + held` for the secondary.
    pub fn check(&self) -> Result<(), String> {
        let p = Side::Primary.index();
        let s = Side::Secondary.index();
        let observed = self.released[ReleaseReason::Observed.index()];
        let settled: u64 = self.would_release.iter().sum();
        if settled > observed {
            return Err(format!(
                "observe: {settled} copies ended their comparison but only {observed} were released on arrival"
            ));
        }
        let copies = observed - settled;
        if copies > self.held[p] {
            return Err(format!(
                "observe: {copies} copies are being compared but only {} primary packets are held",
                self.held[p]
            ));
        }
        let primary =
            self.released_total() + self.dropped_total(Side::Primary) + self.held[p] - copies;
        let secondary = self.dropped_total(Side::Secondary) + self.held[s];
        if primary != self.received[p] {
            return Err(format!(
                "primary: received {} != released {} + dropped {} + held {} - observed copies {copies}",
                self.received[p],
                self.released_total(),
                self.dropped_total(Side::Primary),
                self.held[p]
            ));
        }
        if secondary != self.received[s] {
            return Err(format!(
                "secondary: received {} != dropped {} + held {}",
                self.received[s],
                self.dropped_total(Side::Secondary),
                self.held[s]
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_published_copy_equals_its_source() {
        let mut source = Counters {
            received: [5, 4],
            flushes: 2,
            comparators: vec![ComparatorCounters {
                name: "udp",
                matched: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        source.held_time.record(Duration::from_millis(2));
        let mut copy = Counters {
            flows: 9,
            comparators: vec![ComparatorCounters::default(); 3],
            ..Default::default()
        };
        copy.held_time.record(Duration::from_secs(7));
        copy.clone_from(&source);
        assert_eq!(copy, source);
        assert_eq!(source.clone(), source);
    }
}
