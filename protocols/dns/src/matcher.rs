//! Comparing two packets of a DNS flow: as DNS messages when both are well formed, byte for
//! byte otherwise.
//!
//! Compared as messages, two datagrams are the same when their headers (ID, flags with the
//! rcode, the four counts) are equal, their questions are equal in order, and each record
//! section holds the same records in any order (see [`crate::multiset`]). What only follows
//! from the encoding is not compared: the UDP length and checksum (compression and record
//! order change them) and anything after the datagram (Ethernet padding). The ports are part
//! of the flow key already.

use colo_core::fifo::Matcher;
use colo_core::{Difference, Packet, Verdict};

use crate::message::{self, HEADER_LEN, Message, Section, UDP_HEADER};
use crate::multiset::{self, Lack};

/// The DNS [`Matcher`].
#[derive(Clone, Copy, Debug)]
pub struct DnsMatcher {
    ttl_tolerance: u32,
}

/// The name of the header field byte `i` belongs to; `xor` is that byte of both headers
/// exclusive-ored, to tell the rcode from the other flags.
fn header_field(i: usize, xor: u8) -> &'static str {
    match i {
        0 | 1 => "dns id",
        2 => "dns flags",
        3 if xor & 0x0f != 0 => "dns rcode",
        3 => "dns flags",
        4 | 5 => "dns question count",
        6 | 7 => "dns answer count",
        8 | 9 => "dns authority count",
        _ => "dns additional count",
    }
}

impl DnsMatcher {
    /// A matcher letting record TTLs differ by up to `ttl_tolerance` seconds.
    pub const fn new(ttl_tolerance: u32) -> Self {
        DnsMatcher { ttl_tolerance }
    }

    /// The first difference between two messages, the primary's starting at `base` in its
    /// frame.
    fn messages(&self, base: usize, p: &Message<'_>, s: &Message<'_>) -> Option<Difference> {
        let at = |offset: usize, field: &'static str| {
            Some(Difference {
                offset: base + offset,
                field,
            })
        };
        let header = (0..HEADER_LEN).find(|&i| p.header[i] != s.header[i]);
        if let Some(i) = header {
            return at(i, header_field(i, p.header[i] ^ s.header[i]));
        }
        if let Some((q, _)) = p
            .questions
            .iter()
            .zip(&s.questions)
            .find(|(a, b)| a.bytes != b.bytes)
        {
            return at(q.offset, "dns question");
        }
        for section in Section::ALL {
            let unmatched = multiset::first_unmatched(
                p.section(section),
                s.section(section),
                self.ttl_tolerance,
            );
            if let Some(u) = unmatched {
                return at(
                    u.offset,
                    match u.lack {
                        Lack::Record => section.record_field(),
                        Lack::Ttl => section.ttl_field(),
                    },
                );
            }
        }
        None
    }
}

impl Matcher for DnsMatcher {
    fn compare(&self, primary: &Packet, secondary: &Packet) -> Verdict {
        let parsed = |packet| message::in_packet(packet).and_then(|m| Message::parse(m).ok());
        let l4 = primary.meta.l4 as usize;
        let diff = match (parsed(primary), parsed(secondary)) {
            (Some(p), Some(s)) => self.messages(l4 + UDP_HEADER, &p, &s),
            _ => Difference::between(primary, l4, primary.from_l4(), secondary.from_l4()),
        };
        diff.map_or(Verdict::Same, Verdict::Differ)
    }
}

#[cfg(test)]
mod test {
    use colo_core::{DropReason, Frame, ReleaseReason, Side, Timestamp};
    use proptest::prelude::*;

    use super::*;
    use crate::message::OPT;
    use crate::test_support::{Harness, Msg, P_NET, S_NET, a, name, rr, udp_frame};

    /// Offset of the DNS message in a test frame (Ethernet, IPv4, UDP).
    const DNS: usize = 14 + 20 + 8;
    /// A records for www.example.com, owner compressed to the question's name.
    fn answer(host: u8, ttl: u32) -> Vec<u8> {
        rr(b"\xc0\x0c", 1, ttl, &a(host))
    }
    /// Offset of answer `i` in [`three_answers`]: header, question (17-byte name, type,
    /// class), then 16-byte A records.
    const fn answer_at(i: usize) -> usize {
        HEADER_LEN + 21 + 16 * i
    }

    fn three_answers(order: [u8; 3]) -> Msg {
        Msg {
            answers: order.iter().map(|&h| answer(h, 300)).collect(),
            ..Msg::response("www.example.com")
        }
    }

