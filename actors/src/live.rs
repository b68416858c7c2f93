//! Live state of the running pipelines, shared between the actors that update it and the
//! control side that reads it.
//!
//! Each pipeline's tracker actor publishes its counters after every step and its egress
//! publishes the output's state; [`crate::Daemon::stats`] and [`crate::Daemon::outputs`]
//! read them without disturbing the actors. A `DashMap` keyed by pipeline name lets those
//! writers and readers touch different pipelines without a global lock.

use std::sync::Arc;

use colo_core::Counters;

use crate::beacon::BeaconStatus;
use crate::capture::CaptureStatus;
use crate::requests::{RequestPath, RequestPaths};
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
    pub(crate) capture: Option<CaptureStatus>,
    pub(crate) failed_over: bool,
    pub(crate) requests: RequestPaths,
    pub(crate) beacon: Option<BeaconStatus>,
}

/// Everything published about one pipeline, read at one moment: what `stats` and the metrics
/// show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineSnapshot {
    /// The pipeline.
    pub name: String,
    /// Whether it runs in observe mode.
    pub observe: bool,
    /// Whether failover has happened.
    pub failed_over: bool,
    /// The engine's counters.
    pub counters: Counters,
    /// The output's state.
    pub output: OutputStatus,
    /// The mismatch capture's state, when one is configured.
    pub capture: Option<CaptureStatus>,
    /// Where the checkpoint requests went.
    pub requests: RequestPaths,
    /// The KVM beacon's state, in beacon mode.
    pub beacon: Option<BeaconStatus>,
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

    /// Publishes the mismatch capture's state.
    pub(crate) fn set_capture(&self, capture: Option<CaptureStatus>) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.capture = capture;
        }
    }

    /// Publishes that failover has happened.
    pub(crate) fn set_failed_over(&self) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.failed_over = true;
        }
    }

    /// Counts one checkpoint request by the path it took.
    pub(crate) fn count_request(&self, path: RequestPath) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.requests.add(path);
        }
    }

    /// Publishes the beacon's state.
    pub(crate) fn set_beacon(&self, beacon: BeaconStatus) {
        if let Some(mut live) = self.map.get_mut(&*self.name) {
            live.beacon = Some(beacon);
        }
    }
}
