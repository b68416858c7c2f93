//! What a beacon pipeline publishes about its beacon, for the metrics and the tests.

use colo_core::beacon::BeaconCounters;

/// The state of a pipeline's beacon, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BeaconStatus {
    /// Whether the beacon's `primary_in` is connected.
    pub primary_in: bool,
    /// Whether the beacon's `secondary_in` is connected.
    pub secondary_in: bool,
    /// Whether the QMP session is up (always false without `qmp`).
    pub qmp: bool,
    /// Whether a frame is believed parked in the beacon.
    pub armed: bool,
    /// Whether the primary is known to be in COLO.
    pub colo: bool,
    /// Whether `COLO_EXIT` has been seen (the pipeline failed over).
    pub exited: bool,
    /// Flushes made (beacon and missed): the current epoch.
    pub epoch: u64,
    /// What the beacon counted.
    pub counters: BeaconCounters,
}
