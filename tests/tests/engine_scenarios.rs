//! Spec §11 scenarios against the sans-IO tracker, with the built-in comparators linked and
//! time passed in. Where QEMU's behaviour is a quirk (Q), the test asserts the stance of
//! `decisions.md`; each test is named after its scenario id.

use std::sync::Arc;

use colo_core::registry::ComparatorsConfig;
use colo_core::{
    CheckpointReason, DropReason as D, Frame, Registry, ReleaseReason as R, Side, TrackerConfig,
    Uncompared,
};
use colo_protocols as _;
use colo_tests::frames::{
    GRE, MIN_ETHERNET, Net, TCP, Tcp, Udp, arp, fill, icmp_echo, ip_raw, tcp, udp,
};
use colo_tests::scenario::{Cp, Scenario};

const P: Side = Side::Primary;
const S: Side = Side::Secondary;

fn registry_with(config: &ComparatorsConfig) -> Arc<Registry> {
    Arc::new(Registry::build(config).expect("the built-in comparators build"))
}

fn registry() -> Arc<Registry> {
    registry_with(&Default::default())
}

fn scenario() -> Scenario {
    Scenario::new(registry(), TrackerConfig::default())
}

fn scenario_with(config: TrackerConfig) -> Scenario {
    Scenario::new(registry(), config)
}

/// Stream content by sequence number, so that any segmentation of one range carries the
/// same bytes and a misplaced segment does not.
fn stream(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let at = seq.wrapping_add(u32::try_from(i).expect("short payload"));
            b'a' + u8::try_from(at % 26).expect("below 26")
        })
        .collect()
}

/// A data segment on the default flow with stream content.
fn seg(net: &Net, seq: u32, len: usize, ack: u32) -> Frame {
    tcp(net, &Tcp::data(seq, ack, stream(seq, len)))
}

fn mismatch(reason: &CheckpointReason) -> &colo_core::Mismatch {
    match reason {
        CheckpointReason::Mismatch(m) => m,
        other => panic!("expected a mismatch, got {other}"),
    }
}

// --- T01: identical TCP, with the IPv6 and VLAN twins (D-L3-1) ---

fn identical_tcp_released(net: &Net) {
    let mut s = scenario();
    let p = seg(net, 1000, 100, 5000);
    s.primary(&p).expect_nothing().expect_held(1, 0);
    s.secondary(&p)
        .expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[])
        .expect_dropped(&[(S, D::Matched)])
        .expect_held(0, 0);
    s.checkpoint().expect_nothing();
}

#[test]
fn t01_identical_tcp_released() {
    identical_tcp_released(&Net::default());
}

#[test]
fn t01_identical_tcp_released_ipv6() {
    identical_tcp_released(&Net::v6());
}

#[test]
fn t01_identical_tcp_released_vlan() {
    identical_tcp_released(&Net::vlan(5));
}

#[test]
fn t01_vlan_id_is_part_of_the_flow() {
    let mut s = scenario();
    let p = seg(&Net::vlan(5), 1000, 100, 5000);
    let other_vlan = seg(&Net::vlan(6), 1000, 100, 5000);
    s.primary(&p).secondary(&other_vlan).expect_nothing();
    s.expect_held(1, 1);
    assert_eq!(s.tracker().flows().len(), 2, "one flow per VLAN id");
}

// --- T02: everything but the payload may differ ---

#[test]
fn t02_tcp_header_and_ip_noise_ignored() {
    let base = Net::default();
    let seg_p = Tcp {
        timestamp: Some((100, 200)),
        ..Tcp::data(1000, 5000, stream(1000, 100))
    };
    let rows: [(&str, Net, Tcp); 8] = [
        (
            "timestamp option values",
            base.clone(),
            Tcp {
                timestamp: Some((7100, 7200)),
                ..seg_p.clone()
            },
        ),
        (
            "no timestamp option",
            base.clone(),
            Tcp {
                timestamp: None,
                ..seg_p.clone()
            },
        ),
        (
            "window",
            base.clone(),
            Tcp {
                window: 512,
                ..seg_p.clone()
            },
        ),
        ("ip id", base.with_id(999), seg_p.clone()),
        (
            "ttl",
            Net {
                ttl: 63,
                ..base.clone()
            },
            seg_p.clone(),
        ),
        (
            "tos",
            Net {
                tos: 0x10,
                ..base.clone()
            },
            seg_p.clone(),
        ),
        (
            "mac",
            Net {
                src_mac: [2, 0, 0, 0, 0, 9],
                ..base.clone()
            },
            seg_p.clone(),
        ),
        (
            "all at once",
            Net {
                ip_id: 4242,
                ttl: 1,
                tos: 0xb8,
                src_mac: [2, 0, 0, 0, 0, 9],
                ..base.clone()
            },
            Tcp {
                window: 1,
                timestamp: Some((1, 1)),
                ..seg_p.clone()
            },
        ),
    ];
    for (what, s_net, s_seg) in rows {
        let p = tcp(&base, &seg_p);
        let sf = tcp(&s_net, &s_seg);
        assert_ne!(p, sf, "{what}: the frames must differ");
        let mut s = scenario().labelled(what);
        s.primary(&p).secondary(&sf);
        s.expect_released(&[(&p, R::Matched)])
            .expect_checkpoints(&[]);
    }
}

// --- T03-T05: a payload mismatch blocks its own flow only ---

