//! The Prometheus text exposition of every pipeline's state: what `GET /metrics` returns.
//!
//! Every number comes from a [`PipelineSnapshot`]: the engine's own counters (counted where
//! each decision is made), the output's and the capture's published state. Families are
//! written whole (all pipelines of one metric together) with `HELP` and `TYPE`, counters end
//! in `_total`, and the held-time histogram uses power-of-two microsecond bounds, where the
//! engine's histogram counts exactly. (A bucket counts held times below its bound at the
//! engine's microsecond resolution; `le` means "at most", and the two differ only for a time
//! of exactly that many microseconds.)

use std::fmt::Write as _;
use std::time::Duration;

use colo_actors::{BeaconStatus, PipelineSnapshot, RequestPath};
use colo_core::{CheckpointReason, DropReason, ReleaseReason, Side};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram bounds: 2^k microseconds, 8 µs to about 33.5 s.
const BOUND_EXPONENTS: std::ops::RangeInclusive<u32> = 3..=25;

/// Writes metric families into a string.
struct Exposition {
    out: String,
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// One family with one sample per pipeline, labelled only by pipeline.
    fn per_pipeline(
        &mut self,
        pipelines: &[PipelineSnapshot],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&PipelineSnapshot) -> u64,
    ) {
        self.family(name, kind, help);
        for p in pipelines {
            self.sample(name, &[("pipeline", &p.name)], value(p));
        }
    }

    /// One family with one sample per pipeline and side.
    fn per_side(
        &mut self,
        pipelines: &[PipelineSnapshot],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&PipelineSnapshot, Side) -> u64,
    ) {
        self.family(name, kind, help);
        for p in pipelines {
            for side in Side::BOTH {
                self.sample(
                    name,
                    &[("pipeline", &p.name), ("side", side.name())],
                    value(p, side),
                );
            }
        }
    }

    /// One family with one sample per pipeline and reason.
    fn per_reason(
        &mut self,
        pipelines: &[PipelineSnapshot],
        name: &str,
        help: &str,
        names: &[&str],
        value: impl Fn(&PipelineSnapshot, usize) -> u64,
    ) {
        self.family(name, "counter", help);
        for p in pipelines {
            for (i, reason) in names.iter().enumerate() {
                self.sample(
                    name,
                    &[("pipeline", &p.name), ("reason", reason)],
                    value(p, i),
                );
            }
        }
    }
}

