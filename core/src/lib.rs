//! The sans-IO engine of colo-compare.
//!
//! Everything colo-compare decides is decided here, as plain deterministic Rust: bytes and
//! time go in as values, decisions come out as [`Event`]s. There are no sockets, no clocks and
//! no async in this crate, so the daemon, the offline replay and the tests all run the very same
//! code.
//!
//! The layers, bottom up:
//! - [`frame`]: QEMU's filter socket framing (length, optional vnet length, data).
//! - [`packet`]: classifying one frame as comparable (with its [`FlowKey`]) or uncompared.
//! - [`comparator`] and [`registry`]: the protocol comparators and how one is chosen per flow.
//! - [`tracker`]: the state machine that owns flows and queues and emits [`Event`]s.
//!
//! The tracker is driven like `quinn-proto`'s connection: call `handle_*` for inputs, then
//! drain [`Tracker::poll_event`] and ask [`Tracker::poll_timeout`] when to call
//! [`Tracker::handle_timeout`] next.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod beacon;
pub mod compact;
pub mod comparator;
pub mod config;
pub mod counters;
pub mod event;
mod fastpath;
pub mod fifo;
pub mod flow;
mod flow_index;
pub mod frame;
pub mod histogram;
pub mod packet;
pub mod pcap;
pub mod registry;
pub mod replay;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod tracker;

pub use comparator::{Claim, Comparator, Difference, FlowState, Outcome, Verdict};
pub use config::TrackerConfig;
pub use counters::Counters;
pub use event::{CheckpointReason, DropReason, Event, Mismatch, ReleaseReason};
pub use flow::{FlowKey, L4Id, Side};
pub use frame::{Decoded, Decoder, Frame, FrameError, NET_BUFSIZE};
pub use histogram::Histogram;
pub use packet::{Classified, Packet, PacketMeta, Uncompared};
pub use registry::{Registration, Registry, RegistryError};
pub use time::Timestamp;
pub use tracker::{FlowInfo, Tracker};
