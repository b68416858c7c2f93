//! Live state of the running pipelines, shared between the actors that update it and the
//! control side that reads it.
//!
//! Each pipeline's tracker actor publishes its counters after every step and its egress
//! publishes the output's state; [`crate::Daemon::stats`] and [`crate::Daemon::outputs`]
//! read them without disturbing the actors. A `DashMap` keyed by pipeline name lets those
//! writers and readers touch different pipelines without a global lock.

use std::sync::Arc;

use colo_core::Counters;
use dashmap::DashMap;

/// The state of a pipeline's output side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputStatus {
    /// Whether an output peer is connected now.
    pub connected: bool,
    /// Released frames waiting to be written (the peer is away or slow).
    pub buffered_frames: u64,
    /// Bytes of those frames.
    pub buffered_bytes: u64,
    /// Frames written to the output since start.
    pub written_frames: u64,
    /// Bytes written to the output since start (framing included).
    pub written_bytes: u64,
}

/// One pipeline's published state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Live {
    pub(crate) counters: Counters,
    pub(crate) output: OutputStatus,
}

/// Every pipeline's published state, by name.
pub(crate) type LiveMap = Arc<DashMap<String, Live>>;

/// One pipeline's slot in the [`LiveMap`], held by the actors that publish into it.
#[derive(Clone)]
pub(crate) struct LiveSlot {
    map: LiveMap,
    name: Arc<str>,
}

impl LiveSlot {
    /// Registers the pipeline `name` in `map`.
    pub(crate) fn new(map: &LiveMap, name: &str) -> Self {
        map.insert(name.to_string(), Live::default());
        LiveSlot {
            map: Arc::clone(map),
            name: name.into(),
        }
    }

    /// Publishes the tracker's counters.
    pub(crate) fn set_counters(&self, counters: &Counters) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.counters.clone_from(counters);
        }
    }

    /// Publishes the output's state.
    pub(crate) fn set_output(&self, output: OutputStatus) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.output = output;
        }
    }
}
