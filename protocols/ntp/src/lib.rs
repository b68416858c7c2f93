//! colo-compare comparator plugin for NTP (UDP port 123).
//!
//! Two replicas answering the same NTP request never stamp the reply with the same receive and
//! transmit time, so the byte-wise UDP rule turns every reply of a guest NTP server into a
//! checkpoint. This comparator reads server replies (mode 4) field by field (RFC 5905 §7.3):
//! - the reference, receive and transmit timestamps may differ by up to `tolerance_ms`
//!   (default 5 ms), compared as 64-bit NTP fixed point across the era wrap;
//! - the origin timestamp echoes the client's transmit timestamp and must be equal, as must
//!   leap indicator, version, mode, stratum, poll, precision, root delay, root dispersion and
//!   reference id;
//! - extension fields and a MAC beyond the 48-byte header, the UDP ports and length, and
//!   anything after the datagram (Ethernet padding) must be equal byte for byte;
//! - the UDP checksum is not compared: it covers the timestamps, so it differs whenever they do.
//!
//! Everything else on port 123 (client requests, symmetric and broadcast modes, datagrams too
//! short to be NTP) is compared byte for byte from the UDP header on, like the built-in `udp`
//! comparator. A mismatch names the NTP field ("ntp transmit timestamp", ...) and its offset.
//!
//! The claim on UDP port 123 is more specific than `udp`'s claim on all of UDP, so linking this
//! crate (`use colo_ntp as _;`) is enough to take those flows over. Settings, in a pipeline's
//! `comparators` section: `settings: { "ntp": (tolerance_ms: 5) }`.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod header;
pub mod matcher;
#[cfg(test)]
mod test_support;
pub mod time;

use std::sync::Arc;

use colo_core::fifo::FifoComparator;
use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Registration};
use serde::Deserialize;

use crate::matcher::NtpMatcher;
use crate::time::NtpSpan;

/// The UDP port of NTP.
pub const PORT: u16 = 123;

/// The `ntp` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtpSettings {
    /// How far apart, in milliseconds, the two replies' reference, receive and transmit
    /// timestamps may be.
    pub tolerance_ms: u64,
}

impl Default for NtpSettings {
    fn default() -> Self {
        NtpSettings { tolerance_ms: 5 }
    }
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: NtpSettings = settings(section)?;
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Port {
            protocol: proto::UDP,
            port: PORT,
        }],
        NtpMatcher::new(NtpSpan::from_millis(s.tolerance_ms)),
    )))
}

/// The NTP comparator's registration.
pub const NTP: Registration = Registration {
    name: "ntp",
    summary: "NTP server replies field by field, timestamps within tolerance_ms (default 5); other NTP byte for byte",
    build,
};

inventory::submit!(NTP);

#[cfg(test)]
mod test {
    use colo_core::registry::ComparatorsConfig;
    use colo_core::{FlowKey, L4Id, Registry};

    use super::*;

    fn udp_key(src: u16, dst: u16) -> FlowKey {
        FlowKey {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            protocol: proto::UDP,
            l4: L4Id::Ports { src, dst },
            vlan: None,
            inner_vlan: None,
            fragment: false,
        }
    }

    fn registry(config: &ComparatorsConfig) -> Registry {
        let all: Vec<&Registration> = std::iter::once(&NTP)
            .chain(colo_protocols::BUILT_IN)
            .collect();
        Registry::build_from(&all, config).expect("registry")
    }

    fn chosen(r: &Registry, key: &FlowKey) -> Option<&'static str> {
        r.select(key).map(|i| r.entries()[i].name)
    }

    #[test]
    fn port_123_beats_the_built_in_udp_claim() {
        let r = registry(&ComparatorsConfig::default());
        assert_eq!(chosen(&r, &udp_key(123, 40000)), Some("ntp"));
        assert_eq!(chosen(&r, &udp_key(40000, 123)), Some("ntp"));
        assert_eq!(chosen(&r, &udp_key(40000, 124)), Some("udp"));
        let fragment = FlowKey {
            fragment: true,
            l4: L4Id::None,
            ..udp_key(123, 40000)
        };
        assert_eq!(chosen(&r, &fragment), Some("ip"));
    }

    #[test]
    fn disabled_hands_port_123_back_to_udp() {
        let config = ComparatorsConfig {
            disabled: vec!["ntp".into()],
            ..Default::default()
        };
        let r = registry(&config);
        assert_eq!(chosen(&r, &udp_key(123, 40000)), Some("udp"));
    }

    #[test]
    fn settings_default_and_parse() {
        assert_eq!(
            settings::<NtpSettings>(None),
            Ok(NtpSettings { tolerance_ms: 5 })
        );
        let v: ron::Value = ron::from_str("(tolerance_ms: 50)").expect("ron");
        assert_eq!(
            settings::<NtpSettings>(Some(&v)),
            Ok(NtpSettings { tolerance_ms: 50 })
        );
    }

    #[test]
    fn unknown_settings_are_refused_naming_the_field() {
        let v: ron::Value = ron::from_str("(tolerance: 5)").expect("ron");
        let config = ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("ntp".to_string(), v)].into(),
        };
        let err = Registry::build_from(&[&NTP], &config)
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.starts_with("comparator \"ntp\": "), "{text}");
        assert!(text.contains("tolerance"), "{text}");
    }
}
