//! Comparing two packets of an NTP flow: server replies field by field, anything else byte
//! for byte.

use colo_core::comparator::first_difference;
use colo_core::fifo::Matcher;
use colo_core::{Difference, Packet, Verdict};

use crate::header::{EXTENSIONS, FIELDS, Field, HEADER_LEN, Reply, Rule, UDP_HEADER};
use crate::time::NtpSpan;

/// The NTP [`Matcher`].
#[derive(Clone, Copy, Debug)]
pub struct NtpMatcher {
    tolerance: NtpSpan,
}

impl NtpMatcher {
    /// A matcher letting reply timestamps differ by up to `tolerance`.
    pub const fn new(tolerance: NtpSpan) -> Self {
        NtpMatcher { tolerance }
    }

    fn replies(&self, primary: &Packet, p: &Reply<'_>, s: &Reply<'_>) -> Option<Difference> {
        let l4 = primary.meta.l4 as usize;
        // The checksum (bytes 6..8) is skipped: it covers the timestamps.
        Difference::between(
            primary,
            l4,
            p.udp_ports_and_length(),
            s.udp_ports_and_length(),
        )
        .or_else(|| {
            FIELDS
                .iter()
                .find_map(|f| self.field(l4 + UDP_HEADER, f, p, s))
        })
        .or_else(|| {
            let base = l4 + UDP_HEADER + HEADER_LEN;
            let diff = Difference::between(primary, base, p.after_header(), s.after_header())?;
            Some(if diff.offset < l4 + p.udp_len() {
                Difference {
                    field: EXTENSIONS,
                    ..diff
                }
            } else {
                diff
            })
        })
    }

    /// The difference in field `f` (the NTP header starting at `base` in the primary frame).
    fn field(&self, base: usize, f: &Field, p: &Reply<'_>, s: &Reply<'_>) -> Option<Difference> {
        let (a, b) = (p.field(f), s.field(f));
        let same = match f.rule {
            Rule::Equal => a == b,
            Rule::WithinTolerance => match (p.time(f), s.time(f)) {
                (Some(x), Some(y)) => x.distance(y) <= self.tolerance,
                _ => false,
            },
        };
        if same {
            return None;
        }
        Some(Difference {
            offset: base + f.start + first_difference(a, b).unwrap_or(0),
            field: f.name,
        })
    }
}

impl Matcher for NtpMatcher {
    fn compare(&self, primary: &Packet, secondary: &Packet) -> Verdict {
        let diff = match (Reply::find(primary), Reply::find(secondary)) {
            (Some(p), Some(s)) => self.replies(primary, &p, &s),
            _ => Difference::between(
                primary,
                primary.meta.l4 as usize,
                primary.from_l4(),
                secondary.from_l4(),
            ),
        };
        diff.map_or(Verdict::Same, Verdict::Differ)
    }
}

#[cfg(test)]
mod test {
    use colo_core::{DropReason, Frame, ReleaseReason, Side, Timestamp};
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{Harness, MS, Ntp, P_NET, REPLY, S_NET, SECOND, udp_frame};

    /// Offset of the NTP header in a test frame (Ethernet, IPv4, UDP).
    const NTP: usize = 14 + 20 + 8;

    #[test]
    fn timestamps_within_tolerance_are_released() {
        let p = REPLY.frame();
        let s = Ntp {
            reference: REPLY.reference + 2 * MS,
            receive: REPLY.receive + 3 * MS,
            transmit: REPLY.transmit - 4 * MS,
            ..REPLY
        }
        .frame_on(S_NET);
        let mut h = Harness::new();
        assert!(h.primary(p.clone()).events.is_empty());
        let st = h.secondary(s.clone());
        assert_eq!(st.released(), vec![(p.clone(), ReleaseReason::Matched)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, DropReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.matched("ntp"), 1);

        // The same pair under the built-in udp comparator, as QEMU compares it: a checkpoint.
        let mut udp = Harness::with_disabled("ntp");
        udp.primary(p);
        let m = udp.secondary(s).mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "udp");
    }

