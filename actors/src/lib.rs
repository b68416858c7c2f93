//! The async shell of colo-compare: readers, the tracker actor, egress and notify.
//!
//! Actors only move bytes and messages; every decision is made by `colo_core`'s tracker.
//! [`Daemon`] is the entry point: it starts every configured pipeline's actors on real
//! sockets and stops them in order. The runtime (async-std) is named only in `runtime` and
//! `link`; the actors themselves are written against `futures` channels and I/O traits.

pub mod daemon;
mod egress;
pub mod endpoint;
mod link;
pub mod live;
pub mod notify;
pub mod pipeline;
mod reader;
pub mod role;
mod runtime;
mod tracker;

pub use daemon::{Daemon, PipelineReport, ShutdownReport, StartError, UnknownPipeline};
pub use endpoint::Endpoint;
pub use live::OutputStatus;
pub use pipeline::PipelineConfig;
pub use role::Role;
