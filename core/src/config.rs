//! The engine's settings, with QEMU's property names and defaults where QEMU has them.
//!
//! Loading them from a file is the daemon's business; this module only defines them, their
//! defaults and what makes them invalid, so every way of building a tracker agrees.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::packet::PacketMeta;

/// Settings of one tracker (one pipeline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// How long a packet may wait unmatched before a checkpoint is requested, in ms (QEMU
    /// `compare_timeout`, default 3000).
    pub compare_timeout: u64,
    /// Period of the old-packet scan, in ms (QEMU `expired_scan_cycle`, default 1000).
    pub expired_scan_cycle: u64,
    /// Packets per flow and side before a `queue-full` checkpoint request (QEMU
    /// `max_queue_size`, default 1024; as in QEMU a queue holds one more before it counts as
    /// full).
    pub max_queue_size: u32,
    /// Bytes all held packets may take, each charged its DATA plus
    /// [`crate::tracker::PACKET_OVERHEAD`] (and each connection beyond `max_connections`
    /// [`crate::tracker::FLOW_OVERHEAD`]), so that it bounds memory; past it new packets are
    /// dropped and counted (D-LOSS-3). Default 256 MiB.
    pub max_held_bytes: u64,
    /// Connections tracked before idle ones are evicted (D-LOSS-4). Default 65536.
    pub max_connections: u32,
    /// Extra classes of packets released uncompared.
    pub passthrough: Vec<PassthroughRule>,
    /// Observe mode: compare and report everything, but release every primary packet on
    /// arrival and never request a checkpoint; what protection would have done is counted
    /// instead (see [`crate::Counters`]). Fixed for the life of a tracker.
    pub observe: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            compare_timeout: 3000,
            expired_scan_cycle: 1000,
            max_queue_size: 1024,
            max_held_bytes: 256 << 20,
            max_connections: 65536,
            passthrough: Vec::new(),
            observe: false,
        }
    }
}

/// An invalid setting, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl TrackerConfig {
    /// `compare_timeout` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.compare_timeout)
    }

    /// `expired_scan_cycle` as a duration.
    pub fn scan_cycle(&self) -> Duration {
        Duration::from_millis(self.expired_scan_cycle)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field: &'static str, v: u64| {
            if v == 0 {
                Err(ConfigError {
                    field,
                    problem: "must be positive".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("compare_timeout", self.compare_timeout)?;
        positive("expired_scan_cycle", self.expired_scan_cycle)?;
        positive("max_queue_size", u64::from(self.max_queue_size))?;
        positive("max_held_bytes", self.max_held_bytes)?;
        positive("max_connections", u64::from(self.max_connections))?;
        if self.compare_timeout > u64::from(u32::MAX) {
            return Err(ConfigError {
                field: "compare_timeout",
                problem: format!(
                    "{} ms is more than QEMU accepts ({})",
                    self.compare_timeout,
                    u32::MAX
                ),
            });
        }
        if self.expired_scan_cycle > u64::from(u32::MAX) {
            return Err(ConfigError {
                field: "expired_scan_cycle",
                problem: format!(
                    "{} ms is more than QEMU accepts ({})",
                    self.expired_scan_cycle,
                    u32::MAX
                ),
            });
        }
        for (i, rule) in self.passthrough.iter().enumerate() {
            if rule.ethertype.is_none() && rule.protocol.is_none() && rule.port.is_none() {
                return Err(ConfigError {
                    field: "passthrough",
                    problem: format!("rule {i} matches nothing: set ethertype, protocol or port"),
                });
            }
            if rule.port.is_some() && rule.protocol.is_none() {
                return Err(ConfigError {
                    field: "passthrough",
                    problem: format!("rule {i} names a port without a protocol"),
                });
            }
        }
        Ok(())
    }
}

/// A class of packets to release uncompared. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassthroughRule {
    /// EtherType (0x0800 IPv4, 0x86dd IPv6; non-IP frames pass uncompared anyway).
    pub ethertype: Option<u16>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// Source or destination port.
    pub port: Option<u16>,
}

impl PassthroughRule {
    /// Whether a comparable packet falls under this rule.
    pub fn matches(&self, meta: &PacketMeta) -> bool {
        let ethertype = if meta.ipv6 { 0x86dd } else { 0x0800 };
        self.ethertype.is_none_or(|e| e == ethertype)
            && self.protocol.is_none_or(|p| p == meta.key.protocol)
            && self.port.is_none_or(|port| {
                meta.key
                    .ports()
                    .is_some_and(|(s, d)| s == port || d == port)
            })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn defaults_are_qemus() {
        let c = TrackerConfig::default();
        assert_eq!(
            (c.compare_timeout, c.expired_scan_cycle, c.max_queue_size),
            (3000, 1000, 1024)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn zero_is_refused_with_the_field_name() {
        let c = TrackerConfig {
            compare_timeout: 0,
            ..Default::default()
        };
        assert_eq!(
            c.validate().map_err(|e| e.to_string()),
            Err("compare_timeout: must be positive".into())
        );
        let c = TrackerConfig {
            passthrough: vec![PassthroughRule::default()],
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
