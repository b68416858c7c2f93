//! The comparator registry as the daemon sees it: every linked crate's registrations, chosen
//! per flow by specificity. These live here because a crate's own unit tests never see other
//! crates' `inventory` registrations.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use colo_core::comparator::{Claim, Comparator, Verdict};
use colo_core::fifo::{FifoComparator, Matcher};
use colo_core::registry::{ComparatorsConfig, Registration, Registry, RegistryError};
use colo_core::{FlowKey, L4Id, Packet};
use colo_protocols as _;

/// A port-specific comparator registered from this test crate, as a plugin would.
struct AlwaysSame;
impl Matcher for AlwaysSame {
    fn compare(&self, _: &Packet, _: &Packet) -> Verdict {
        Verdict::Same
    }
}

fn build_echo(_: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    Ok(Arc::new(FifoComparator::new(
        vec![Claim::Port {
            protocol: 17,
            port: 7,
        }],
        AlwaysSame,
    )))
}

inventory::submit!(Registration {
    name: "test-echo",
    summary: "UDP echo, for tests",
    build: build_echo
});

fn key(protocol: u8, l4: L4Id, fragment: bool) -> FlowKey {
    FlowKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        protocol,
        l4,
        vlan: None,
        inner_vlan: None,
        fragment,
    }
}

fn chosen(registry: &Registry, k: &FlowKey) -> Option<&'static str> {
    registry.select(k).map(|i| registry.entries()[i].name)
}

fn ports(src: u16, dst: u16) -> L4Id {
    L4Id::Ports { src, dst }
}

#[test]
fn built_in_comparators_are_linked() {
    let names: Vec<_> = Registry::registrations().iter().map(|r| r.name).collect();
    for want in ["icmp", "ip", "tcp", "test-echo", "udp"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

#[test]
fn the_most_specific_claim_wins() {
    let r = Registry::build(&ComparatorsConfig::default()).expect("registry");
    assert_eq!(chosen(&r, &key(6, ports(1, 2), false)), Some("tcp"));
    assert_eq!(chosen(&r, &key(17, ports(1, 2), false)), Some("udp"));
    assert_eq!(
        chosen(&r, &key(17, ports(7, 4000), false)),
        Some("test-echo")
    );
    assert_eq!(
        chosen(&r, &key(17, ports(4000, 7), false)),
        Some("test-echo")
    );
    assert_eq!(chosen(&r, &key(6, ports(7, 4000), false)), Some("tcp"));
    assert_eq!(chosen(&r, &key(1, L4Id::None, false)), Some("icmp"));
    assert_eq!(chosen(&r, &key(58, L4Id::None, false)), Some("icmp"));
    assert_eq!(chosen(&r, &key(47, L4Id::None, false)), Some("ip"));
    // D-FRAG-1: fragments go to the IP fallback whatever their protocol.
    assert_eq!(chosen(&r, &key(6, L4Id::None, true)), Some("ip"));
    assert_eq!(chosen(&r, &key(17, L4Id::None, true)), Some("ip"));
}

#[test]
fn a_disabled_comparator_hands_its_flows_to_the_next_claim() {
    let config = ComparatorsConfig {
        disabled: vec!["test-echo".into(), "udp".into()],
        ..Default::default()
    };
    let r = Registry::build(&config).expect("registry");
    assert_eq!(chosen(&r, &key(17, ports(7, 4000), false)), Some("ip"));
    assert!(r.entries().iter().all(|e| e.name != "udp"));
}

#[test]
fn unknown_names_are_refused_with_the_list_of_known_ones() {
    let config = ComparatorsConfig {
        disabled: vec!["tpc".into()],
        ..Default::default()
    };
    match Registry::build(&config) {
        Err(RegistryError::Unknown { name, known }) => {
            assert_eq!(name, "tpc");
            assert!(known.contains("tcp"));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn two_comparators_with_the_same_claim_are_a_conflict() {
    fn build_udp_too(_: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
        Ok(Arc::new(FifoComparator::new(
            vec![Claim::Protocol(17)],
            AlwaysSame,
        )))
    }
    let udp_too = Registration {
        name: "udp-too",
        summary: "",
        build: build_udp_too,
    };
    let all: Vec<&Registration> = Registry::registrations()
        .into_iter()
        .chain([&udp_too])
        .collect();
    let err = Registry::build_from(&all, &ComparatorsConfig::default())
        .err()
        .expect("conflict");
    assert_eq!(
        err.to_string(),
        "comparators \"udp\" and \"udp-too\" both claim udp; disable one"
    );
    let config = ComparatorsConfig {
        disabled: vec!["udp".into()],
        ..Default::default()
    };
    assert!(Registry::build_from(&all, &config).is_ok());
}

#[test]
fn a_comparator_refusing_its_settings_is_named() {
    let mut config = ComparatorsConfig::default();
    let section: ron::Value = ron::from_str("(no_such_option: 1)").expect("ron");
    config.settings.insert("ip".into(), section);
    let err = Registry::build(&config).err().expect("refused");
    assert!(err.to_string().starts_with("comparator \"ip\": "), "{err}");
}
