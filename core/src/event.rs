//! What the tracker decided: the events the shell turns into socket writes, log lines and
//! metrics.
//!
//! Every packet that leaves the engine leaves as exactly one [`Event::Release`] or
//! [`Event::Drop`], each with its reason, so logs, counters and tests agree (D-LOSS-5).

use std::fmt;
use std::time::Duration;

use crate::comparator::Difference;
use crate::flow::{FlowKey, Side};
use crate::frame::Frame;
use crate::packet::Uncompared;

/// Why a primary packet was released to the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// The secondary produced the same output.
    Matched,
    /// A TCP segment without payload (pure ACK, SYN, FIN, RST): never compared.
    NoPayload,
    /// TCP data at or before what was already compared: released uncompared (Q13).
    AlreadyCompared,
    /// A frame that is not compared at all (non-IP, malformed, passthrough, ...).
    Uncompared(Uncompared),
    /// Flushed by a checkpoint.
    CheckpointFlush,
    /// Flushed by an orderly shutdown (D-LOSS-1).
    ShutdownFlush,
    /// Released by failover, or passed through after it.
    Failover,
    /// Observe mode: released on arrival. A copy is still compared; how that comparison ends
    /// is counted in [`crate::Counters::would_release`].
    Observed,
}

impl ReleaseReason {
    /// Number of distinct [`ReleaseReason::index`] values.
    pub const COUNT: usize = 8;
    /// The names of the reasons, by index.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "matched",
        "no-payload",
        "already-compared",
        "uncompared",
        "checkpoint-flush",
        "shutdown-flush",
        "failover",
        "observed",
    ];

    /// A dense index for per-reason counters.
    pub const fn index(self) -> usize {
        match self {
            ReleaseReason::Matched => 0,
            ReleaseReason::NoPayload => 1,
            ReleaseReason::AlreadyCompared => 2,
            ReleaseReason::Uncompared(_) => 3,
            ReleaseReason::CheckpointFlush => 4,
            ReleaseReason::ShutdownFlush => 5,
            ReleaseReason::Failover => 6,
            ReleaseReason::Observed => 7,
        }
    }

    /// The stable short name.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

impl fmt::Display for ReleaseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseReason::Uncompared(why) => write!(f, "uncompared ({why})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Why a packet left the engine without being output. For secondary packets this is their
/// normal end; for primary packets only [`DropReason::OverBudget`] happens, and it is an
/// intentional, counted loss (D-LOSS-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A secondary packet that matched (or was consumed by) a primary one.
    Matched,
    /// A secondary TCP segment without payload.
    NoPayload,
    /// A secondary TCP segment at or before what was already compared.
    AlreadyCompared,
    /// A secondary frame that is not compared (non-IP, malformed, ...).
    Uncompared(Uncompared),
    /// A secondary packet flushed by a checkpoint.
    CheckpointFlush,
    /// A secondary packet flushed at shutdown.
    ShutdownFlush,
    /// A secondary packet after failover (the secondary is gone).
    Failover,
    /// Holding the packet would exceed the global memory budget.
    OverBudget,
}

impl DropReason {
    /// Number of distinct [`DropReason::index`] values.
    pub const COUNT: usize = 8;
    /// The names of the reasons, by index.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "matched",
        "no-payload",
        "already-compared",
        "uncompared",
        "checkpoint-flush",
        "shutdown-flush",
        "failover",
        "over-budget",
    ];

    /// A dense index for per-reason counters.
    pub const fn index(self) -> usize {
        match self {
            DropReason::Matched => 0,
            DropReason::NoPayload => 1,
            DropReason::AlreadyCompared => 2,
            DropReason::Uncompared(_) => 3,
            DropReason::CheckpointFlush => 4,
            DropReason::ShutdownFlush => 5,
            DropReason::Failover => 6,
            DropReason::OverBudget => 7,
        }
    }

    /// The stable short name.
    pub const fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Uncompared(why) => write!(f, "uncompared ({why})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Details of a comparison that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The flow.
    pub flow: FlowKey,
    /// The comparator's registered name.
    pub comparator: &'static str,
    /// Where the packets first differ.
    pub difference: Difference,
    /// The primary frame involved.
    pub primary: Frame,
    /// The secondary frame involved.
    pub secondary: Frame,
}

