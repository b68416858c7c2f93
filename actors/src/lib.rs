//! The async shell of colo-compare: readers, the tracker actor, egress and notify.
//!
//! Actors only move bytes and messages; every decision is made by `colo_core`'s tracker.

pub mod endpoint;
pub mod pipeline;

pub use endpoint::Endpoint;
pub use pipeline::PipelineConfig;
