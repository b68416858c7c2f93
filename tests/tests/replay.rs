//! Offline replay over two captures: the engine's decisions with the captures' clock.

use std::sync::Arc;

use colo_core::pcap;
use colo_core::registry::{ComparatorsConfig, Registry};
use colo_core::replay::{ReplayOptions, replay};
use colo_core::{Frame, Timestamp, TrackerConfig};
use colo_protocols as _;
use etherparse::PacketBuilder;

fn udp(port: u16, payload: &[u8], ip_id: u16) -> Vec<u8> {
    let mut v = Vec::new();
    let ip = etherparse::Ipv4Header {
        source: [10, 0, 0, 1],
        destination: [10, 0, 0, 2],
        time_to_live: 64,
        identification: ip_id,
        ..Default::default()
    };
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(port, 53)
        .write(&mut v, payload)
        .expect("udp frame");
    v
}

fn at(ms: u64, frame: Vec<u8>) -> (Timestamp, Frame) {
    (Timestamp::from_millis(1_000_000 + ms), Frame::new(frame))
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::build(&ComparatorsConfig::default()).expect("registry"))
}

#[test]
fn matches_mismatches_and_the_final_flush_are_reported_apart() {
    let primary = vec![
        at(0, udp(1, b"same", 1)),
        at(10, udp(2, b"primary says this", 2)),
        at(20, udp(3, b"never answered", 3)),
    ];
    let secondary = vec![
        at(1, udp(1, b"same", 91)),
        at(12, udp(2, b"secondary says that", 92)),
    ];
    let r = replay(
        primary,
        secondary,
        TrackerConfig::default(),
        registry(),
        ReplayOptions::default(),
    );
    assert_eq!((r.frames.primary, r.frames.secondary), (3, 2));
    assert_eq!(r.released.get("matched"), Some(&1));
    // The mismatch's checkpoint request is answered at once: its flush releases port 2.
    assert_eq!(r.released.get("checkpoint-flush"), Some(&1));
    assert_eq!(r.flushed_at_end, 1);
    assert_eq!(r.checkpoints.len(), 1);
    let cp = &r.checkpoints[0];
    assert_eq!(cp.reason, "mismatch");
    assert_eq!(cp.time_ms, 12.0);
    assert_eq!(cp.comparator, Some("udp"));
    assert!(
        cp.flow.as_deref().is_some_and(|f| f.contains("10.0.0.1:2")),
        "{:?}",
        cp.flow
    );
    assert_eq!(cp.field, Some("udp length"));
    // Percentiles come from the engine's histogram: within 1/16 below the true value.
    assert!((0.93..=1.0).contains(&r.held_ms.p50), "{}", r.held_ms.p50);
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["frames"]["primary"], 3);
    assert_eq!(json["checkpoints"][0]["reason"], "mismatch");
    assert_eq!(json["dropped"]["secondary"]["matched"], 1);
}

#[test]
fn captures_from_different_clocks_line_up_with_align_start() {
    let primary = vec![at(0, udp(1, b"a", 1)), at(5000, udp(1, b"b", 2))];
    // The secondary host's clock is an hour ahead.
    let secondary = vec![
        at(3_600_000, udp(1, b"a", 1)),
        at(3_605_001, udp(1, b"b", 2)),
    ];
    let plain = replay(
        primary.clone(),
        secondary.clone(),
        TrackerConfig::default(),
        registry(),
        ReplayOptions::default(),
    );
    assert!(plain.checkpoints.iter().any(|c| c.reason == "timeout"));
    let aligned = replay(
        primary,
        secondary,
        TrackerConfig::default(),
        registry(),
        ReplayOptions {
            align_start: true,
            ..Default::default()
        },
    );
    assert!(aligned.checkpoints.is_empty(), "{:?}", aligned.checkpoints);
    assert_eq!(aligned.released.get("matched"), Some(&2));
    assert_eq!(aligned.held_ms.max, 1.0);
}

#[test]
fn timeouts_fire_on_the_captures_clock() {
    let primary = vec![at(0, udp(1, b"lonely", 1)), at(4500, udp(9, b"later", 2))];
    let config = TrackerConfig {
        compare_timeout: 400,
        expired_scan_cycle: 100,
        ..Default::default()
    };
    let r = replay(
        primary,
        vec![],
        config,
        registry(),
        ReplayOptions {
            flush_on_request: false,
            ..Default::default()
        },
    );
    let times: Vec<f64> = r.checkpoints.iter().map(|c| c.time_ms).take(3).collect();
    assert_eq!(times, vec![500.0, 600.0, 700.0]);
    assert_eq!(r.flushed_at_end, 2);
}

#[test]
fn pcap_captures_round_trip_into_a_replay() {
    let mut p = pcap::file_header().to_vec();
    let mut s = pcap::file_header().to_vec();
    for i in 0..10u16 {
        let t = Timestamp::from_millis(1_700_000_000_000 + u64::from(i));
        pcap::write_record(&mut p, t, &udp(7, &i.to_be_bytes(), i));
        pcap::write_record(&mut s, t, &udp(7, &i.to_be_bytes(), 1000 + i));
    }
    let read = |bytes: &[u8]| -> Vec<(Timestamp, Frame)> {
        pcap::Reader::new(bytes)
            .expect("header")
            .map(|r| r.map(|r| (r.ts, Frame::new(r.data.to_vec()))))
            .collect::<Result<_, _>>()
            .expect("records")
    };
    let r = replay(
        read(&p),
        read(&s),
        TrackerConfig::default(),
        registry(),
        ReplayOptions::default(),
    );
    assert_eq!(r.released.get("matched"), Some(&10));
    assert!(r.checkpoints.is_empty());
    assert_eq!(r.flushed_at_end, 0);
}