/// The exposition of `pipelines`.
pub fn render(pipelines: &[PipelineSnapshot]) -> String {
    let mut e = Exposition { out: String::new() };
    let ps = pipelines;
    e.per_pipeline(
        ps,
        "colo_observe_mode",
        "gauge",
        "1 when the pipeline runs in observe mode (primary released at once, checkpoints not requested).",
        |p| u64::from(p.observe),
    );
    e.per_pipeline(
        ps,
        "colo_failed_over",
        "gauge",
        "1 once failover has happened: the primary passes straight through.",
        |p| u64::from(p.failed_over),
    );
    e.per_side(
        ps,
        "colo_frames_received_total",
        "counter",
        "Frames received per side (zero-length frames excluded).",
        |p, s| p.counters.received[s.index()],
    );
    e.per_side(
        ps,
        "colo_received_bytes_total",
        "counter",
        "Bytes of frame data received per side.",
        |p, s| p.counters.received_bytes[s.index()],
    );
    e.per_side(
        ps,
        "colo_empty_frames_total",
        "counter",
        "Zero-length frames skipped per side.",
        |p, s| p.counters.empty_frames[s.index()],
    );
    e.per_reason(
        ps,
        "colo_released_total",
        "Primary packets released to the output, by reason (observed: released on arrival in observe mode).",
        &ReleaseReason::NAMES,
        |p, i| p.counters.released[i],
    );
    e.family(
        "colo_dropped_total",
        "counter",
        "Packets that left without being output, by side and reason (a primary one only over budget).",
    );
    for p in ps {
        for side in Side::BOTH {
            for (i, reason) in DropReason::NAMES.iter().enumerate() {
                e.sample(
                    "colo_dropped_total",
                    &[
                        ("pipeline", &p.name),
                        ("side", side.name()),
                        ("reason", reason),
                    ],
                    p.counters.dropped[side.index()][i],
                );
            }
        }
    }
    e.per_side(
        ps,
        "colo_held_packets",
        "gauge",
        "Packets held now, per side (in observe mode including copies of released packets).",
        |p, s| p.counters.held[s.index()],
    );
    e.per_pipeline(
        ps,
        "colo_held_bytes",
        "gauge",
        "Bytes held now, both sides.",
        |p| p.counters.held_bytes,
    );
    e.per_reason(
        ps,
        "colo_checkpoint_requests_total",
        "Checkpoint requests (DO_CHECKPOINT), by reason.",
        &CheckpointReason::NAMES,
        |p, i| p.counters.checkpoints[i],
    );
    e.per_reason(
        ps,
        "colo_would_be_checkpoints_total",
        "Observe mode: checkpoint requests protection would have made, by reason (none sent).",
        &CheckpointReason::NAMES,
        |p, i| p.counters.would_checkpoints[i],
    );
    e.per_reason(
        ps,
        "colo_would_be_released_total",
        "Observe mode: copies of released primary packets whose comparison ended, by the reason protection would have released them for.",
        &ReleaseReason::NAMES,
        |p, i| p.counters.would_release[i],
    );
    e.per_pipeline(
        ps,
        "colo_flushes_total",
        "counter",
        "Checkpoint flushes performed (COLO_CHECKPOINT or the control socket).",
        |p| p.counters.flushes,
    );
    e.per_pipeline(
        ps,
        "colo_connections",
        "gauge",
        "Connections tracked now.",
        |p| p.counters.flows,
    );
    e.per_pipeline(
        ps,
        "colo_connections_created_total",
        "counter",
        "Connections created since start.",
        |p| p.counters.flows_created,
    );
    e.per_pipeline(
        ps,
        "colo_connections_evicted_total",
        "counter",
        "Idle connections evicted to make room in a full table.",
        |p| p.counters.flows_evicted,
    );
    e.per_pipeline(
        ps,
        "colo_compacted_packets_total",
        "counter",
        "Held packets copied out of the read buffer they shared, after 100 ms held.",
        |p| p.counters.compacted,
    );
    e.family(
        "colo_comparator_decisions_total",
        "counter",
        "Comparisons per comparator, by decision.",
    );
    for p in ps {
        for c in &p.counters.comparators {
            for (decision, n) in [("matched", c.matched), ("mismatched", c.mismatched)] {
                e.sample(
                    "colo_comparator_decisions_total",
                    &[
                        ("pipeline", &p.name),
                        ("comparator", c.name),
                        ("decision", decision),
                    ],
                    n,
                );
            }
        }
    }
    e.family(
        "colo_comparator_connections_total",
        "counter",
        "Connections each comparator took.",
    );
    for p in ps {
        for c in &p.counters.comparators {
            e.sample(
                "colo_comparator_connections_total",
                &[("pipeline", &p.name), ("comparator", c.name)],
                c.flows,
            );
        }
    }
    held_histogram(&mut e, ps);
    e.per_pipeline(
        ps,
        "colo_output_connected",
        "gauge",
        "1 while an output peer is connected.",
        |p| u64::from(p.output.connected),
    );
    e.per_pipeline(
        ps,
        "colo_output_buffered_frames",
        "gauge",
        "Released frames waiting to be written.",
        |p| p.output.buffered_frames,
    );
    e.per_pipeline(
        ps,
        "colo_output_buffered_bytes",
        "gauge",
        "Bytes of released frames waiting to be written.",
        |p| p.output.buffered_bytes,
    );
    e.per_pipeline(
        ps,
        "colo_output_written_frames_total",
        "counter",
        "Frames written to the output.",
        |p| p.output.written_frames,
    );
    e.per_pipeline(
        ps,
        "colo_output_written_bytes_total",
        "counter",
        "Bytes written to the output, framing included.",
        |p| p.output.written_bytes,
    );
    let captured: Vec<PipelineSnapshot> =
        ps.iter().filter(|p| p.capture.is_some()).cloned().collect();
    let capture = |p: &PipelineSnapshot| p.capture.clone().unwrap_or_default();
    e.per_pipeline(
        &captured,
        "colo_capture_written_total",
        "counter",
        "Mismatches written to the capture file.",
        |p| capture(p).written,
    );
    e.per_pipeline(
        &captured,
        "colo_capture_skipped_total",
        "counter",
        "Mismatches not captured (a bound was reached or writing failed).",
        |p| capture(p).skipped,
    );
    e.per_pipeline(
        &captured,
        "colo_capture_bytes",
        "gauge",
        "Size of the capture file.",
        |p| capture(p).bytes,
    );
    e.family(
        "colo_checkpoint_request_paths_total",
        "counter",
        "How checkpoint requests left: beacon_poke, qmp, notify (DO_CHECKPOINT), merged with one waiting for its flush, or unsent.",
    );
    for p in ps {
        for path in RequestPath::ALL {
            e.sample(
                "colo_checkpoint_request_paths_total",
                &[("pipeline", &p.name), ("path", path.name())],
                p.requests.get(path),
            );
        }
    }
    beacon(&mut e, ps);
    e.out
}

