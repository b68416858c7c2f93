//! UDP: each datagram compared whole, from the UDP header on, oldest first.
//!
//! QEMU's rule (§6.3): ports, length, checksum and payload must be equal, Ethernet padding
//! included; the IP header is ignored. Matching is FIFO (D-ORDER-1), so a secondary that lags
//! by a few datagrams is not a mismatch. `strict: true` compares the whole frame instead.

use std::sync::Arc;

use colo_core::fifo::FifoComparator;
use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Registration};
use serde::Deserialize;

use crate::datagram::{DatagramMatcher, Scope};

/// The `udp` section of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpSettings {
    /// Compare the whole frame, IP header included, instead of the UDP datagram only.
    pub strict: bool,
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: UdpSettings = settings(section)?;
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Protocol(proto::UDP)],
        DatagramMatcher::new(Scope::from_strict(s.strict)),
    )))
}

/// The UDP comparator's registration.
pub const UDP: Registration = Registration {
    name: "udp",
    summary: "UDP datagrams, equal from the UDP header on (QEMU's rule), matched oldest first",
    build,
};

inventory::submit!(UDP);

#[cfg(test)]
mod test {
    use colo_core::{DropReason, ReleaseReason, Side};

    use crate::test_support::{Harness, IP, Ip, MAC_S};

    /// The secondary's replica: same datagram, different IP ID, TTL, TOS and MAC.
    const S_IP: Ip<'static> = Ip {
        mac: MAC_S,
        id: 777,
        ttl: 17,
        dscp: 46,
        ..IP
    };

    /// Offset of the UDP header.
    const L4: usize = 14 + 20;

    #[test]
    fn t18_same_datagram_is_released_whatever_the_ip_header() {
        let mut h = Harness::new();
        let p = IP.udp(b"abc");
        assert!(h.primary(p.clone()).is_quiet());
        let st = h.secondary(S_IP.udp(b"abc"));
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, DropReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.matched("udp"), 1);
        assert_eq!(h.held(), [0, 0]);
    }

    #[test]
    fn t19_different_payload_is_a_mismatch() {
        let mut h = Harness::new();
        h.primary(IP.udp(b"abc"));
        let st = h.secondary(S_IP.udp(b"abd"));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "udp");
        // The checksum covers the payload, so it is the first byte to differ.
        assert_eq!(m[0].difference.offset, L4 + 6);
        assert_eq!(m[0].difference.field, "udp checksum");
        assert_eq!(h.held(), [1, 1]);
    }

    #[test]
    fn t20_different_length_is_a_mismatch() {
        let mut h = Harness::new();
        h.primary(IP.udp(b"abc"));
        let st = h.secondary(S_IP.udp(b"abcd"));
        assert!(st.released().is_empty());
        assert_eq!(st.mismatches()[0].difference.field, "udp length");
    }

    #[test]
    fn padding_counts_as_in_qemu() {
        // Everything to the end of the frame is compared (§6.3): padding on one side only is a
        // length difference, at the end of the primary's frame.
        let p = IP.udp(b"abc");
        let mut s = S_IP.udp(b"abc");
        s.resize(60, 0);
        let mut h = Harness::new();
        h.primary(p.clone());
        let st = h.secondary(s.clone());
        let m = st.mismatches();
        assert_eq!(m[0].difference.offset, p.len());
        assert_eq!(m[0].difference.field, "frame length");

        let mut p = p;
        p.resize(60, 0);
        let mut h = Harness::new();
        h.primary(p.clone());
        assert_eq!(h.secondary(s).released(), vec![(p, ReleaseReason::Matched)]);
    }

    #[test]
    fn ip_options_on_one_side_make_the_frames_differ_in_length() {
        let p = Ip {
            options: &[1, 1, 1, 0],
            ..IP
        }
        .udp(b"abc");
        let mut h = Harness::new();
        h.primary(p);
        let m = h.secondary(S_IP.udp(b"abc")).mismatches();
        assert_eq!(m[0].difference.field, "frame length");
        assert_eq!(h.held(), [1, 1]);
    }

    #[test]
    fn t21_lagging_secondary_is_matched_in_order() {
        let mut h = Harness::new();
        let (u1, u2) = (IP.udp(b"one"), IP.udp(b"two"));
        h.primary(u1.clone());
        h.primary(u2.clone());
        let st = h.secondary(S_IP.udp(b"one"));
        assert_eq!(st.released(), vec![(u1, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(S_IP.udp(b"two"));
        assert_eq!(st.released(), vec![(u2, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
    }

    #[test]
    fn t22_flush_releases_oldest_first() {
        let mut h = Harness::new();
        let frames: Vec<_> = [b"u1", b"u2", b"u3"].iter().map(|p| IP.udp(*p)).collect();
        for f in &frames {
            h.primary(f.clone());
        }
        let st = h.checkpoint();
        let expected: Vec<_> = frames
            .into_iter()
            .map(|f| (f, ReleaseReason::CheckpointFlush))
            .collect();
        assert_eq!(st.released(), expected);
    }

    #[test]
    fn t23_surplus_secondary_stays_while_a_later_one_matches() {
        let mut h = Harness::new();
        h.secondary(S_IP.udp(b"extra"));
        h.secondary(S_IP.udp(b"match"));
        let p = IP.udp(b"match");
        let st = h.primary(p.clone());
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.held(), [0, 1]);
    }

    #[test]
    fn t24_duplicate_primary_waits_for_its_own_secondary() {
        let mut h = Harness::new();
        let p = IP.udp(b"dup");
        h.primary(p.clone());
        h.primary(p.clone());
        let st = h.secondary(S_IP.udp(b"dup"));
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(h.held(), [1, 0]);
    }

    #[test]
    fn strict_compares_the_ip_header_too() {
        let mut h = Harness::with_section("udp", "(strict: true)");
        h.primary(IP.udp(b"abc"));
        let st = h.secondary(Ip { id: 2, ..IP }.udp(b"abc"));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m[0].difference.field, "ip id");
        // The IDs 1 and 2 differ in their low byte.
        assert_eq!(m[0].difference.offset, 14 + 5);

        let p = IP.udp(b"abc");
        h.checkpoint();
        h.primary(p.clone());
        assert_eq!(
            h.secondary(IP.udp(b"abc")).released(),
            vec![(p, ReleaseReason::Matched)]
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let value: ron::Value = ron::from_str("(strct: true)").expect("ron");
        let config = colo_core::registry::ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("udp".to_string(), value)].into(),
        };
        let err = colo_core::Registry::build_from(&crate::BUILT_IN, &config)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("strct"), "{err}");
    }
}
