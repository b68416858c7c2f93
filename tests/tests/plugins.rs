//! A plugin crate's comparator is part of the program exactly when the crate is linked.
//!
//! This test binary links `colo-ntp` (`use colo_ntp as _;`, as the daemon does behind its `ntp`
//! feature) but not `colo-dns`, although both are dependencies of this package: being a
//! dependency is not enough, only a crate named in code is linked and registers its
//! comparator. So here `ntp` is registered and takes UDP port 123 from `udp`, while `dns` is
//! absent, DNS flows stay with `udp`, and a configuration that names `dns` is refused.
//! colo-protocols' doc test makes the same point from the other side: a program linking only
//! colo-protocols has exactly `icmp`, `ip`, `tcp` and `udp`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use colo_core::registry::{ComparatorsConfig, RegistryError};
use colo_core::{CheckpointReason, Claim, FlowKey, L4Id, Registry, ReleaseReason, TrackerConfig};
use colo_ntp as _;
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::scenario::Scenario;

fn udp_key(src: u16, dst: u16) -> FlowKey {
    FlowKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        protocol: 17,
        l4: L4Id::Ports { src, dst },
        vlan: None,
        inner_vlan: None,
        fragment: false,
    }
}

fn chosen(registry: &Registry, key: &FlowKey) -> Option<&'static str> {
    registry.select(key).map(|i| registry.entries()[i].name)
}

fn linked() -> Vec<&'static str> {
    Registry::registrations().iter().map(|r| r.name).collect()
}

#[test]
fn the_linked_plugin_is_registered_and_the_unlinked_one_is_not() {
    assert_eq!(linked(), ["icmp", "ip", "ntp", "tcp", "udp"]);
}

#[test]
fn the_registry_reports_the_plugin_with_its_claim() {
    let r = Registry::build(&ComparatorsConfig::default()).expect("registry");
    let ntp = r
        .entries()
        .iter()
        .find(|e| e.name == "ntp")
        .expect("ntp is active");
    assert_eq!(
        ntp.claims,
        [Claim::Port {
            protocol: 17,
            port: 123
        }]
    );
    // What `colo-compare comparators` prints in its CLAIMS column.
    assert_eq!(ntp.claims[0].to_string(), "udp port 123");
    assert!(ntp.summary.contains("NTP"), "{}", ntp.summary);
}

#[test]
fn port_123_goes_to_the_plugin_and_port_53_stays_with_udp() {
    let r = Registry::build(&ComparatorsConfig::default()).expect("registry");
    assert_eq!(chosen(&r, &udp_key(123, 40000)), Some("ntp"));
    assert_eq!(chosen(&r, &udp_key(40000, 123)), Some("ntp"));
    assert_eq!(chosen(&r, &udp_key(53, 40000)), Some("udp"));

    let off = ComparatorsConfig {
        disabled: vec!["ntp".into()],
        ..Default::default()
    };
    let r = Registry::build(&off).expect("registry");
    assert_eq!(chosen(&r, &udp_key(123, 40000)), Some("udp"));
}

#[test]
fn configuring_an_unlinked_plugin_is_refused() {
    let config = ComparatorsConfig {
        disabled: vec!["dns".into()],
        ..Default::default()
    };
    match Registry::build(&config) {
        Err(RegistryError::Unknown { name, known }) => {
            assert_eq!(name, "dns");
            assert_eq!(known, "icmp, ip, ntp, tcp, udp");
        }
        other => panic!(
            "expected an unknown-comparator error, got {:?}",
            other.err()
        ),
    }

    let settings: ron::Value = ron::from_str("(tolerance_ms: 50)").expect("ron");
    let config = ComparatorsConfig {
        disabled: Vec::new(),
        settings: [("ntp".to_string(), settings)].into(),
    };
    assert!(Registry::build(&config).is_ok());
}

/// An NTPv4 server reply whose transmit timestamp's fraction is `transmit_fraction`.
fn ntp_reply(transmit_fraction: u32) -> Vec<u8> {
    let mut v = vec![0x24, 2, 6, 0xec];
    v.extend([0u8; 8]); // root delay, root dispersion
    v.extend([192, 0, 2, 1]); // reference id
    let seconds = 0xe900_0001u32.to_be_bytes();
    for fraction in [0, 0x1234_5678, 0x4000_0000, transmit_fraction] {
        v.extend(seconds);
        v.extend(fraction.to_be_bytes());
    }
    v
}

fn frame_from(net: &Net, src_port: u16, payload: Vec<u8>) -> colo_core::Frame {
    udp(
        net,
        &Udp {
            src_port,
            dst_port: 40000,
            payload,
        },
    )
}

#[test]
fn the_daemons_registry_releases_ntp_replies_within_tolerance() {
    let registry = Arc::new(Registry::build(&ComparatorsConfig::default()).expect("registry"));
    let mut sc = Scenario::new(registry, TrackerConfig::default());
    let (p_net, s_net) = (Net::default(), Net::default().with_id(999));

    // Transmit timestamps 1 ms apart (2^32 / 1000 units): the plugin releases.
    let p = frame_from(&p_net, 123, ntp_reply(0x4000_0000));
    let s = frame_from(&s_net, 123, ntp_reply(0x4000_0000 + 4_294_967));
    sc.primary(&p).expect_nothing();
    sc.secondary(&s)
        .expect_released(&[(&p, ReleaseReason::Matched)])
        .expect_checkpoints(&[]);

    // A second apart: caught, naming the field.
    let p = frame_from(&p_net, 123, ntp_reply(0x4000_0000));
    let s = frame_from(&s_net, 123, ntp_reply(0xc000_0000));
    sc.primary(&p).expect_nothing();
    sc.secondary(&s).expect_released(&[]);
    let cps = sc.take_checkpoints();
    assert_eq!(cps.len(), 1);
    match &cps[0].1 {
        CheckpointReason::Mismatch(m) => {
            assert_eq!(m.comparator, "ntp");
            assert_eq!(m.difference.field, "ntp transmit timestamp");
        }
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn without_the_dns_plugin_reordered_answers_are_a_udp_mismatch() {
    let registry = Arc::new(Registry::build(&ComparatorsConfig::default()).expect("registry"));
    let mut sc = Scenario::new(registry, TrackerConfig::default());
    let answer = |host: u8| {
        let mut rr = vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2];
        rr.push(host);
        rr
    };
    let response = |hosts: [u8; 2]| {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        for h in hosts {
            m.extend(answer(h));
        }
        m
    };
    let p = frame_from(&Net::default(), 53, response([1, 2]));
    let s = frame_from(&Net::default().with_id(999), 53, response([2, 1]));
    sc.primary(&p).expect_nothing();
    sc.secondary(&s).expect_released(&[]);
    let cps = sc.take_checkpoints();
    assert_eq!(cps.len(), 1);
    match &cps[0].1 {
        CheckpointReason::Mismatch(m) => assert_eq!(m.comparator, "udp"),
        other => panic!("expected a mismatch, got {other}"),
    }
    sc.checkpoint()
        .expect_released(&[(&p, ReleaseReason::CheckpointFlush)])
        .expect_checkpoints(&[]);
}
