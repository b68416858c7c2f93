//! The settings of one pipeline: one protected NIC, its sockets and its engine settings.
//!
//! Field names and defaults follow QEMU's `colo-compare` properties where QEMU has them, so
//! an operator can carry a QEMU command line over.

use serde::{Deserialize, Serialize};

use colo_core::config::{ConfigError, PassthroughRule, TrackerConfig};
use colo_core::registry::ComparatorsConfig;

use crate::beacon::{self, BeaconConfig};
use crate::capture::CaptureConfig;
use crate::endpoint::Endpoint;

/// One pipeline as written in the configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// A name for logs, metrics and the control socket.
    pub name: String,
    /// Where the primary QEMU's filter-redirector sends the primary guest's packets.
    pub primary_in: Endpoint,
    /// Where the secondary QEMU's filter-redirector sends the secondary guest's packets.
    pub secondary_in: Endpoint,
    /// Where released primary packets go (the primary QEMU's `filter-redirector indev`).
    pub outdev: Endpoint,
    /// The COLO controller's channel (Xen COLO's `notify_dev`), if any.
    #[serde(default)]
    pub notify_dev: Option<Endpoint>,
    /// QEMU `compare_timeout`, ms.
    #[serde(default = "defaults::compare_timeout")]
    pub compare_timeout: u64,
    /// QEMU `expired_scan_cycle`, ms.
    #[serde(default = "defaults::expired_scan_cycle")]
    pub expired_scan_cycle: u64,
    /// QEMU `max_queue_size`, packets per flow and side.
    #[serde(default = "defaults::max_queue_size")]
    pub max_queue_size: u32,
    /// QEMU `vnet_hdr_support`: frames carry the VNET_LEN field.
    #[serde(default)]
    pub vnet_hdr_support: bool,
    /// Bytes all held packets may take before new ones are dropped (counted).
    #[serde(default = "defaults::max_held_bytes")]
    pub max_held_bytes: u64,
    /// Connections tracked before idle ones are evicted.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Bytes of released frames not written yet (the output peer away or slow); past it the
    /// inputs stop being read (back-pressure, nothing dropped).
    #[serde(default = "defaults::output_buffer")]
    pub output_buffer: u64,
    /// Extra classes of packets released uncompared.
    #[serde(default)]
    pub passthrough: Vec<PassthroughRule>,
    /// Comparator settings and the comparators to disable.
    #[serde(default)]
    pub comparators: ComparatorsConfig,
    /// Observe mode: compare and report everything, release primary packets at once and never
    /// request a checkpoint (would-be checkpoints are counted and logged).
    #[serde(default)]
    pub observe: bool,
    /// Write the frames of every mismatch to a pcap file.
    #[serde(default)]
    pub capture: Option<CaptureConfig>,
    /// KVM COLO beacon mode: the primary QEMU's beacon object (and optionally its QMP) that
    /// marks each checkpoint flush and takes checkpoint requests, in place of `notify_dev`.
    #[serde(default)]
    pub beacon: Option<BeaconConfig>,
}

/// Default values, shared with [`TrackerConfig::default`].
pub mod defaults {
    use colo_core::config::TrackerConfig;

    /// 3000 ms.
    pub fn compare_timeout() -> u64 {
        TrackerConfig::default().compare_timeout
    }
    /// 1000 ms.
    pub fn expired_scan_cycle() -> u64 {
        TrackerConfig::default().expired_scan_cycle
    }
    /// 1024 packets.
    pub fn max_queue_size() -> u32 {
        TrackerConfig::default().max_queue_size
    }
    /// 256 MiB.
    pub fn max_held_bytes() -> u64 {
        TrackerConfig::default().max_held_bytes
    }
    /// 65536 connections.
    pub fn max_connections() -> u32 {
        TrackerConfig::default().max_connections
    }
    /// 64 MiB.
    pub fn output_buffer() -> u64 {
        64 << 20
    }
}

