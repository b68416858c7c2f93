//! The async shell of colo-compare: readers, the tracker actor, egress and notify.
//!
//! Actors only move bytes and messages; every decision is made by `colo_core`'s tracker.
//! [`Daemon`] is the entry point: it starts every configured pipeline's actors on real
//! sockets and stops them in order. The runtime (async-std) is named only in `runtime` and
//! `link`; the actors themselves are written against `futures` channels and I/O traits.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod beacon;
pub mod capture;
mod credit;
pub mod daemon;
mod decisions;
mod egress;
pub mod endpoint;
pub mod flows;
pub mod handle;
mod link;
pub mod live;
pub mod notify;
pub mod pipeline;
mod reader;
pub mod requests;
pub mod role;
mod runtime;
mod tracker;

pub use beacon::{BeaconConfig, BeaconStatus};
pub use capture::{CaptureConfig, CaptureStatus};
pub use daemon::{Daemon, PipelineReport, ShutdownReport, StartError, UnknownPipeline};
pub use endpoint::Endpoint;
pub use flows::FlowView;
pub use handle::{CommandError, DaemonHandle};
pub use link::bind_unix;
pub use live::{OutputStatus, PipelineSnapshot};
pub use pipeline::PipelineConfig;
pub use requests::{RequestPath, RequestPaths};
pub use role::Role;