fn payload_mismatch_checkpoints_then_flush(net: &Net) {
    let mut s = scenario();
    let p = tcp(net, &Tcp::data(1000, 5000, fill(b'A', 100)));
    let sf = tcp(net, &Tcp::data(1000, 5000, fill(b'B', 100)));
    s.primary(&p).expect_nothing();
    s.secondary(&sf).expect_released(&[]);
    let cps = s.take_checkpoints();
    assert_eq!(cps.len(), 1, "one checkpoint request at once");
    let m = mismatch(&cps[0].1);
    assert_eq!(m.comparator, "tcp");
    assert_eq!(m.difference.offset, p.len() - 100, "the first payload byte");
    assert_eq!(m.difference.field, "tcp payload");
    assert_eq!(m.primary, p);
    assert_eq!(m.secondary, sf);
    s.expect_held(1, 1);
    s.checkpoint()
        .expect_released(&[(&p, R::CheckpointFlush)])
        .expect_dropped(&[(S, D::CheckpointFlush)])
        .expect_checkpoints(&[])
        .expect_held(0, 0);
}

#[test]
fn t03_tcp_payload_mismatch_checkpoints() {
    payload_mismatch_checkpoints_then_flush(&Net::default());
}

#[test]
fn t03_tcp_payload_mismatch_checkpoints_ipv6() {
    payload_mismatch_checkpoints_then_flush(&Net::v6());
}

#[test]
fn t03_tcp_payload_mismatch_checkpoints_vlan() {
    payload_mismatch_checkpoints_then_flush(&Net::vlan(5));
}

#[test]
fn t04_standing_mismatch_checkpoints_on_every_arrival() {
    let net = Net::default();
    let mut s = scenario();
    let p = tcp(&net, &Tcp::data(1000, 5000, fill(b'A', 100)));
    s.primary(&p)
        .secondary(&tcp(&net, &Tcp::data(1000, 5000, fill(b'B', 100))))
        .expect_checkpoints(&[Cp::Mismatch]);
    let p2 = seg(&net, 1100, 10, 5000);
    s.primary(&p2)
        .expect_released(&[])
        .expect_checkpoints(&[Cp::Mismatch]);
    s.secondary(&p2)
        .expect_released(&[])
        .expect_checkpoints(&[Cp::Mismatch]);
    s.checkpoint()
        .expect_released(&[(&p, R::CheckpointFlush), (&p2, R::CheckpointFlush)]);
}

#[test]
fn t05_mismatch_on_one_flow_does_not_block_another() {
    let flow1 = Net::default();
    let mut s = scenario();
    let p = tcp(&flow1, &Tcp::data(1000, 5000, fill(b'A', 100)));
    s.primary(&p)
        .secondary(&tcp(&flow1, &Tcp::data(1000, 5000, fill(b'B', 100))))
        .expect_checkpoints(&[Cp::Mismatch]);
    let flow2 = |seq, len| {
        tcp(
            &flow1,
            &Tcp {
                src_port: 5003,
                ..Tcp::data(seq, 7000, stream(seq, len))
            },
        )
    };
    let (a, b) = (flow2(1, 30), flow2(31, 30));
    s.primary(&a)
        .secondary(&a)
        .expect_released(&[(&a, R::Matched)]);
    s.primary(&b)
        .secondary(&b)
        .expect_released(&[(&b, R::Matched)]);
    s.expect_checkpoints(&[]).expect_held(1, 1);
    s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
}

// --- T06-T10: segmentation and the ACK gate ---

