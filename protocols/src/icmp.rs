//! ICMP and ICMPv6: each message compared whole, from the ICMP header on, oldest first.
//!
//! QEMU's rule (§6.3): type, code, checksum, identifier, sequence and payload must be equal,
//! Ethernet padding included; the IP header is ignored. Echo identifiers are not part of the
//! flow key, so all ICMP between two addresses shares one FIFO (D-ORDER-1), and a lagging
//! secondary is not a mismatch. ICMPv6 is compared the same way (D-L3-1). `strict: true`
//! compares the whole frame instead.

use std::sync::Arc;

use colo_core::fifo::FifoComparator;
use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Registration};
use serde::Deserialize;

use crate::datagram::{DatagramMatcher, Scope};

/// The `icmp` section of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcmpSettings {
    /// Compare the whole frame, IP header included, instead of the ICMP message only.
    pub strict: bool,
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: IcmpSettings = settings(section)?;
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Protocol(proto::ICMP), Claim::Protocol(proto::ICMPV6)],
        DatagramMatcher::new(Scope::from_strict(s.strict)),
    )))
}

/// The ICMP comparator's registration.
pub const ICMP: Registration = Registration {
    name: "icmp",
    summary: "ICMP and ICMPv6 messages, equal from the ICMP header on (QEMU's rule), matched oldest first",
    build,
};

inventory::submit!(ICMP);

#[cfg(test)]
mod test {
    use colo_core::ReleaseReason;

    use crate::test_support::{Harness, IP, Ip, MAC_S};

    const S_IP: Ip<'static> = Ip {
        mac: MAC_S,
        id: 4242,
        ttl: 9,
        ..IP
    };

    #[test]
    fn t25_same_echo_is_released_whatever_the_ip_id() {
        let mut h = Harness::new();
        let p = IP.ping(1, 1, b"ping");
        h.primary(p.clone());
        let st = h.secondary(S_IP.ping(1, 1, b"ping"));
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.matched("icmp"), 1);
    }

    #[test]
    fn t25_different_echo_id_is_a_mismatch() {
        let mut h = Harness::new();
        h.primary(IP.ping(1, 1, b"ping"));
        let st = h.secondary(S_IP.ping(2, 1, b"ping"));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "icmp");
        // The checksum covers the id, so it differs first.
        assert_eq!(m[0].difference.field, "icmp checksum");
    }

    #[test]
    fn different_length_is_a_mismatch() {
        let mut h = Harness::new();
        let p = IP.ping(1, 1, b"ping");
        h.primary(p.clone());
        let st = h.secondary(S_IP.ping(1, 1, b"ping!"));
        assert_eq!(st.checkpoints(), 1);
        assert!(st.released().is_empty());
        // Equal up to the primary's end: the difference is the length itself.
        let mut h = Harness::new();
        let mut s = S_IP.ping(1, 1, b"ping");
        s.push(0);
        h.primary(p.clone());
        let m = h.secondary(s).mismatches();
        assert_eq!(
            (m[0].difference.offset, m[0].difference.field),
            (p.len(), "frame length")
        );
    }

    #[test]
    fn t26_lag_of_two_is_not_a_mismatch() {
        let mut h = Harness::new();
        let (p1, p2) = (IP.ping(1, 1, b"x"), IP.ping(1, 2, b"x"));
        h.primary(p1.clone());
        h.primary(p2.clone());
        let st = h.secondary(S_IP.ping(1, 1, b"x"));
        assert_eq!(st.released(), vec![(p1, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(S_IP.ping(1, 2, b"x"));
        assert_eq!(st.released(), vec![(p2, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn icmpv6_is_compared_too() {
        let mut h = Harness::new();
        let p = IP.ping6(7, 1, b"six");
        h.primary(p.clone());
        let st = h.secondary(Ip { ttl: 1, ..S_IP }.ping6(7, 1, b"six"));
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(h.matched("icmp"), 1);
        h.primary(IP.ping6(7, 2, b"six"));
        assert_eq!(h.secondary(S_IP.ping6(7, 2, b"sox")).checkpoints(), 1);
    }

    #[test]
    fn strict_compares_the_whole_frame() {
        let mut h = Harness::with_section("icmp", "(strict: true)");
        h.primary(IP.ping(1, 1, b"ping"));
        let m = h
            .secondary(Ip { mac: MAC_S, ..IP }.ping(1, 1, b"ping"))
            .mismatches();
        assert_eq!(m[0].difference.field, "ethernet source");
        // The MACs differ in their last byte.
        assert_eq!(m[0].difference.offset, 11);
    }
}
