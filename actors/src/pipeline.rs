//! The settings of one pipeline: one protected NIC, its sockets and its engine settings.
//!
//! Field names and defaults follow QEMU's `colo-compare` properties where QEMU has them, so
//! an operator can carry a QEMU command line over.

use serde::{Deserialize, Serialize};

use colo_core::config::{ConfigError, PassthroughRule, TrackerConfig};
use colo_core::registry::ComparatorsConfig;

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
    /// Bytes of released frames buffered while the output peer is away; past it the inputs
    /// stop being read (back-pressure, nothing dropped).
    #[serde(default = "defaults::output_buffer")]
    pub output_buffer: u64,
    /// Extra classes of packets released uncompared.
    #[serde(default)]
    pub passthrough: Vec<PassthroughRule>,
    /// Comparator settings and the comparators to disable.
    #[serde(default)]
    pub comparators: ComparatorsConfig,
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
        if self.name.is_empty() {
            return Err(ConfigError {
                field: "name",
                problem: "must not be empty".into(),
            });
        }
        let ends = [
            ("primary_in", &self.primary_in),
            ("secondary_in", &self.secondary_in),
            ("outdev", &self.outdev),
        ];
        for (i, (a, ea)) in ends.iter().enumerate() {
            for (b, eb) in &ends[i + 1..] {
                if ea == eb && !ea.is_ephemeral() {
                    return Err(ConfigError {
                        field: b,
                        problem: format!("is the same endpoint as {a} ({ea})"),
                    });
                }
            }
        }
        Ok(())
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
}
