//! The IP fallback: every IP packet no other comparator claims, and every IP fragment.
//!
//! QEMU compares "other" protocols over the whole frame, so two GRE packets that differ only
//! in their random IP ID force a checkpoint (T27). Here the IP header is ignored and the
//! packet is compared from the transport position on, like UDP and ICMP (D-IP-1); the
//! addresses and protocol are in the flow key already. Fragments are not reassembled: each one
//! is matched, oldest first, against the other side's fragments of the same address pair and
//! protocol (D-FRAG-1). `strict: true` restores QEMU's whole-frame comparison.

use std::sync::Arc;

use colo_core::fifo::FifoComparator;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Registration};
use serde::Deserialize;

use crate::datagram::{DatagramMatcher, Scope};

/// The `ip` section of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpSettings {
    /// Compare the whole frame, IP header included (QEMU's behaviour), instead of the IP
    /// payload only.
    pub strict: bool,
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: IpSettings = settings(section)?;
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Fallback],
        DatagramMatcher::new(Scope::from_strict(s.strict)),
    )))
}

/// The IP fallback comparator's registration.
pub const IP: Registration = Registration {
    name: "ip",
    summary: "any other IP packet and every IP fragment, equal from the IP payload on, matched oldest first",
    build,
};

inventory::submit!(IP);

#[cfg(test)]
mod test {
    use colo_core::ReleaseReason;

    use crate::test_support::{Harness, IP, Ip, MAC_S};

    const GRE: u8 = 47;
    const S_IP: Ip<'static> = Ip {
        mac: MAC_S,
        id: 999,
        ttl: 30,
        dscp: 8,
        ..IP
    };
    const TUNNELLED: &[u8] = b"\x00\x00\x08\x00tunnelled packet";

    #[test]
    fn t27_gre_with_different_ip_id_is_released() {
        let mut h = Harness::new();
        let p = IP.raw(GRE, TUNNELLED);
        h.primary(p.clone());
        let st = h.secondary(S_IP.raw(GRE, TUNNELLED));
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.matched("ip"), 1);
    }

    #[test]
    fn t27_strict_is_qemus_whole_frame_comparison() {
        let mut h = Harness::with_section("ip", "(strict: true)");
        h.primary(IP.raw(GRE, TUNNELLED));
        let st = h.secondary(Ip { id: 2, ..IP }.raw(GRE, TUNNELLED));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "ip");
        assert_eq!(
            (m[0].difference.offset, m[0].difference.field),
            (14 + 5, "ip id")
        );

        // Identical bytes still match under strict.
        h.checkpoint();
        let p = IP.raw(GRE, TUNNELLED);
        h.primary(p.clone());
        assert_eq!(
            h.secondary(p.clone()).released(),
            vec![(p, ReleaseReason::Matched)]
        );
    }

    #[test]
    fn different_payload_is_a_mismatch() {
        let mut h = Harness::new();
        h.primary(IP.raw(GRE, TUNNELLED));
        let st = h.secondary(S_IP.raw(GRE, b"\x00\x00\x08\x00tunnelled packed"));
        let m = st.mismatches();
        assert_eq!(m[0].difference.offset, 14 + 20 + TUNNELLED.len() - 1);
        assert_eq!(m[0].difference.field, "ip payload");
        assert!(st.released().is_empty());
    }

    #[test]
    fn different_length_is_a_mismatch() {
        let mut h = Harness::new();
        let p = IP.raw(GRE, TUNNELLED);
        h.primary(p.clone());
        let mut longer = TUNNELLED.to_vec();
        longer.push(b'!');
        let m = h.secondary(S_IP.raw(GRE, &longer)).mismatches();
        assert_eq!(
            (m[0].difference.offset, m[0].difference.field),
            (p.len(), "frame length")
        );
    }

    #[test]
    fn lag_of_two_is_matched_in_order() {
        let mut h = Harness::new();
        let (a, b) = (IP.raw(GRE, b"first"), IP.raw(GRE, b"second"));
        h.primary(a.clone());
        h.primary(b.clone());
        let st = h.secondary(S_IP.raw(GRE, b"first"));
        assert_eq!(st.released(), vec![(a, ReleaseReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        let st = h.secondary(S_IP.raw(GRE, b"second"));
        assert_eq!(st.released(), vec![(b, ReleaseReason::Matched)]);
    }

    #[test]
    fn fragments_go_to_the_fallback() {
        // D-FRAG-1: a first fragment of a UDP datagram is not UDP's to compare.
        let frag = Ip {
            more_fragments: true,
            ..IP
        };
        let mut h = Harness::new();
        let p = frag.udp(b"part of a bigger datagram");
        h.primary(p.clone());
        let st = h.secondary(
            Ip {
                more_fragments: true,
                ..S_IP
            }
            .udp(b"part of a bigger datagram"),
        );
        assert_eq!(st.released(), vec![(p, ReleaseReason::Matched)]);
        assert_eq!((h.matched("ip"), h.matched("udp")), (1, 0));

        h.primary(frag.udp(b"another part"));
        let m = h
            .secondary(
                Ip {
                    more_fragments: true,
                    ..S_IP
                }
                .udp(b"another pArt"),
            )
            .mismatches();
        assert_eq!(m[0].difference.field, "ip fragment payload");
    }

    #[test]
    fn ip_options_on_one_side_make_the_frames_differ_in_length() {
        let p = Ip {
            options: &[1, 1, 1, 0],
            ..IP
        }
        .raw(GRE, TUNNELLED);
        let mut h = Harness::new();
        h.primary(p);
        let m = h.secondary(S_IP.raw(GRE, TUNNELLED)).mismatches();
        assert_eq!(m[0].difference.field, "frame length");
        assert_eq!(h.held(), [1, 1]);
    }
}
