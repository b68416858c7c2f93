//! A snapshot of one pipeline's tracked connections, as the control socket's `flows` shows
//! them: queue depths and the age of the oldest held packet, measured on the pipeline's clock.

use std::time::Duration;

use colo_core::{FlowInfo, FlowKey, Side, Timestamp};

/// One tracked connection at the moment of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowView {
    /// The connection.
    pub key: FlowKey,
    /// The comparator handling it.
    pub comparator: &'static str,
    /// Packets held, per side ([`Side::index`]).
    pub held: [u32; 2],
    /// Bytes held, both sides.
    pub held_bytes: u64,
    /// How long its oldest held packet has waited; `None` when nothing is held.
    pub oldest_age: Option<Duration>,
}

impl FlowView {
    /// The view of `info` at `now` (both on the pipeline's clock).
    pub(crate) fn new(info: FlowInfo, now: Timestamp) -> Self {
        FlowView {
            key: info.key,
            comparator: info.comparator,
            held: info.held,
            held_bytes: info.held_bytes,
            oldest_age: info.oldest.map(|t| now.saturating_since(t)),
        }
    }

    /// Packets held on both sides.
    pub fn held_total(&self) -> u64 {
        u64::from(self.held[Side::Primary.index()]) + u64::from(self.held[Side::Secondary.index()])
    }
}
