//! Micro-benchmark of the engine: `handle_frame` + compare for one primary/secondary pair,
//! next to a baseline that only classifies the same two frames, in the same run.
//!
//! Each benchmark builds its frames the same way (a copy of a template with the sequence
//! number or flow patched in), so the difference between `*_pair` and `*_parse_only` is the
//! cost of flow lookup, queueing, comparison and emitting the events.
//!
//! Run: `cargo bench -p colo-tests --bench engine` (add `-- --sample-count 10` for a short run).

use std::sync::Arc;

use bytes::Bytes;
use colo_core::packet::classify;
use colo_core::registry::{ComparatorsConfig, Registry};
use colo_core::{Frame, Side, Timestamp, Tracker, TrackerConfig};
use colo_protocols as _;
use etherparse::PacketBuilder;

fn main() {
    divan::main();
}

const FLOWS: u16 = 1024;

fn udp_template() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 53)
        .write(&mut v, &[0x5a; 18])
        .expect("udp template");
    assert_eq!(v.len(), 60);
    v
}

fn tcp_template() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(5001, 40000, 0, 65535)
        .ack(1)
        .write(&mut v, &[0xa5; 1460])
        .expect("tcp template");
    v
}

/// A 64-byte (60 + 4 length bytes on the wire) UDP frame on flow `i % FLOWS`.
fn udp_frame(template: &[u8], i: u64) -> Frame {
    let mut v = template.to_vec();
    let port = 1000 + (i % u64::from(FLOWS)) as u16;
    v[34..36].copy_from_slice(&port.to_be_bytes());
    Frame::new(Bytes::from(v))
}

/// The `n`th 1460-byte segment of one TCP connection.
fn tcp_frame(template: &[u8], n: u64) -> Frame {
    let mut v = template.to_vec();
    let seq = (n.wrapping_mul(1460)) as u32;
    v[38..42].copy_from_slice(&seq.to_be_bytes());
    Frame::new(Bytes::from(v))
}

fn tracker() -> Tracker {
    let registry = Registry::build(&ComparatorsConfig::default()).expect("registry");
    Tracker::new(
        TrackerConfig::default(),
        Arc::new(registry),
        Timestamp::ZERO,
    )
}

fn pair(t: &mut Tracker, p: Frame, s: Frame, now: Timestamp) -> usize {
    t.handle_frame(Side::Primary, p, now);
    t.handle_frame(Side::Secondary, s, now);
    let mut n = 0;
    while let Some(e) = t.poll_event() {
        n += 1;
        divan::black_box(e);
    }
    n
}

/// Fresh frame pairs made outside the timed section, numbered so each one is new to the engine.
fn pairs(make: fn(&[u8], u64) -> Frame, template: Vec<u8>) -> impl FnMut() -> (Frame, Frame) {
    let mut i = 0u64;
    move || {
        i += 1;
        (make(&template, i), make(&template, i))
    }
}

fn parse_only(b: divan::Bencher, make: fn(&[u8], u64) -> Frame, template: Vec<u8>) {
    b.with_inputs(pairs(make, template))
        .bench_local_values(|(p, s)| (classify(&p), classify(&s)));
}

fn through_tracker(b: divan::Bencher, make: fn(&[u8], u64) -> Frame, template: Vec<u8>) {
    let mut t = tracker();
    let mut now = 0u64;
    b.with_inputs(pairs(make, template))
        .bench_local_values(|(p, s)| {
            now += 1;
            let n = pair(&mut t, p, s, Timestamp::from_micros(now));
            assert_eq!(n, 2, "a matching pair gives one release and one drop");
        });
}

#[divan::bench]
fn udp64_parse_only(b: divan::Bencher) {
    parse_only(b, udp_frame, udp_template());
}

#[divan::bench]
fn udp64_pair(b: divan::Bencher) {
    through_tracker(b, udp_frame, udp_template());
}

#[divan::bench]
fn tcp1460_parse_only(b: divan::Bencher) {
    parse_only(b, tcp_frame, tcp_template());
}

#[divan::bench]
fn tcp1460_pair(b: divan::Bencher) {
    through_tracker(b, tcp_frame, tcp_template());
}