impl PipelineConfig {
    /// A pipeline with these sockets and every other setting at its default.
    pub fn new(name: &str, primary_in: Endpoint, secondary_in: Endpoint, outdev: Endpoint) -> Self {
        PipelineConfig {
            name: name.to_string(),
            primary_in,
            secondary_in,
            outdev,
            notify_dev: None,
            compare_timeout: defaults::compare_timeout(),
            expired_scan_cycle: defaults::expired_scan_cycle(),
            max_queue_size: defaults::max_queue_size(),
            vnet_hdr_support: false,
            max_held_bytes: defaults::max_held_bytes(),
            max_connections: defaults::max_connections(),
            output_buffer: defaults::output_buffer(),
            passthrough: Vec::new(),
            comparators: ComparatorsConfig::default(),
            observe: false,
            capture: None,
            beacon: None,
        }
    }

    /// The engine's part of the settings.
    pub fn tracker_config(&self) -> TrackerConfig {
        TrackerConfig {
            compare_timeout: self.compare_timeout,
            expired_scan_cycle: self.expired_scan_cycle,
            max_queue_size: self.max_queue_size,
            max_held_bytes: self.max_held_bytes,
            max_connections: self.max_connections,
            passthrough: self.passthrough.clone(),
            observe: self.observe,
        }
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tracker_config().validate()?;
        if self.output_buffer == 0 {
            return Err(ConfigError {
                field: "output_buffer",
                problem: "must be positive".into(),
            });
        }
        if let Some(capture) = &self.capture {
            capture.validate().map_err(|e| ConfigError {
                field: match e.field {
                    "path" => "capture.path",
                    "max_bytes" => "capture.max_bytes",
                    _ => "capture.max_mismatches",
                },
                problem: e.problem,
            })?;
        }
        if self.name.is_empty() {
            return Err(ConfigError {
                field: "name",
                problem: "must not be empty".into(),
            });
        }
        let mut ends = vec![
            ("primary_in", &self.primary_in),
            ("secondary_in", &self.secondary_in),
            ("outdev", &self.outdev),
        ];
        if let Some(b) = &self.beacon {
            if self.notify_dev.is_some() {
                return Err(ConfigError {
                    field: "beacon",
                    problem: "cannot be combined with notify_dev: in KVM COLO the beacon \
                              marks flushes and takes requests, notify_dev is Xen COLO's channel"
                        .into(),
                });
            }
            ends.extend(b.endpoints());
        }
        beacon::distinct(&ends)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn pipeline(p: &str, s: &str, o: &str) -> PipelineConfig {
        let ep = |s: &str| s.parse::<Endpoint>().expect("valid endpoint");
        PipelineConfig::new("t", ep(p), ep(s), ep(o))
    }

    #[test]
    fn defaults_are_qemus() {
        let c = pipeline("unix-listen:/p", "unix-listen:/s", "unix-listen:/o");
        assert_eq!(
            (
                c.compare_timeout,
                c.expired_scan_cycle,
                c.max_queue_size,
                c.vnet_hdr_support
            ),
            (3000, 1000, 1024, false)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_same_socket_twice_is_refused_but_port_zero_is_not_the_same() {
        let c = pipeline("tcp-listen:h:1", "tcp-listen:h:2", "tcp-listen:h:1");
        assert_eq!(
            c.validate().map_err(|e| e.to_string()),
            Err("outdev: is the same endpoint as primary_in (tcp-listen:h:1)".into())
        );
        let c = pipeline("tcp-listen:h:0", "tcp-listen:h:0", "tcp-listen:h:0");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_beacon_needs_its_own_sockets_and_no_notify_dev() {
        let ep = |s: &str| s.parse::<Endpoint>().expect("valid endpoint");
        let mut c = pipeline("unix-listen:/p", "unix-listen:/s", "unix-listen:/o");
        c.beacon = Some(BeaconConfig {
            primary_in: ep("unix-connect:/b/p"),
            secondary_in: ep("unix-connect:/b/s"),
            outdev: ep("unix-connect:/b/o"),
            qmp: Some(ep("unix-connect:/b/q")),
        });
        assert_eq!(c.validate(), Ok(()));
        let mut same = c.clone();
        if let Some(b) = same.beacon.as_mut() {
            b.qmp = Some(ep("unix-connect:/b/s"));
        }
        assert_eq!(
            same.validate().map_err(|e| e.to_string()),
            Err(
                "beacon.qmp: is the same endpoint as beacon.secondary_in (unix-connect:/b/s)"
                    .into()
            )
        );
        c.notify_dev = Some(ep("unix-listen:/n"));
        assert_eq!(c.validate().map_err(|e| e.field), Err("beacon"));
    }
}