/// A counter family of the beacon: name, help, value.
type BeaconFamily = (&'static str, &'static str, fn(&BeaconStatus) -> u64);

/// The KVM beacon's families, for the pipelines in beacon mode.
fn beacon(e: &mut Exposition, pipelines: &[PipelineSnapshot]) {
    let beacons: Vec<(&str, &BeaconStatus)> = pipelines
        .iter()
        .filter_map(|p| Some((p.name.as_str(), p.beacon.as_ref()?)))
        .collect();
    let counters: [BeaconFamily; 4] = [
        (
            "colo_beacon_flushes_total",
            "Checkpoints seen: flushes made when the parked beacon frame came out (QEMU's flush point).",
            |b| b.counters.flushes,
        ),
        (
            "colo_beacon_missed_total",
            "Missed beacons: flushes made late, at the primary's RESUME, because no beacon frame came after its STOP.",
            |b| b.counters.missed,
        ),
        (
            "colo_beacon_stale_frames_total",
            "Beacon frames that came out but were not the parked one (earlier connection or run, or overdue): no flush.",
            |b| b.counters.stale,
        ),
        (
            "colo_beacon_foreign_frames_total",
            "Frames out of the beacon that are no beacon frame (ignored).",
            |b| b.counters.foreign,
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, "counter", help);
        for (pipeline, b) in &beacons {
            e.sample(name, &[("pipeline", pipeline)], value(b));
        }
    }
    e.family(
        "colo_beacon_up",
        "gauge",
        "1 while the beacon's socket is connected (primary_in, secondary_in) or the QMP session is up (qmp), and while a frame is parked (armed).",
    );
    for (pipeline, b) in &beacons {
        for (link, up) in [
            ("primary_in", b.primary_in),
            ("secondary_in", b.secondary_in),
            ("qmp", b.qmp),
            ("armed", b.armed),
        ] {
            e.sample(
                "colo_beacon_up",
                &[("pipeline", pipeline), ("link", link)],
                u64::from(up),
            );
        }
    }
    e.family(
        "colo_beacon_in_colo",
        "gauge",
        "1 while the primary is known to be in COLO; 0 before, and after COLO_EXIT.",
    );
    for (pipeline, b) in &beacons {
        e.sample(
            "colo_beacon_in_colo",
            &[("pipeline", pipeline)],
            u64::from(b.colo),
        );
    }
    e.family(
        "colo_beacon_qmp_events_total",
        "counter",
        "Events of the primary's QMP the beacon uses (stop and resume while in COLO; migration_pass, one per checkpoint, needs the events capability).",
    );
    for (pipeline, b) in &beacons {
        let c = &b.counters;
        for (event, n) in [
            ("stop", c.stops),
            ("resume", c.resumes),
            ("migration_pass", c.migration_passes),
            ("colo_exit", c.colo_exits),
        ] {
            e.sample(
                "colo_beacon_qmp_events_total",
                &[("pipeline", pipeline), ("event", event)],
                n,
            );
        }
    }
    let name = "colo_beacon_delay_after_stop_seconds";
    e.family(
        name,
        "histogram",
        "How long after the primary's STOP (QEMU's event time) the beacon frame was read.",
    );
    let bucket = format!("{name}_bucket");
    for (pipeline, b) in &beacons {
        let h = &b.counters.delay_after_stop;
        for k in BOUND_EXPONENTS {
            let le = Duration::from_micros(1 << k).as_secs_f64().to_string();
            e.sample(
                &bucket,
                &[("pipeline", pipeline), ("le", &le)],
                h.count_below(Duration::from_micros(1 << k)),
            );
        }
        e.sample(
            &bucket,
            &[("pipeline", pipeline), ("le", "+Inf")],
            h.count(),
        );
        e.sample(
            &format!("{name}_sum"),
            &[("pipeline", pipeline)],
            h.sum().as_secs_f64(),
        );
        e.sample(
            &format!("{name}_count"),
            &[("pipeline", pipeline)],
            h.count(),
        );
    }
}