    #[test]
    fn reordered_answers_are_released() {
        let p = three_answers([1, 2, 3]).frame_on(P_NET);
        let s = three_answers([3, 1, 2]).frame_on(S_NET);
        let mut h = Harness::new();
        assert!(h.primary(p.clone()).events.is_empty());
        let st = h.secondary(s.clone());
        assert_eq!(st.released(), vec![(p.clone(), ReleaseReason::Matched)]);
        assert_eq!(st.dropped(), vec![(Side::Secondary, DropReason::Matched)]);
        assert_eq!(st.checkpoints(), 0);
        assert_eq!(h.matched("dns"), 1);

        // The built-in udp comparator, QEMU's rule, asks for a checkpoint.
        let mut udp = Harness::with_disabled("dns");
        udp.primary(p);
        let m = udp.secondary(s).mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "udp");
    }

    #[test]
    fn a_different_answer_is_a_mismatch_at_that_record() {
        let mut h = Harness::new();
        h.primary(three_answers([1, 2, 3]).frame_on(P_NET));
        let st = h.secondary(three_answers([2, 1, 4]).frame_on(S_NET));
        assert!(st.released().is_empty());
        let m = st.mismatches();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].comparator, "dns");
        assert_eq!(m[0].difference.field, "dns answer record");
        assert_eq!(m[0].difference.offset, DNS + answer_at(2));
        assert_eq!(h.held(), [1, 1]);
    }

    #[test]
    fn a_different_rcode_is_a_mismatch() {
        let p = three_answers([1, 2, 3]);
        let s = Msg {
            flags: p.flags | 2, // SERVFAIL
            ..p.clone()
        };
        let mut h = Harness::new();
        h.primary(p.frame_on(P_NET));
        let m = h.secondary(s.frame_on(S_NET)).mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            ("dns rcode", DNS + 3)
        );
    }

    #[test]
    fn header_fields_are_named() {
        let p = three_answers([1, 2, 3]);
        let cases = [
            (
                Msg {
                    id: p.id ^ 1,
                    ..p.clone()
                },
                "dns id",
                1,
            ),
            (
                Msg {
                    flags: p.flags | 0x0200, // truncated
                    ..p.clone()
                },
                "dns flags",
                2,
            ),
            (
                Msg {
                    answers: p.answers[..2].to_vec(),
                    ..p.clone()
                },
                "dns answer count",
                7,
            ),
        ];
        for (s, field, at) in cases {
            let mut h = Harness::new();
            h.primary(p.frame_on(P_NET));
            let m = h.secondary(s.frame_on(S_NET)).mismatches();
            assert_eq!(m.len(), 1, "{field}");
            assert_eq!(
                (m[0].difference.field, m[0].difference.offset),
                (field, DNS + at)
            );
        }
    }

    #[test]
    fn reordered_authority_and_additional_sections_are_released() {
        let ns = |n: &str, ttl| rr(b"\xc0\x10", 2, ttl, &name(n));
        let glue = |n: &str, host| rr(&name(n), 1, 3600, &a(host));
        let opt = rr(b"\x00", OPT, 0, b"");
        let p = Msg {
            authority: vec![ns("ns1.example.com", 900), ns("ns2.example.com", 900)],
            additional: vec![
                glue("ns1.example.com", 53),
                glue("ns2.example.com", 54),
                opt.clone(),
            ],
            ..three_answers([1, 2, 3])
        };
        let s = Msg {
            authority: vec![p.authority[1].clone(), p.authority[0].clone()],
            additional: vec![opt, p.additional[1].clone(), p.additional[0].clone()],
            ..three_answers([2, 3, 1])
        };
        let mut h = Harness::new();
        let pf = p.frame_on(P_NET);
        h.primary(pf.clone());
        assert_eq!(
            h.secondary(s.frame_on(S_NET)).released(),
            vec![(pf, ReleaseReason::Matched)]
        );

        // A glue address that differs is caught in the additional section.
        let wrong = Msg {
            additional: vec![
                p.additional[0].clone(),
                glue("ns2.example.com", 55),
                p.additional[2].clone(),
            ],
            ..p.clone()
        };
        h.primary(p.frame_on(P_NET));
        let m = h.secondary(wrong.frame_on(S_NET)).mismatches();
        assert_eq!(m[0].difference.field, "dns additional record");
    }

    #[test]
    fn compression_does_not_matter() {
        // The primary compresses the owner names and the CNAME target; the secondary writes
        // every name out.
        let p = Msg {
            answers: vec![
                rr(b"\xc0\x0c", 5, 60, b"\x03web\xc0\x10"),
                rr(b"\x03web\xc0\x10", 1, 60, &a(7)),
            ],
            ..Msg::response("www.example.com")
        };
        let s = Msg {
            answers: vec![
                rr(&name("www.example.com"), 5, 60, &name("web.example.com")),
                rr(&name("web.example.com"), 1, 60, &a(7)),
            ],
            ..Msg::response("www.example.com")
        };
        let mut h = Harness::new();
        let pf = p.frame_on(P_NET);
        h.primary(pf.clone());
        assert_eq!(
            h.secondary(s.frame_on(S_NET)).released(),
            vec![(pf, ReleaseReason::Matched)]
        );

        // A different CNAME target is a different record, however it is written.
        let other = Msg {
            answers: vec![
                rr(&name("www.example.com"), 5, 60, &name("web2.example.com")),
                s.answers[1].clone(),
            ],
            ..s
        };
        h.primary(p.frame_on(P_NET));
        let m = h.secondary(other.frame_on(S_NET)).mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            ("dns answer record", DNS + answer_at(0))
        );
    }

    #[test]
    fn questions_are_compared_byte_for_byte_case_included() {
        let mut h = Harness::new();
        h.primary(three_answers([1, 2, 3]).frame_on(P_NET));
        let s = Msg {
            question: name("WWW.example.com"),
            ..three_answers([1, 2, 3])
        };
        let m = h.secondary(s.frame_on(S_NET)).mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            ("dns question", DNS + HEADER_LEN)
        );
    }

    #[test]
    fn ttls_are_equal_unless_a_tolerance_is_set() {
        let p = Msg {
            answers: vec![answer(1, 300), answer(2, 300)],
            ..Msg::response("www.example.com")
        };
        let s = Msg {
            answers: vec![answer(2, 299), answer(1, 300)],
            ..p.clone()
        };
        let mut strict = Harness::new();
        strict.primary(p.frame_on(P_NET));
        let m = strict.secondary(s.frame_on(S_NET)).mismatches();
        assert_eq!(
            (m[0].difference.field, m[0].difference.offset),
            ("dns answer ttl", DNS + answer_at(1))
        );

        let mut lenient = Harness::with_section("dns", "(ttl_tolerance: 1)");
        let pf = p.frame_on(P_NET);
        lenient.primary(pf.clone());
        assert_eq!(
            lenient.secondary(s.frame_on(S_NET)).released(),
            vec![(pf, ReleaseReason::Matched)]
        );
    }

    #[test]
    fn malformed_messages_fall_back_to_bytes() {
        // A header announcing an answer that is missing.
        let mut bad = Msg::response("www.example.com").encode();
        bad[7] = 1;
        let mut h = Harness::new();
        let p = udp_frame(&bad, P_NET);
        h.primary(p.clone());
        assert_eq!(
            h.secondary(udp_frame(&bad, S_NET)).released(),
            vec![(p, ReleaseReason::Matched)]
        );

        let mut other = bad.clone();
        *other.last_mut().expect("not empty") ^= 1;
        h.primary(udp_frame(&bad, P_NET));
        let m = h.secondary(udp_frame(&other, S_NET)).mismatches();
        assert_eq!(m.len(), 1);
        // Byte for byte, as the udp comparator: the checksum differs first.
        assert_eq!(m[0].difference.field, "udp checksum");

        // Well formed on one side only: byte for byte as well.
        h.checkpoint();
        let good = three_answers([1, 2, 3]);
        let mut trailing = good.encode();
        trailing.push(0);
        h.primary(good.frame_on(P_NET));
        let m = h.secondary(udp_frame(&trailing, S_NET)).mismatches();
        assert_eq!(m[0].difference.field, "udp length");
    }

    #[test]
    fn a_compression_loop_is_compared_byte_for_byte_without_hanging() {
        let mut looped = Msg::response("www.example.com").encode();
        let at = looped.len();
        looped[7] = 1;
        looped.extend([0xc0, u8::try_from(at).expect("small")]);
        looped.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        let mut h = Harness::new();
        let p = udp_frame(&looped, P_NET);
        h.primary(p.clone());
        assert_eq!(
            h.secondary(udp_frame(&looped, S_NET)).released(),
            vec![(p, ReleaseReason::Matched)]
        );
    }

    fn packet(payload: &[u8]) -> Packet {
        Packet::parse(Frame::new(udp_frame(payload, P_NET)), Timestamp::ZERO).expect("comparable")
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic_and_match_themselves(
            a in proptest::collection::vec(any::<u8>(), 0..160),
            b in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let m = DnsMatcher::new(0);
            let (pa, pb) = (packet(&a), packet(&b));
            prop_assert_eq!(m.compare(&pa, &pa), Verdict::Same);
            if let Verdict::Differ(d) = m.compare(&pa, &pb) {
                prop_assert!(d.offset <= pa.len());
            }
            let _ = Message::parse(&a);
        }

        #[test]
        fn any_order_of_the_answers_matches(
            order in Just((1u8..=8).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let hosts: Vec<u8> = (1..=8).collect();
            let msg = |hosts: &[u8]| Msg {
                answers: hosts.iter().map(|&h| answer(h, 300)).collect(),
                ..Msg::response("www.example.com")
            }
            .encode();
            let m = DnsMatcher::new(0);
            prop_assert_eq!(
                m.compare(&packet(&msg(&hosts)), &packet(&msg(&order))),
                Verdict::Same
            );
        }
    }
}
