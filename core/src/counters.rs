//! The engine's counters, kept in one place as every decision is made.
//!
//! They satisfy, per side, `received = released + dropped + held` (D-LOSS-5); the secondary
//! never releases. [`Counters::check`] states the identity so tests can assert it after any
//! step.

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Per-comparator decisions, in registry order.
    pub comparators: Vec<ComparatorCounters>,
    /// How long released primary packets were held (uncompared ones count as zero).
    pub held_time: Histogram,
}

impl Counters {
    /// Primary packets released, all reasons.
    pub fn released_total(&self) -> u64 {
        self.released.iter().sum()
    }

    /// Packets dropped from `side`, all reasons.
    pub fn dropped_total(&self, side: Side) -> u64 {
        self.dropped[side.index()].iter().sum()
    }

    /// Checkpoint requests, all reasons.
    pub fn checkpoints_total(&self) -> u64 {
        self.checkpoints.iter().sum()
    }

    /// Checks `received = released + dropped + held` for both sides.
    pub fn check(&self) -> Result<(), String> {
        let p = Side::Primary.index();
        let s = Side::Secondary.index();
        let primary = self.released_total() + self.dropped_total(Side::Primary) + self.held[p];
        let secondary = self.dropped_total(Side::Secondary) + self.held[s];
        if primary != self.received[p] {
            return Err(format!(
                "primary: received {} != released {} + dropped {} + held {}",
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
