//! colo-compare comparator plugin for DNS over UDP (port 53).
//!
//! A DNS server rotates the order of the records in an answer (round-robin), and two replicas
//! need not rotate alike; they may also compress names differently. The byte-wise UDP rule
//! turns each such reply into a checkpoint although every client reads the same answer. This
//! comparator reads both datagrams as DNS messages (RFC 1035) and finds them the same when
//! - the headers are equal: ID, flags including the rcode, and the four counts;
//! - the questions are equal, in order, names compared byte for byte once decompressed (so
//!   letter case counts: a client that randomises case expects it echoed exactly);
//! - the answer, authority and additional sections each hold the same records in any order:
//!   owner name, type, class, TTL and data, with the names inside NS, CNAME, PTR, MX, SOA and
//!   SRV data decompressed and every other type's data compared as raw bytes. TTLs may differ
//!   by `ttl_tolerance` seconds (default 0); the EDNS OPT record's TTL, which carries flags,
//!   is always exact.
//!
//! The UDP length and checksum are not compared (compression and record order change them),
//! nor is anything after the datagram (Ethernet padding). A datagram that is not a well formed
//! DNS message on either side (truncated, bytes after the last record, a compression pointer
//! that does not point backwards, a name over 255 bytes) is compared byte for byte from the
//! UDP header on, like the built-in `udp` comparator does. Reading never panics and never
//! loops. A mismatch names the field ("dns rcode", "dns answer record", ...) and its offset.
//!
//! The claim on UDP port 53 is more specific than `udp`'s claim on all of UDP, so linking this
//! crate (`use colo_dns as _;`) is enough to take those flows over. Settings, in a pipeline's
//! `comparators` section: `settings: { "dns": (ttl_tolerance: 0) }`. DNS over TCP stays with
//! the `tcp` comparator.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod matcher;
pub mod message;
pub mod multiset;
pub mod name;
pub mod rdata;
pub mod reader;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use colo_core::fifo::FifoComparator;
use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Registration};
use serde::Deserialize;

use crate::matcher::DnsMatcher;

/// The UDP port of DNS.
pub const PORT: u16 = 53;

/// The `dns` section of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSettings {
    /// How many seconds the TTLs of two corresponding records may differ by.
    pub ttl_tolerance: u32,
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: DnsSettings = settings(section)?;
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Port {
            protocol: proto::UDP,
            port: PORT,
        }],
        DnsMatcher::new(s.ttl_tolerance),
    )))
}

/// The DNS comparator's registration.
pub const DNS: Registration = Registration {
    name: "dns",
    summary: "DNS messages over UDP: header and question equal, each record section equal in any order; malformed ones byte for byte",
    build,
};

inventory::submit!(DNS);

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

    #[test]
    fn port_53_beats_the_built_in_udp_claim() {
        let all: Vec<&Registration> = std::iter::once(&DNS)
            .chain(colo_protocols::BUILT_IN)
            .collect();
        let r = Registry::build_from(&all, &ComparatorsConfig::default()).expect("registry");
        let chosen = |k: FlowKey| r.select(&k).map(|i| r.entries()[i].name);
        assert_eq!(chosen(udp_key(53, 40000)), Some("dns"));
        assert_eq!(chosen(udp_key(40000, 53)), Some("dns"));
        assert_eq!(chosen(udp_key(5353, 5353)), Some("udp"));
        let tcp = FlowKey {
            protocol: proto::TCP,
            ..udp_key(53, 40000)
        };
        assert_eq!(chosen(tcp), Some("tcp"));
    }

    #[test]
    fn settings_are_read_and_unknown_ones_refused() {
        let v: ron::Value = ron::from_str("(ttl_tolerance: 2)").expect("ron");
        assert_eq!(
            settings::<DnsSettings>(Some(&v)),
            Ok(DnsSettings { ttl_tolerance: 2 })
        );
        assert_eq!(settings::<DnsSettings>(None), Ok(DnsSettings::default()));
        let v: ron::Value = ron::from_str("(ttl: 2)").expect("ron");
        let config = ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("dns".to_string(), v)].into(),
        };
        let err = Registry::build_from(&[&DNS], &config)
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.starts_with("comparator \"dns\": "), "{text}");
        assert!(text.contains("ttl"), "{text}");
    }
}
