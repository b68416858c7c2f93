//! Micro-benchmark of the engine: `handle_frame` + compare for one primary/secondary pair,
//! next to a baseline that only classifies the same two frames, in the same run.
//!
//! Each benchmark builds its frames the same way (a copy of a template with the sequence
//! number or flow patched in), so the difference between `*_pair` and `*_parse_only` is the
//! cost of flow lookup, queueing, comparison and emitting the events.
//!
//! `*_100k_flows` spreads the pairs over 100 000 flows, where the flow table no longer fits in
//! the caches; `decode_*` is the frame decoder alone, per frame of a 64 KiB read. The whole
//! daemon is measured by `tests/bench/run.sh`.
//!
//! Run: `cargo bench -p colo-tests --bench engine` (add `-- --sample-count 10` for a short run).

use std::sync::Arc;

use bytes::Bytes;
use colo_core::frame::encode;
use colo_core::packet::classify;
use colo_core::registry::{ComparatorsConfig, Registry};
use colo_core::{Decoded, Decoder, Frame, Side, Timestamp, Tracker, TrackerConfig};
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
    udp_frame_of(template, i % u64::from(FLOWS))
}

/// The same frame on flow `i % 100 000` (the flow number in the source address and port).
fn udp_frame_100k(template: &[u8], i: u64) -> Frame {
    udp_frame_of(template, i % 100_000)
}

fn udp_frame_of(template: &[u8], flow: u64) -> Frame {
    let mut v = template.to_vec();
    let port = 1000 + (flow % 50_000) as u16;
    v[34..36].copy_from_slice(&port.to_be_bytes());
    v[28..30].copy_from_slice(&((flow / 50_000) as u16).to_be_bytes());
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
    let config = TrackerConfig {
        max_connections: 262_144,
        ..TrackerConfig::default()
    };
    Tracker::new(config, Arc::new(registry), Timestamp::ZERO)
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
fn udp64_pair_100k_flows(b: divan::Bencher) {
    through_tracker(b, udp_frame_100k, udp_template());
}

/// One read's worth (64 KiB) of 64-byte UDP frames in the filter framing.
fn udp64_chunk() -> Vec<u8> {
    let template = udp_template();
    let mut wire = Vec::new();
    for i in 0.. {
        let f = udp_frame(&template, i);
        if wire.len() + f.encoded_len(false) > 64 * 1024 {
            break;
        }
        encode(&f, false, &mut wire);
    }
    wire
}

#[divan::bench]
fn decode_udp64_per_frame(b: divan::Bencher) {
    let wire = udp64_chunk();
    let frames = wire.len() / 64;
    b.counter(divan::counter::ItemsCount::new(frames))
        .bench_local(|| {
            let mut d = Decoder::new(false);
            d.feed(divan::black_box(&wire));
            let mut n = 0;
            while let Ok(Some(Decoded::Frame(f))) = d.next_frame() {
                n += 1;
                divan::black_box(f);
            }
            assert_eq!(n, frames);
        });
}

#[divan::bench]
fn tcp1460_parse_only(b: divan::Bencher) {
    parse_only(b, tcp_frame, tcp_template());
}

#[divan::bench]
fn tcp1460_pair(b: divan::Bencher) {
    through_tracker(b, tcp_frame, tcp_template());
}