    #[test]
    fn transmit_out_of_tolerance_is_a_mismatch_naming_the_field() {
        let mut h = Harness::new();
        h.primary(REPLY.frame());
        let s = Ntp {
            transmit: REPLY.transmit + 6 * MS,
            ..REPLY
        };
        let st = h.secondary(s.frame_on(S_NET));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "ntp");
        assert_eq!(m[0].difference.field, "ntp transmit timestamp");
        // 6 ms is 0x0189374a units: the fraction 0x40000000 becomes 0x4189374a, so the
        // fraction's first byte is the first to change.
        assert_eq!(m[0].difference.offset, NTP + 40 + 4);
        assert_eq!(h.held(), [1, 1]);
    }

    #[test]
    fn each_timestamp_is_checked() {
        for (s, field, at) in [
            (
                Ntp {
                    reference: REPLY.reference + SECOND,
                    ..REPLY
                },
                "ntp reference timestamp",
                16 + 3,
            ),
            (
                Ntp {
                    receive: REPLY.receive - SECOND,
                    ..REPLY
                },
                "ntp receive timestamp",
                32 + 3,
            ),
            (
                // Within any tolerance, but the origin must be echoed exactly.
                Ntp {
                    origin: REPLY.origin + 1,
                    ..REPLY
                },
                "ntp origin timestamp",
                24 + 7,
            ),
        ] {
            let mut h = Harness::new();
            h.primary(REPLY.frame());
            let m = h.secondary(s.frame_on(S_NET)).mismatches();
            assert_eq!(m.len(), 1, "{field}");
            assert_eq!(m[0].difference.field, field);
            assert_eq!(m[0].difference.offset, NTP + at, "{field}");
        }
    }

    #[test]
    fn header_fields_must_be_equal() {
        let cases = [
            (
                Ntp {
                    stratum: 3,
                    ..REPLY
                },
                "ntp stratum",
                1,
            ),
            (
                Ntp {
                    li_vn_mode: 0x64, // leap second pending
                    ..REPLY
                },
                "ntp leap, version or mode",
                0,
            ),
            (
                Ntp {
                    root_dispersion: REPLY.root_dispersion + 1,
                    ..REPLY
                },
                "ntp root dispersion",
                11,
            ),
            (
                Ntp {
                    reference_id: *b"GPS\0",
                    ..REPLY
                },
                "ntp reference id",
                12,
            ),
        ];
        for (s, field, at) in cases {
            let mut h = Harness::new();
            h.primary(REPLY.frame());
            let st = h.secondary(s.frame_on(S_NET));
            assert!(st.released().is_empty(), "{field}");
            let m = st.mismatches();
            assert_eq!(m.len(), 1, "{field}");
            assert_eq!(
                (m[0].difference.field, m[0].difference.offset),
                (field, NTP + at)
            );
        }
    }

    #[test]
    fn the_tolerance_comes_from_the_settings() {
        let s = Ntp {
            transmit: REPLY.transmit + 30 * MS,
            ..REPLY
        };
        let mut wide = Harness::with_section("ntp", "(tolerance_ms: 50)");
        let p = REPLY.frame();
        wide.primary(p.clone());
        assert_eq!(
            wide.secondary(s.frame_on(S_NET)).released(),
            vec![(p, ReleaseReason::Matched)]
        );
        wide.primary(REPLY.frame());
        let far = Ntp {
            transmit: REPLY.transmit + 60 * MS,
            ..REPLY
        };
        assert_eq!(wide.secondary(far.frame_on(S_NET)).checkpoints(), 1);

        let mut narrow = Harness::new();
        narrow.primary(REPLY.frame());
        assert_eq!(narrow.secondary(s.frame_on(S_NET)).checkpoints(), 1);
    }

    #[test]
    fn timestamps_either_side_of_the_era_wrap_are_close() {
        let p = Ntp {
            transmit: u64::MAX - MS,
            ..REPLY
        };
        let s = Ntp {
            transmit: MS,
            ..REPLY
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        assert_eq!(
            h.secondary(s.frame_on(S_NET)).released(),
            vec![(p.frame(), ReleaseReason::Matched)]
        );
    }

    #[test]
    fn client_requests_are_compared_byte_for_byte() {
        let request = Ntp {
            li_vn_mode: 0x23, // version 4, mode 3 (client)
            transmit: REPLY.transmit,
            ..Ntp::ZERO
        };
        let mut h = Harness::new();
        let p = request.frame();
        h.primary(p.clone());
        assert_eq!(
            h.secondary(request.frame_on(S_NET)).released(),
            vec![(p, ReleaseReason::Matched)]
        );

        h.primary(request.frame());
        let moved = Ntp {
            transmit: REPLY.transmit + 1,
            ..request
        };
        let m = h.secondary(moved.frame_on(S_NET)).mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "ntp");
        // Byte for byte, the checksum is the first thing to differ.
        assert_eq!(m[0].difference.field, "udp checksum");
    }

    #[test]
    fn extensions_are_compared_byte_for_byte() {
        let ext = [0x01, 0x04, 0x00, 0x08, 0xaa, 0xbb, 0xcc, 0xdd];
        let p = Ntp {
            extensions: &ext,
            ..REPLY
        };
        let s = Ntp {
            transmit: REPLY.transmit + MS,
            extensions: &ext,
            ..REPLY
        };
        let mut h = Harness::new();
        h.primary(p.frame());
        assert_eq!(
            h.secondary(s.frame_on(S_NET)).released(),
            vec![(p.frame(), ReleaseReason::Matched)]
        );

        let other = [0x01, 0x04, 0x00, 0x08, 0xaa, 0xbb, 0xcc, 0xde];
        h.primary(p.frame());
        let m = h
            .secondary(
                Ntp {
                    extensions: &other,
                    ..s
                }
                .frame_on(S_NET),
            )
            .mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            (EXTENSIONS, NTP + 48 + 7)
        );

        // One side without the extension: the UDP length differs first.
        h.checkpoint();
        h.primary(p.frame());
        let m = h.secondary(REPLY.frame_on(S_NET)).mismatches();
        assert_eq!(m[0].difference.field, "udp length");
    }

    #[test]
    fn padding_is_compared_as_the_udp_comparator_does() {
        let p = REPLY.frame();
        let mut s = REPLY.frame_on(S_NET);
        s.push(0);
        let mut h = Harness::new();
        h.primary(p.clone());
        let m = h.secondary(s).mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            ("frame length", p.len())
        );
    }

    #[test]
    fn short_datagrams_fall_back_to_bytes() {
        let short = [0x24u8; 20];
        let mut h = Harness::new();
        let p = udp_frame(&short, P_NET);
        h.primary(p.clone());
        assert_eq!(
            h.secondary(udp_frame(&short, S_NET)).released(),
            vec![(p, ReleaseReason::Matched)]
        );
        let mut other = short;
        other[19] = 0;
        h.primary(udp_frame(&short, P_NET));
        let m = h.secondary(udp_frame(&other, S_NET)).mismatches();
        assert_eq!(m[0].difference.field, "udp checksum");
    }

    #[test]
    fn a_reply_against_a_non_reply_is_compared_byte_for_byte() {
        let mut h = Harness::new();
        h.primary(REPLY.frame());
        let client = Ntp {
            li_vn_mode: 0x23,
            ..REPLY
        };
        let m = h.secondary(client.frame_on(S_NET)).mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].difference.field, "udp checksum");
    }

    #[test]
    fn a_udp_length_beyond_the_ip_payload_falls_back_to_bytes() {
        let mut p = REPLY.frame();
        // UDP length 200 in a datagram of 56 bytes.
        p[14 + 20 + 4] = 0;
        p[14 + 20 + 5] = 200;
        let matcher = NtpMatcher::new(NtpSpan::from_millis(5));
        let packet =
            |data: Vec<u8>| Packet::parse(Frame::new(data), Timestamp::ZERO).expect("comparable");
        let s = Ntp {
            transmit: REPLY.transmit + MS,
            ..REPLY
        }
        .frame();
        let mut s_bad = s.clone();
        s_bad[14 + 20 + 4] = 0;
        s_bad[14 + 20 + 5] = 200;
        assert!(matches!(
            matcher.compare(&packet(p.clone()), &packet(s_bad)),
            Verdict::Differ(_)
        ));
        assert_eq!(
            matcher.compare(&packet(p.clone()), &packet(p)),
            Verdict::Same
        );
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic_and_match_themselves(
            a in proptest::collection::vec(any::<u8>(), 0..120),
            b in proptest::collection::vec(any::<u8>(), 0..120),
            mode in 0u8..8,
        ) {
            let matcher = NtpMatcher::new(NtpSpan::from_millis(5));
            let with_mode = |mut v: Vec<u8>| {
                if let Some(first) = v.first_mut() {
                    *first = (*first & !7) | mode;
                }
                v
            };
            let packet = |payload: &[u8]| {
                Packet::parse(
                    Frame::new(udp_frame(payload, P_NET)),
                    Timestamp::ZERO,
                )
                .expect("comparable")
            };
            let (pa, pb) = (packet(&with_mode(a)), packet(&with_mode(b)));
            prop_assert_eq!(matcher.compare(&pa, &pa), Verdict::Same);
            if let Verdict::Differ(d) = matcher.compare(&pa, &pb) {
                prop_assert!(d.offset <= pa.len());
            }
        }
    }
}