/// Why the engine asks for a checkpoint. On the wire it is always `DO_CHECKPOINT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointReason {
    /// A comparison failed.
    Mismatch(Box<Mismatch>),
    /// A packet waited longer than `compare_timeout`.
    Timeout {
        /// The flow holding it.
        flow: FlowKey,
        /// Which side's packet.
        side: Side,
        /// How long it has waited.
        age: Duration,
    },
    /// A flow's queue holds more than `max_queue_size` packets (D-LOSS-3).
    QueueFull {
        /// The flow.
        flow: FlowKey,
        /// The side whose queue is full.
        side: Side,
        /// Packets held on that side, the new one included.
        held: u32,
    },
    /// The connection table is full and no idle connection could be evicted (D-LOSS-4).
    TableFull {
        /// Connections tracked.
        flows: usize,
    },
    /// The global memory budget is exhausted; a packet was dropped.
    OverBudget {
        /// Bytes held when the packet arrived.
        held_bytes: u64,
    },
}

impl CheckpointReason {
    /// Number of distinct [`CheckpointReason::index`] values.
    pub const COUNT: usize = 5;
    /// The names of the reasons, by index.
    pub const NAMES: [&'static str; Self::COUNT] = [
        "mismatch",
        "timeout",
        "queue-full",
        "table-full",
        "over-budget",
    ];

    /// A dense index for per-reason counters.
    pub const fn index(&self) -> usize {
        match self {
            CheckpointReason::Mismatch(_) => 0,
            CheckpointReason::Timeout { .. } => 1,
            CheckpointReason::QueueFull { .. } => 2,
            CheckpointReason::TableFull { .. } => 3,
            CheckpointReason::OverBudget { .. } => 4,
        }
    }

    /// The stable short name.
    pub const fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// The flow concerned, if one is.
    pub fn flow(&self) -> Option<&FlowKey> {
        match self {
            CheckpointReason::Mismatch(m) => Some(&m.flow),
            CheckpointReason::Timeout { flow, .. } | CheckpointReason::QueueFull { flow, .. } => {
                Some(flow)
            }
            CheckpointReason::TableFull { .. } | CheckpointReason::OverBudget { .. } => None,
        }
    }
}

impl fmt::Display for CheckpointReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointReason::Mismatch(m) => write!(
                f,
                "mismatch on {} ({} comparator): first difference at byte {} ({})",
                m.flow, m.comparator, m.difference.offset, m.difference.field
            ),
            CheckpointReason::Timeout { flow, side, age } => write!(
                f,
                "timeout on {flow}: a {side} packet has waited {} ms",
                age.as_millis()
            ),
            CheckpointReason::QueueFull { flow, side, held } => {
                write!(f, "queue-full on {flow}: {held} {side} packets held")
            }
            CheckpointReason::TableFull { flows } => {
                write!(
                    f,
                    "table-full: {flows} connections tracked, none idle to evict"
                )
            }
            CheckpointReason::OverBudget { held_bytes } => {
                write!(
                    f,
                    "over-budget: {held_bytes} bytes held, a packet was dropped"
                )
            }
        }
    }
}

/// One decision of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this primary frame to the output, in event order.
    Release {
        /// The primary's bytes, unmodified, with its own VNET_LEN.
        frame: Frame,
        /// Why it goes out now.
        reason: ReleaseReason,
        /// Its flow, when it had one.
        flow: Option<FlowKey>,
        /// How long the engine held it.
        held: Duration,
    },
    /// This packet leaves without being output.
    Drop {
        /// Whose packet.
        side: Side,
        /// Why.
        reason: DropReason,
        /// Its flow, when it had one.
        flow: Option<FlowKey>,
        /// Size of its DATA.
        len: usize,
    },
    /// Ask the COLO controller for a checkpoint (`DO_CHECKPOINT`).
    Checkpoint(CheckpointReason),
    /// Observe mode: a checkpoint protection would have requested. Nothing is sent; the
    /// tracker flushes its copies as if the controller had answered at once.
    WouldCheckpoint(CheckpointReason),
}