#[test]
fn t06_primary_segment_matches_two_secondary_segments() {
    let net = Net::default();
    let mut s = scenario();
    let p = seg(&net, 1000, 100, 5000);
    s.primary(&p).expect_nothing();
    s.secondary(&seg(&net, 1000, 50, 5000)).expect_nothing();
    s.secondary(&seg(&net, 1050, 50, 5000))
        .expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t07_two_primary_segments_match_one_secondary_segment() {
    let net = Net::default();
    let mut s = scenario();
    let (p1, p2) = (seg(&net, 1000, 50, 5000), seg(&net, 1050, 50, 5000));
    s.primary(&p1).primary(&p2).expect_nothing();
    s.secondary(&seg(&net, 1000, 100, 5000))
        .expect_released(&[(&p1, R::Matched), (&p2, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t08_ack_gate_holds_primary_ahead_of_secondary() {
    let net = Net::default();
    let mut s = scenario();
    let (p1, p2) = (seg(&net, 1000, 50, 6000), seg(&net, 1050, 50, 6000));
    s.primary(&p1).primary(&p2).expect_nothing();
    s.secondary(&seg(&net, 1000, 100, 5000))
        .expect_released(&[]);
    let cps = s.take_checkpoints();
    assert_eq!(cps.len(), 1);
    assert!(
        mismatch(&cps[0].1).difference.field.contains("ack"),
        "the ACK gate is named: {}",
        cps[0].1
    );
    s.checkpoint()
        .expect_released(&[(&p1, R::CheckpointFlush), (&p2, R::CheckpointFlush)]);
}

#[test]
fn t09_exact_segment_path_has_no_ack_gate() {
    let net = Net::default();
    let mut s = scenario();
    let p = seg(&net, 1000, 100, 6000);
    s.primary(&p).secondary(&seg(&net, 1000, 100, 5000));
    s.expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t10_ack_gate_on_the_split_path() {
    let net = Net::default();
    let mut s = scenario();
    let p = seg(&net, 1000, 100, 6000);
    s.primary(&p).expect_nothing();
    s.secondary(&seg(&net, 1000, 50, 5000)).expect_nothing();
    s.secondary(&seg(&net, 1050, 50, 5000))
        .expect_released(&[])
        .expect_checkpoints(&[Cp::Mismatch]);
    s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
}

// --- T11-T14: segments without payload and already-compared data ---

#[test]
fn t11_pure_ack_waits_for_any_secondary_packet() {
    let net = Net::default();
    let secondaries: [(&str, Frame, Option<D>); 2] = [
        (
            "a pure ACK (dropped)",
            tcp(&net, &Tcp::pure_ack(1000, 5000)),
            Some(D::NoPayload),
        ),
        ("data (kept)", seg(&net, 1000, 20, 5000), None),
    ];
    for (what, sf, drop) in secondaries {
        let mut s = scenario().labelled(what);
        let p = tcp(&net, &Tcp::pure_ack(1000, 5000));
        s.primary(&p).expect_nothing();
        s.advance(2900).expect_nothing().expect_held(1, 0);
        s.secondary(&sf)
            .expect_released(&[(&p, R::NoPayload)])
            .expect_checkpoints(&[]);
        let drops: Vec<_> = drop.map(|d| (S, d)).into_iter().collect();
        s.expect_dropped(&drops);
        let held_s = u64::from(drop.is_none());
        s.expect_held(0, held_s);
    }
}

#[test]
fn t12_syns_with_different_isns_released() {
    let net = Net::default();
    let syn = |isn| {
        tcp(
            &net,
            &Tcp {
                seq: isn,
                ack: None,
                syn: true,
                ..Tcp::default()
            },
        )
    };
    let p = syn(1000);
    let mut s = scenario();
    s.primary(&p).secondary(&syn(777_777));
    s.expect_released(&[(&p, R::NoPayload)])
        .expect_checkpoints(&[])
        .expect_dropped(&[(S, D::NoPayload)]);
}

#[test]
fn t13_fin_against_pure_ack_released() {
    let net = Net::default();
    let p = tcp(
        &net,
        &Tcp {
            fin: true,
            ..Tcp::pure_ack(1100, 5000)
        },
    );
    let mut s = scenario();
    s.primary(&p)
        .secondary(&tcp(&net, &Tcp::pure_ack(1100, 5000)));
    s.expect_released(&[(&p, R::NoPayload)])
        .expect_checkpoints(&[]);
}

#[test]
fn t14_already_compared_data_released_uncompared() {
    let net = Net::default();
    let mut s = scenario();
    let p = seg(&net, 1000, 100, 5000);
    s.primary(&p)
        .secondary(&p)
        .expect_released(&[(&p, R::Matched)]);
    // A primary retransmission with different bytes, then any secondary packet.
    let retrans = tcp(&net, &Tcp::data(1000, 5000, fill(b'X', 100)));
    s.primary(&retrans).expect_nothing();
    s.secondary(&tcp(&net, &Tcp::pure_ack(1100, 5000)))
        .expect_released(&[(&retrans, R::AlreadyCompared)])
        .expect_checkpoints(&[]);
    // A secondary copy alone is dropped, uncompared, at the next run.
    s.secondary(&tcp(&net, &Tcp::data(1000, 5000, fill(b'Y', 100))))
        .expect_nothing();
    let next = seg(&net, 1100, 10, 5000);
    s.primary(&next).secondary(&next);
    s.expect_released(&[(&next, R::Matched)])
        .expect_checkpoints(&[])
        .expect_held(0, 0);
    let drops = s.tracker().counters().dropped[S.index()];
    assert_eq!(drops[D::AlreadyCompared.index()], 1, "{drops:?}");
}

// --- T15-T17: sequence order and wrap-around ---

#[test]
fn t15_out_of_order_primary_released_in_sequence_order() {
    let net = Net::default();
    let mut s = scenario();
    let (p1, p2) = (seg(&net, 1000, 100, 5000), seg(&net, 1100, 100, 5000));
    s.primary(&p2).primary(&p1).expect_nothing();
    s.secondary(&p1).expect_released(&[(&p1, R::Matched)]);
    s.secondary(&p2).expect_released(&[(&p2, R::Matched)]);
    s.expect_checkpoints(&[]);
}

#[test]
fn t16_flush_releases_tcp_in_sequence_order() {
    let net = Net::default();
    let mut s = scenario();
    let (a, b, c) = (
        seg(&net, 1000, 100, 5000),
        seg(&net, 1100, 100, 5000),
        seg(&net, 1200, 100, 5000),
    );
    s.primary(&b).primary(&a).primary(&c).expect_nothing();
    s.checkpoint().expect_released(&[
        (&a, R::CheckpointFlush),
        (&b, R::CheckpointFlush),
        (&c, R::CheckpointFlush),
    ]);
}

#[test]
fn t17_sequence_numbers_wrap() {
    const NEAR_END: u32 = 0xFFFF_FFF0;
    let net = Net::default();

    // As T06 across the wrap.
    let mut s = scenario();
    let p = seg(&net, NEAR_END, 32, 5000);
    s.primary(&p);
    s.secondary(&seg(&net, NEAR_END, 16, 5000)).expect_nothing();
    s.secondary(&seg(&net, 0, 16, 5000))
        .expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[]);

    // As T07 across the wrap, the later segment arriving first.
    let mut s = scenario();
    let (p1, p2) = (seg(&net, NEAR_END, 16, 5000), seg(&net, 0, 16, 5000));
    s.primary(&p2).primary(&p1).expect_nothing();
    s.secondary(&seg(&net, NEAR_END, 32, 5000))
        .expect_released(&[(&p1, R::Matched), (&p2, R::Matched)])
        .expect_checkpoints(&[]);

    // A flush sorts across the wrap too.
    let mut s = scenario();
    s.primary(&p2).primary(&p1);
    s.checkpoint()
        .expect_released(&[(&p1, R::CheckpointFlush), (&p2, R::CheckpointFlush)]);
}

// --- T18-T24: UDP, matched oldest first (D-ORDER-1) ---

fn udp_ip_noise_ignored(net: &Net) {
    let p = udp(net, &Udp::payload("abc"));
    let sf = udp(
        &Net {
            ip_id: net.ip_id.wrapping_add(77),
            ttl: net.ttl - 1,
            tos: 0x20,
            ..net.clone()
        },
        &Udp::payload("abc"),
    );
    assert_ne!(p, sf);
    let mut s = scenario();
    s.primary(&p).expect_nothing();
    s.secondary(&sf)
        .expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t18_udp_ip_noise_ignored() {
    udp_ip_noise_ignored(&Net::default());
}

#[test]
fn t18_udp_ip_noise_ignored_ipv6() {
    udp_ip_noise_ignored(&Net::v6());
}

#[test]
fn t18_udp_ip_noise_ignored_vlan() {
    udp_ip_noise_ignored(&Net::vlan(5));
}

/// "abc" from the primary against `other` from the secondary: one mismatch, reported by the
/// UDP comparator, returned for its details; the flush then releases the primary.
fn udp_mismatch(other: &str) -> colo_core::Mismatch {
    let net = Net::default();
    let p = udp(&net, &Udp::payload("abc"));
    let mut s = scenario();
    s.primary(&p)
        .secondary(&udp(&net, &Udp::payload(other)))
        .expect_released(&[]);
    let cps = s.take_checkpoints();
    assert_eq!(cps.len(), 1, "{other}: one checkpoint request");
    let m = mismatch(&cps[0].1).clone();
    assert_eq!(m.comparator, "udp", "{other}");
    s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
    m
}

#[test]
fn t19_udp_payload_differs() {
    let m = udp_mismatch("abd");
    assert_eq!(
        (m.difference.field, m.difference.offset),
        ("udp checksum", 14 + 20 + 6),
        "the checksum differs before the payload does"
    );
}

#[test]
fn t20_udp_size_differs() {
    udp_mismatch("abcd");
}

#[test]
fn t21_lagging_secondary_is_not_a_mismatch() {
    let net = Net::default();
    let (u1, u2) = (
        udp(&net.with_id(1), &Udp::payload("one")),
        udp(&net.with_id(2), &Udp::payload("two")),
    );
    let mut s = scenario();
    s.primary(&u1).primary(&u2).expect_nothing();
    s.secondary(&udp(&net.with_id(91), &Udp::payload("one")))
        .expect_released(&[(&u1, R::Matched)])
        .expect_checkpoints(&[]);
    s.secondary(&udp(&net.with_id(92), &Udp::payload("two")))
        .expect_released(&[(&u2, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t22_flush_releases_udp_oldest_first() {
    let net = Net::default();
    let u: Vec<Frame> = (1..=3)
        .map(|i| udp(&net.with_id(i), &Udp::payload(format!("u{i}"))))
        .collect();
    let mut s = scenario();
    for f in &u {
        s.primary(f).expect_nothing();
    }
    s.checkpoint().expect_released(&[
        (&u[0], R::CheckpointFlush),
        (&u[1], R::CheckpointFlush),
        (&u[2], R::CheckpointFlush),
    ]);
}

#[test]
fn t23_surplus_secondary_waits_for_the_timeout() {
    let net = Net::default();
    let mut s = scenario();
    s.secondary(&udp(&net, &Udp::payload("extra")))
        .secondary(&udp(&net, &Udp::payload("match")))
        .expect_nothing();
    let p = udp(&net.with_id(5), &Udp::payload("match"));
    s.primary(&p)
        .expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[])
        .expect_held(0, 1);
    s.advance(3000).expect_nothing();
    s.advance(1000);
    let cps = s.take_checkpoints();
    assert_eq!(cps.len(), 1);
    assert!(
        matches!(
            cps[0].1,
            CheckpointReason::Timeout {
                side: Side::Secondary,
                ..
            }
        ),
        "{}",
        cps[0].1
    );
}

#[test]
fn t24_duplicate_primary_matched_once() {
    let net = Net::default();
    let (d1, d2) = (
        udp(&net.with_id(1), &Udp::payload("dup")),
        udp(&net.with_id(2), &Udp::payload("dup")),
    );
    let mut s = scenario();
    s.primary(&d1)
        .primary(&d2)
        .secondary(&udp(&net.with_id(3), &Udp::payload("dup")));
    s.expect_released(&[(&d1, R::Matched)])
        .expect_checkpoints(&[])
        .expect_held(1, 0);
    s.checkpoint().expect_released(&[(&d2, R::CheckpointFlush)]);
}

// --- T25-T26: ICMP ---

#[test]
fn t25_icmp_compared_from_the_icmp_header() {
    let net = Net::default();
    let rows: [(&str, Frame, bool); 4] = [
        (
            "ip id differs",
            icmp_echo(&net.with_id(9), 1, 1, b"ping"),
            true,
        ),
        ("echo id differs", icmp_echo(&net, 2, 1, b"ping"), false),
        ("echo seq differs", icmp_echo(&net, 1, 2, b"ping"), false),
        ("payload differs", icmp_echo(&net, 1, 1, b"pong"), false),
    ];
    for (what, sf, same) in rows {
        let p = icmp_echo(&net, 1, 1, b"ping");
        let mut s = scenario().labelled(what);
        s.primary(&p).secondary(&sf);
        if same {
            s.expect_released(&[(&p, R::Matched)])
                .expect_checkpoints(&[]);
        } else {
            s.expect_released(&[]).expect_checkpoints(&[Cp::Mismatch]);
            s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
        }
    }
}

#[test]
fn t26_icmp_lagging_secondary_is_not_a_mismatch() {
    let net = Net::default();
    let (e1, e2) = (icmp_echo(&net, 1, 1, b"x"), icmp_echo(&net, 1, 2, b"x"));
    let mut s = scenario();
    s.primary(&e1).primary(&e2).expect_nothing();
    s.secondary(&icmp_echo(&net.with_id(50), 1, 1, b"x"))
        .expect_released(&[(&e1, R::Matched)])
        .expect_checkpoints(&[]);
    s.secondary(&icmp_echo(&net.with_id(51), 1, 2, b"x"))
        .expect_released(&[(&e2, R::Matched)])
        .expect_checkpoints(&[]);
}

// --- T27: other IP protocols (D-IP-1) ---

#[test]
fn t27_gre_compared_from_the_ip_payload() {
    let strict: ron::Value = ron::from_str("(strict: true)").expect("ron");
    let strict = ComparatorsConfig {
        settings: [("ip".to_string(), strict)].into_iter().collect(),
        ..Default::default()
    };
    let net = Net::default();
    let gre_payload = [0u8, 0, 0x08, 0, 0x45, 0, 0, 20];
    let p = ip_raw(&net, GRE, &gre_payload);
    // (strict, secondary, released)
    let rows: [(bool, Frame, bool); 5] = [
        (false, ip_raw(&net.with_id(2), GRE, &gre_payload), true),
        (false, p.clone(), true),
        (
            false,
            ip_raw(&net, GRE, &[0u8, 0, 0x08, 0, 0x45, 0, 0, 21]),
            false,
        ),
        (true, ip_raw(&net.with_id(2), GRE, &gre_payload), false),
        (true, p.clone(), true),
    ];
    for (is_strict, sf, released) in rows {
        let registry = if is_strict {
            registry_with(&strict)
        } else {
            registry()
        };
        let label = format!("strict {is_strict}, released {released}");
        let mut s = Scenario::new(registry, TrackerConfig::default()).labelled(label);
        s.primary(&p).expect_nothing().secondary(&sf);
        if released {
            s.expect_released(&[(&p, R::Matched)])
                .expect_checkpoints(&[]);
        } else {
            s.expect_released(&[]);
            let cps = s.take_checkpoints();
            assert_eq!(cps.len(), 1, "strict {is_strict}");
            assert_eq!(mismatch(&cps[0].1).comparator, "ip");
            s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
        }
    }
}

// --- T28-T29: frames that are not compared ---

#[test]
fn t28_uncompared_primary_frames_released_at_once() {
    let net = Net::default();
    let mut s = scenario();
    let held = seg(&net, 1000, 100, 5000);
    s.primary(&held).expect_nothing();
    let arp = arp(&net);
    let ten = Frame::new(fill(0xaa, 10));
    let seventeen = Frame::new(fill(0xbb, 17));
    let rows = [
        (&arp, Uncompared::NotIp { ethertype: 0x0806 }),
        (&ten, Uncompared::TooShort { len: 10 }),
        (&seventeen, Uncompared::TooShort { len: 17 }),
    ];
    for (f, why) in rows {
        s.primary(f)
            .expect_released(&[(f, R::Uncompared(why))])
            .expect_checkpoints(&[])
            .expect_held(1, 0);
    }
    // D-L3-1: IPv6 and 802.1Q-tagged IPv4 are compared, so they wait like any IPv4 packet.
    s.primary(&udp(&Net::v6(), &Udp::payload("v6")))
        .primary(&udp(&Net::vlan(7), &Udp::payload("tagged")))
        .expect_nothing()
        .expect_held(3, 0);
    s.checkpoint();
    s.expect_released(&[
        (&held, R::CheckpointFlush),
        (&udp(&Net::v6(), &Udp::payload("v6")), R::CheckpointFlush),
        (
            &udp(&Net::vlan(7), &Udp::payload("tagged")),
            R::CheckpointFlush,
        ),
    ]);
}

#[test]
fn t29_uncompared_secondary_frames_dropped() {
    let net = Net::default();
    let mut s = scenario();
    s.secondary(&arp(&net))
        .secondary(&Frame::new(fill(0xbb, 17)))
        .expect_nothing()
        .expect_dropped(&[
            (S, D::Uncompared(Uncompared::NotIp { ethertype: 0x0806 })),
            (S, D::Uncompared(Uncompared::TooShort { len: 17 })),
        ])
        .expect_held(0, 0);
}

// --- T33-T34: vnet headers ---

#[test]
fn t33_vnet_header_kept_on_release() {
    let p_net = Net {
        vnet: fill(1, 12),
        ..Net::default()
    };
    let s_net = Net {
        vnet: fill(2, 12),
        ..Net::default()
    };
    let p = seg(&p_net, 1000, 30, 5000);
    assert_eq!(p.len(), 96, "84 bytes of Ethernet and 12 of vnet header");
    let mut s = scenario();
    s.primary(&p).secondary(&seg(&s_net, 1000, 30, 5000));
    s.expect_released(&[(&p, R::Matched)])
        .expect_checkpoints(&[]);
}

#[test]
fn t34_oversized_vnet_header_released_uncompared() {
    let net = Net {
        vnet: fill(0, 24),
        ..Net::default()
    };
    let p = seg(&net, 1000, 30, 5000);
    assert_eq!(p.vnet_len, 24);
    let mut s = scenario();
    s.primary(&p).expect_released(&[(
        &p,
        R::Uncompared(Uncompared::BadVnetHeader { vnet_len: 24 }),
    )]);
    s.expect_held(0, 0);
}

// --- T36-T37: the old-packet scan ---

fn fast_timeouts() -> TrackerConfig {
    TrackerConfig {
        compare_timeout: 400,
        expired_scan_cycle: 100,
        ..TrackerConfig::default()
    }
}

/// Feeds one packet from `side` `arrive_ms` after the start and checks the scan's requests
/// until a flush at 1000 ms; then nothing more.
fn scan_requests_until_flush(side: Side, arrive_ms: u64, frame: &Frame) {
    let mut s = scenario_with(fast_timeouts());
    s.advance(arrive_ms);
    match side {
        Side::Primary => s.primary(frame),
        Side::Secondary => s.secondary(frame),
    };
    s.expect_nothing();
    s.advance(400).expect_nothing();
    s.advance(1000 - 400 - arrive_ms);
    let cps = s.take_checkpoints();
    let times: Vec<u64> = cps.iter().map(|(t, _)| t.as_micros() / 1000).collect();
    let first = *times.first().expect("at least one timeout request");
    assert!(
        first > arrive_ms + 400 && first <= arrive_ms + 500,
        "first request at {first} ms for a packet from {arrive_ms} ms"
    );
    let expected: Vec<u64> = (0..)
        .map(|k| first + 100 * k)
        .take_while(|&t| t <= 1000)
        .collect();
    assert_eq!(times, expected, "one request per scan cycle");
    for (_, reason) in &cps {
        match reason {
            CheckpointReason::Timeout { side: sd, age, .. } => {
                assert_eq!(*sd, side);
                assert!(age.as_millis() > 400, "{reason}");
            }
            other => panic!("expected a timeout, got {other}"),
        }
    }
    s.checkpoint();
    match side {
        Side::Primary => s.expect_released(&[(frame, R::CheckpointFlush)]),
        Side::Secondary => s
            .expect_released(&[])
            .expect_dropped(&[(S, D::CheckpointFlush)]),
    };
    s.advance(1000).expect_nothing();
    assert_eq!(s.tracker().poll_timeout(), None);
}

#[test]
fn t36_timeout_scan_primary() {
    let net = Net::default();
    let frames = [
        seg(&net, 1000, 10, 5000),
        udp(&net, &Udp::payload("lonely")),
        tcp(&net, &Tcp::pure_ack(1000, 5000)),
    ];
    for arrive in [0, 30, 99] {
        for f in &frames {
            scan_requests_until_flush(P, arrive, f);
        }
    }
}

#[test]
fn t37_timeout_scan_secondary() {
    let net = Net::default();
    let frames = [
        seg(&net, 1000, 10, 5000),
        udp(&net, &Udp::payload("lonely")),
    ];
    for arrive in [0, 30, 99] {
        for f in &frames {
            scan_requests_until_flush(S, arrive, f);
        }
    }
}

// --- T38-T39: limits never lose a primary packet silently (D-LOSS-3, D-LOSS-4) ---

#[test]
fn t38_full_queue_checkpoints_and_keeps_packets() {
    let net = Net::default();
    let u: Vec<Frame> = (1..=5)
        .map(|i| udp(&net.with_id(i), &Udp::payload(format!("u{i}"))))
        .collect();
    let mut s = scenario_with(TrackerConfig {
        max_queue_size: 2,
        ..TrackerConfig::default()
    });
    // QEMU's cap semantics: a queue of max_queue_size holds one more before it is full.
    for f in &u[..3] {
        s.primary(f).expect_nothing();
    }
    for f in &u[3..] {
        s.primary(f).expect_released(&[]);
        let cps = s.take_checkpoints();
        assert_eq!(cps.len(), 1);
        assert!(
            matches!(
                cps[0].1,
                CheckpointReason::QueueFull {
                    side: Side::Primary,
                    ..
                }
            ),
            "{}",
            cps[0].1
        );
    }
    s.expect_held(5, 0);
    let expected: Vec<(&Frame, R)> = u.iter().map(|f| (f, R::CheckpointFlush)).collect();
    s.checkpoint().expect_released(&expected);
    assert_eq!(s.tracker().counters().dropped_total(P), 0);
}

#[test]
fn t38_byte_budget_drops_and_counts() {
    let net = Net::default();
    let u: Vec<Frame> = (1..=5)
        .map(|i| udp(&net.with_id(i), &Udp::payload(format!("u{i}"))))
        .collect();
    let len = u[0].len() as u64;
    let mut s = scenario_with(TrackerConfig {
        max_queue_size: 2,
        max_held_bytes: 2 * (len + colo_core::tracker::PACKET_OVERHEAD) + len / 2,
        ..TrackerConfig::default()
    });
    s.primary(&u[0]).primary(&u[1]).expect_nothing();
    for f in &u[2..] {
        s.primary(f)
            .expect_released(&[])
            .expect_dropped(&[(P, D::OverBudget)])
            .expect_checkpoints(&[Cp::OverBudget]);
    }
    s.expect_held(2, 0);
    assert_eq!(
        s.tracker().counters().dropped[P.index()][D::OverBudget.index()],
        3
    );
    s.checkpoint()
        .expect_released(&[(&u[0], R::CheckpointFlush), (&u[1], R::CheckpointFlush)]);
    // Room again after the flush.
    s.primary(&u[2]).expect_nothing().expect_held(1, 0);
    s.checkpoint()
        .expect_released(&[(&u[2], R::CheckpointFlush)]);
}

#[test]
fn t39_connection_table_never_discards_held_packets() {
    const MAX: u32 = 16;
    let net = Net::default();
    let flow = |port: u16, what: &str| {
        udp(
            &net,
            &Udp {
                src_port: port,
                ..Udp::payload(what)
            },
        )
    };
    let mut s = scenario_with(TrackerConfig {
        max_connections: MAX,
        ..TrackerConfig::default()
    });
    let a = flow(1000, "victim");
    s.primary(&a).expect_nothing();
    // Matched flows become idle and are evicted to make room; nothing is requested.
    for i in 0..30 {
        let f = flow(2000 + i, "matched");
        s.primary(&f)
            .secondary(&f)
            .expect_released(&[(&f, R::Matched)])
            .expect_checkpoints(&[]);
    }
    let c = s.tracker().counters();
    assert!(c.flows <= u64::from(MAX), "{} flows tracked", c.flows);
    assert!(c.flows_evicted >= 15, "{} evicted", c.flows_evicted);
    // Flows that hold packets are never evicted: once no idle flow is left, each new flow
    // asks for a checkpoint and its packet is still held.
    let idle = u64::from(MAX) - 1;
    let busy: Vec<Frame> = (0..20).map(|i| flow(3000 + i, "held")).collect();
    for (i, f) in busy.iter().enumerate() {
        s.primary(f).expect_released(&[]);
        let want: &[Cp] = if (i as u64) < idle {
            &[]
        } else {
            &[Cp::TableFull]
        };
        s.expect_checkpoints(want);
    }
    s.expect_held(21, 0);
    let mut expected = vec![(&a, R::CheckpointFlush)];
    expected.extend(busy.iter().map(|f| (f, R::CheckpointFlush)));
    s.checkpoint().expect_released(&expected);
    let c = s.tracker().counters();
    assert_eq!(c.received[P.index()], c.released_total(), "nothing lost");
}

// --- T42: flush order ---

#[test]
fn t42_flush_in_connection_order_then_queue_order() {
    let net = Net::default();
    let a1 = udp(&net.with_id(1), &Udp::payload("a1"));
    let a2 = udp(&net.with_id(2), &Udp::payload("a2"));
    let b = seg(&net, 1000, 10, 5000);
    let c = udp(
        &net,
        &Udp {
            src_port: 6000,
            ..Udp::payload("c")
        },
    );
    let mut s = scenario();
    s.primary(&a1)
        .primary(&b)
        .primary(&c)
        .primary(&a2)
        .expect_nothing();
    s.checkpoint().expect_released(&[
        (&a1, R::CheckpointFlush),
        (&a2, R::CheckpointFlush),
        (&b, R::CheckpointFlush),
        (&c, R::CheckpointFlush),
    ]);
}

// --- T46-T47: padding and IP options (D-TCP-1) ---

#[test]
fn t46_padding_is_not_payload() {
    let padded = Net {
        pad: true,
        ..Net::default()
    };
    let ack = tcp(&padded, &Tcp::pure_ack(1000, 5000));
    assert_eq!(ack.len(), MIN_ETHERNET);
    let data = tcp(&padded, &Tcp::data(1000, 5000, "data!"));
    assert_eq!(data.len(), MIN_ETHERNET, "59 bytes padded by one");
    let rows: [(&str, &str); 2] = [("data!", "matched"), ("dat?!", "mismatch")];
    for (secondary_data, outcome) in rows {
        let mut s = scenario();
        s.primary(&ack).expect_nothing();
        s.secondary(&ack)
            .expect_released(&[(&ack, R::NoPayload)])
            .expect_dropped(&[(S, D::NoPayload)])
            .expect_checkpoints(&[]);
        // The data is compared, not released as "already compared".
        s.primary(&data).expect_nothing();
        s.secondary(&tcp(&padded, &Tcp::data(1000, 5000, secondary_data)));
        if outcome == "matched" {
            s.expect_released(&[(&data, R::Matched)])
                .expect_checkpoints(&[]);
        } else {
            s.expect_released(&[]);
            let cps = s.take_checkpoints();
            assert_eq!(cps.len(), 1);
            let m = mismatch(&cps[0].1);
            assert_eq!(
                (m.difference.offset, m.difference.field),
                (14 + 20 + 20 + 3, "tcp payload")
            );
            s.checkpoint()
                .expect_released(&[(&data, R::CheckpointFlush)]);
        }
    }
}

#[test]
fn t47_ip_options_on_one_side_ignored_for_tcp() {
    let with_options = Net {
        ip_options: vec![1, 1, 1, 0],
        ..Net::default()
    };
    let rows = [
        (with_options.clone(), Net::default()),
        (Net::default(), with_options),
    ];
    for (p_net, s_net) in rows {
        let p = seg(&p_net, 1000, 100, 5000);
        let mut s = scenario();
        s.primary(&p).secondary(&seg(&s_net, 1000, 100, 5000));
        s.expect_released(&[(&p, R::Matched)])
            .expect_checkpoints(&[]);
    }
}

// --- T51-T52: malformed and misaligned TCP (D-TCP-3) ---

#[test]
fn t51_truncated_tcp_is_not_compared() {
    let net = Net::default();
    let full = tcp(&net, &Tcp::pure_ack(1000, 5000));
    // The data offset nibble claims 60 header bytes; the frame has 20.
    let mut bad_offset = full.data.to_vec();
    bad_offset[14 + 20 + 12] = 0xf0 | (bad_offset[14 + 20 + 12] & 0x0f);
    let rows: [(&str, Frame); 3] = [
        (
            "ten bytes of TCP header, IP length agrees",
            ip_raw(&net, TCP, &full.data[14 + 20..14 + 20 + 10]),
        ),
        (
            "frame cut after ten bytes of TCP header, IP length says 40",
            Frame::new(full.data[..14 + 20 + 10].to_vec()),
        ),
        ("data offset past the end", Frame::new(bad_offset)),
    ];
    for (what, f) in rows {
        let why = Uncompared::TruncatedL4 { protocol: TCP };
        let mut s = scenario().labelled(what);
        s.primary(&f).expect_released(&[(&f, R::Uncompared(why))]);
        s.secondary(&f)
            .expect_nothing()
            .expect_dropped(&[(S, D::Uncompared(why))])
            .expect_held(0, 0);
        let c = s.tracker().counters();
        assert_eq!(c.released[R::Uncompared(why).index()], 1, "{what}");
        assert_eq!(
            c.dropped[S.index()][D::Uncompared(why).index()],
            1,
            "{what}"
        );
    }
}

#[test]
fn t52_secondary_missing_a_segment_is_a_mismatch() {
    let net = Net::default();
    // (what, the secondary's third segment)
    let rows: [(&str, Frame); 2] = [
        ("same length", seg(&net, 1200, 100, 5000)),
        ("shorter than the primary's", seg(&net, 1200, 50, 5000)),
    ];
    for (what, s3) in rows {
        let (p1, p2, p3) = (
            seg(&net, 1000, 100, 5000),
            seg(&net, 1100, 100, 5000),
            seg(&net, 1200, 100, 5000),
        );
        let mut s = scenario().labelled(what);
        s.primary(&p1)
            .secondary(&p1)
            .expect_released(&[(&p1, R::Matched)]);
        s.primary(&p2).primary(&p3).expect_nothing();
        s.secondary(&s3).expect_released(&[]);
        let cps = s.take_checkpoints();
        assert_eq!(cps.len(), 1, "{what}");
        assert_eq!(mismatch(&cps[0].1).primary, p2, "{what}: reported at P2");
        s.checkpoint()
            .expect_released(&[(&p2, R::CheckpointFlush), (&p3, R::CheckpointFlush)]);
    }
}

// --- decisions.md beyond §11 ---

/// decisions.md: "UDP and ICMP: equal frame lengths, then everything from the L4 header on".
/// IP options on one side only make the frames' lengths differ while the bytes from the L4
/// header on are equal.
#[test]
fn udp_icmp_frames_of_unequal_length_differ() {
    let with_options = Net {
        ip_options: vec![1, 1, 1, 0],
        ..Net::default()
    };
    let rows: [(&str, Frame, Frame); 2] = [
        (
            "udp",
            udp(&with_options, &Udp::payload("abc")),
            udp(&Net::default(), &Udp::payload("abc")),
        ),
        (
            "icmp",
            icmp_echo(&with_options, 1, 1, b"ping"),
            icmp_echo(&Net::default(), 1, 1, b"ping"),
        ),
    ];
    for (what, p, sf) in rows {
        let mut s = scenario().labelled(what);
        s.primary(&p)
            .secondary(&sf)
            .expect_released(&[])
            .expect_checkpoints(&[Cp::Mismatch]);
        s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
    }
}

/// D-TCP-1: the TCP payload ends where the IP length says, falling back to the frame's end
/// when the IP length is 0 (segmentation offload) or larger than the frame.
#[test]
fn tcp_payload_length_falls_back_to_the_frame() {
    let base = seg(&Net::default(), 1000, 100, 5000);
    let with_ip_len = |len: u16, last_byte_flipped: bool| {
        let mut data = base.data.to_vec();
        data[14 + 2..14 + 4].copy_from_slice(&len.to_be_bytes());
        if last_byte_flipped {
            *data.last_mut().expect("payload") ^= 1;
        }
        Frame::new(data)
    };
    let frame_ip_len = u16::try_from(base.len() - 14).expect("small frame");
    let rows = [
        ("ip length 0", 0),
        ("ip length beyond the frame", frame_ip_len + 100),
    ];
    for (what, ip_len) in rows {
        let p = with_ip_len(ip_len, false);
        let mut s = scenario().labelled(format!("{what}, identical"));
        s.primary(&p).expect_nothing();
        s.secondary(&with_ip_len(ip_len, false))
            .expect_released(&[(&p, R::Matched)])
            .expect_checkpoints(&[]);
        // The payload runs to the frame's end: its last byte is compared too.
        let mut s = scenario().labelled(format!("{what}, last byte differs"));
        s.primary(&p).secondary(&with_ip_len(ip_len, true));
        s.expect_released(&[]).expect_checkpoints(&[Cp::Mismatch]);
        s.checkpoint().expect_released(&[(&p, R::CheckpointFlush)]);
    }
}