fn held_histogram(e: &mut Exposition, pipelines: &[PipelineSnapshot]) {
    let name = "colo_held_seconds";
    e.family(
        name,
        "histogram",
        "How long primary packets were held before release: the latency COLO adds (observe mode: would have held).",
    );
    let bucket = format!("{name}_bucket");
    for p in pipelines {
        let h = &p.counters.held_time;
        for k in BOUND_EXPONENTS {
            let bound = Duration::from_micros(1 << k);
            let le = bound.as_secs_f64().to_string();
            e.sample(
                &bucket,
                &[("pipeline", &p.name), ("le", &le)],
                h.count_below(bound),
            );
        }
        e.sample(&bucket, &[("pipeline", &p.name), ("le", "+Inf")], h.count());
        e.sample(
            &format!("{name}_sum"),
            &[("pipeline", &p.name)],
            h.sum().as_secs_f64(),
        );
        e.sample(
            &format!("{name}_count"),
            &[("pipeline", &p.name)],
            h.count(),
        );
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use colo_actors::OutputStatus;
    use colo_core::Counters;

    fn snapshot(name: &str) -> PipelineSnapshot {
        let mut counters = Counters {
            received: [3, 2],
            ..Counters::default()
        };
        counters.released[ReleaseReason::Matched.index()] = 2;
        for us in [5, 100, 3000] {
            counters.held_time.record(Duration::from_micros(us));
        }
        PipelineSnapshot {
            name: name.to_string(),
            observe: false,
            failed_over: false,
            counters,
            output: OutputStatus::default(),
            capture: None,
            requests: Default::default(),
            beacon: None,
        }
    }

    fn value(text: &str, sample: &str) -> Option<String> {
        text.lines().find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')
                .map(str::to_string)
        })
    }

    #[test]
    fn samples_carry_the_pipeline_and_families_are_whole() {
        let text = render(&[snapshot("a"), snapshot("b\"x")]);
        assert_eq!(
            value(
                &text,
                r#"colo_frames_received_total{pipeline="a",side="primary"}"#
            ),
            Some("3".into())
        );
        assert_eq!(
            value(
                &text,
                r#"colo_released_total{pipeline="b\"x",reason="matched"}"#
            ),
            Some("2".into())
        );
        let mut seen = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).expect("name");
            assert!(!seen.contains(&name), "{name} declared twice");
            seen.push(name);
        }
    }

    #[test]
    fn beacon_pipelines_show_the_beacon_and_every_pipeline_its_request_paths() {
        let mut b = snapshot("kvm");
        b.requests.add(RequestPath::Poke);
        b.requests.add(RequestPath::Poke);
        let mut status = BeaconStatus {
            primary_in: true,
            armed: true,
            ..BeaconStatus::default()
        };
        status.counters.flushes = 5;
        status.counters.missed = 1;
        status.counters.stops = 6;
        status
            .counters
            .delay_after_stop
            .record(Duration::from_micros(1200));
        b.beacon = Some(status);
        let text = render(&[snapshot("xen"), b]);
        let v = |s: &str| value(&text, s);
        assert_eq!(
            v(r#"colo_checkpoint_request_paths_total{pipeline="kvm",path="beacon_poke"}"#),
            Some("2".into())
        );
        assert_eq!(
            v(r#"colo_checkpoint_request_paths_total{pipeline="xen",path="notify"}"#),
            Some("0".into())
        );
        assert_eq!(
            v(r#"colo_beacon_flushes_total{pipeline="kvm"}"#),
            Some("5".into())
        );
        assert_eq!(v(r#"colo_beacon_flushes_total{pipeline="xen"}"#), None);
        assert_eq!(
            v(r#"colo_beacon_missed_total{pipeline="kvm"}"#),
            Some("1".into())
        );
        assert_eq!(
            v(r#"colo_beacon_up{pipeline="kvm",link="secondary_in"}"#),
            Some("0".into())
        );
        assert_eq!(
            v(r#"colo_beacon_qmp_events_total{pipeline="kvm",event="stop"}"#),
            Some("6".into())
        );
        assert_eq!(
            v(r#"colo_beacon_delay_after_stop_seconds_bucket{pipeline="kvm",le="0.002048"}"#),
            Some("1".into())
        );
        assert_eq!(
            v(r#"colo_beacon_delay_after_stop_seconds_bucket{pipeline="kvm",le="0.001024"}"#),
            Some("0".into())
        );
    }

    #[test]
    fn the_histogram_is_cumulative_in_seconds() {
        let text = render(&[snapshot("a")]);
        let b = |le: &str| {
            value(
                &text,
                &format!(r#"colo_held_seconds_bucket{{pipeline="a",le="{le}"}}"#),
            )
        };
        assert_eq!(b("0.000008"), Some("1".into()));
        assert_eq!(b("0.000128"), Some("2".into()));
        assert_eq!(b("0.004096"), Some("3".into()));
        assert_eq!(b("+Inf"), Some("3".into()));
        assert_eq!(
            value(&text, r#"colo_held_seconds_sum{pipeline="a"}"#),
            Some("0.003105".into())
        );
    }
}
