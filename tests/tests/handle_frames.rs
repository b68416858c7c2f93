//! `Tracker::handle_frames` (a batch, classified ahead of its turn) must decide exactly as
//! `Tracker::handle_frame` called for each frame: the same events in the same order and the
//! same counters, through matches, mismatches, resegmented TCP, table evictions and a full
//! table.

use std::sync::Arc;

use colo_core::registry::{ComparatorsConfig, Registry};
use colo_core::{Decoded, Decoder, Frame, Side, Timestamp, Tracker, TrackerConfig};
use colo_tests::loadgen::workload::{Proto, Resegment, Workload, WorkloadSpec};
// Links the built-in comparators' registrations into this test binary.
use colo_protocols as _;

fn decode(wire: &[u8]) -> Vec<Frame> {
    let mut d = Decoder::new(false);
    d.feed(wire);
    std::iter::from_fn(|| match d.next_frame() {
        Ok(Some(Decoded::Frame(f))) => Some(f),
        _ => None,
    })
    .collect()
}

/// Batches of primary and secondary frames, the secondary's sometimes lagging a batch behind.
fn batches(spec: WorkloadSpec, units: usize, per_batch: usize) -> Vec<(Side, Vec<Frame>)> {
    let mut w = Workload::new(spec).expect("valid workload");
    let mut out = Vec::new();
    let mut lagging: Option<Vec<Frame>> = None;
    for b in 0..units / per_batch {
        let (mut p, mut s) = (Vec::new(), Vec::new());
        for _ in 0..per_batch {
            w.next_unit(&mut p, &mut s);
        }
        out.push((Side::Primary, decode(&p)));
        if let Some(old) = lagging.take() {
            out.push((Side::Secondary, old));
        }
        if b % 3 == 1 {
            lagging = Some(decode(&s));
        } else {
            out.push((Side::Secondary, decode(&s)));
        }
    }
    out.extend(lagging.map(|s| (Side::Secondary, s)));
    out
}

fn tracker(max_connections: u32) -> Tracker {
    let registry = Registry::build(&ComparatorsConfig::default()).expect("registry");
    let config = TrackerConfig {
        max_connections,
        ..TrackerConfig::default()
    };
    Tracker::new(config, Arc::new(registry), Timestamp::ZERO)
}

fn events(t: &mut Tracker) -> Vec<String> {
    std::iter::from_fn(|| t.poll_event())
        .map(|e| format!("{e:?}"))
        .collect()
}

fn same_decisions(spec: WorkloadSpec, max_connections: u32) {
    let input = batches(spec.clone(), 600, 20);
    let (mut one, mut many) = (tracker(max_connections), tracker(max_connections));
    for (i, (side, frames)) in input.into_iter().enumerate() {
        let now = Timestamp::from_micros(i as u64 * 10);
        for f in frames.iter().cloned() {
            one.handle_frame(side, f, now);
        }
        many.handle_frames(side, frames, now);
        assert_eq!(events(&mut one), events(&mut many), "{spec:?}, batch {i}");
        if i % 7 == 6 {
            one.handle_checkpoint(now);
            many.handle_checkpoint(now);
        }
    }
    assert_eq!(one.counters(), many.counters(), "{spec:?}");
    assert!(one.counters().received[0] > 0);
}

#[test]
fn a_batch_decides_as_frame_by_frame() {
    for (proto, resegment, mismatch, flows) in [
        (Proto::Udp, Resegment::None, 0.0, 64),
        (Proto::Mixed, Resegment::Split, 0.1, 300),
        (Proto::Tcp, Resegment::Merge, 0.05, 7),
    ] {
        let spec = WorkloadSpec {
            proto,
            size: 200,
            flows,
            resegment,
            mismatch,
        };
        same_decisions(spec.clone(), 65536);
        // A table smaller than the flows: evictions and table-full requests.
        same_decisions(spec, 50);
    }
}
