//! Offline replay: the engine run over two captures, with time taken from the captures.
//!
//! An operator who wants to know why checkpoints spiked captures both guests' output and
//! replays it here; because the tracker is the same code the daemon runs, the replay gives the
//! same decisions the daemon would have made. The COLO controller is modelled as answering
//! every checkpoint request at once (a flush at the request's time) unless told otherwise; at
//! the end of the captures whatever is still held is flushed and reported apart from what
//! matched.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::TrackerConfig;
use crate::event::{CheckpointReason, DropReason, Event, ReleaseReason};
use crate::flow::Side;
use crate::frame::Frame;
use crate::registry::Registry;
use crate::time::Timestamp;
use crate::tracker::Tracker;

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Shift the secondary capture so that its first frame coincides with the primary's.
    pub align_start: bool,
    /// Flush at every checkpoint request, as a responsive COLO controller would.
    pub flush_on_request: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            align_start: false,
            flush_on_request: true,
        }
    }
}

/// Frames per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerSide {
    /// Primary frames.
    pub primary: u64,
    /// Secondary frames.
    pub secondary: u64,
}

/// One checkpoint request seen during the replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckpointRecord {
    /// `mismatch`, `timeout`, `queue-full`, `table-full` or `over-budget`.
    pub reason: &'static str,
    /// The flow concerned, if any.
    pub flow: Option<String>,
    /// Milliseconds since the first primary frame.
    pub time_ms: f64,
    /// The comparator that found a mismatch.
    pub comparator: Option<&'static str>,
    /// First differing byte within the primary frame, for mismatches.
    pub offset: Option<usize>,
    /// The field that byte falls in, for mismatches.
    pub field: Option<&'static str>,
    /// The whole reason as one line.
    pub detail: String,
    /// Observe mode: protection would have requested it; nothing was requested.
    pub would_be: bool,
}

/// Held-time percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HeldPercentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// What a replay found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Frames read per side.
    pub frames: PerSide,
    /// Primary frames released, by reason (the final flush excluded).
    pub released: BTreeMap<&'static str, u64>,
    /// Packets dropped, by side and reason.
    pub dropped: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Every checkpoint request, in order.
    pub checkpoints: Vec<CheckpointRecord>,
    /// Observe mode: how the comparisons of primary frames released on arrival ended, by the
    /// reason protection would have released them for (the final flush excluded).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub would_release: BTreeMap<&'static str, u64>,
    /// Primary frames still held at the end and released by the final flush (in observe mode:
    /// copies whose comparison the end of the captures cut short).
    pub flushed_at_end: u64,
    /// How long released primary frames were held (final flush excluded).
    pub held_ms: HeldPercentiles,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Replays two captures (frames with their capture time, each in capture order) through a
/// tracker built from `config` and `registry`.
pub fn replay(
    primary: Vec<(Timestamp, Frame)>,
    secondary: Vec<(Timestamp, Frame)>,
    config: TrackerConfig,
    registry: Arc<Registry>,
    options: ReplayOptions,
) -> ReplayReport {
    let first = |v: &[(Timestamp, Frame)]| v.iter().map(|(t, _)| *t).min();
    let origin = first(&primary)
        .or(first(&secondary))
        .unwrap_or(Timestamp::ZERO);
    let (p0, s0) = (first(&primary), first(&secondary));
    let shift = |t: Timestamp| -> Timestamp {
        match (options.align_start, p0, s0) {
            (true, Some(p0), Some(s0)) => Timestamp::from_micros(
                (t.as_micros() + p0.as_micros()).saturating_sub(s0.as_micros()),
            ),
            _ => t,
        }
    };
    let mut input: Vec<(Timestamp, Side, Frame)> = primary
        .into_iter()
        .map(|(t, f)| (t, Side::Primary, f))
        .chain(
            secondary
                .into_iter()
                .map(|(t, f)| (shift(t), Side::Secondary, f)),
        )
        .collect();
    // Stable: within one timestamp each capture keeps its order, the primary's first.
    input.sort_by_key(|(t, side, _)| (*t, side.index()));

    let mut report = ReplayReport::default();
    let mut tracker = Tracker::new(config, registry, origin);
    let mut now = origin;
    for (t, side, frame) in input {
        now = now.max(t);
        while let Some(due) = tracker.poll_timeout().filter(|d| *d <= now) {
            tracker.handle_timeout(due);
            collect(&mut tracker, &mut report, origin, due, options);
        }
        tracker.handle_frame(side, frame, now);
        collect(&mut tracker, &mut report, origin, now, options);
        match side {
            Side::Primary => report.frames.primary += 1,
            Side::Secondary => report.frames.secondary += 1,
        }
    }
    let before_end = tracker.counters().clone();
    tracker.handle_checkpoint(now);
    while tracker.poll_event().is_some() {}
    let end = tracker.counters();
    let flush = ReleaseReason::CheckpointFlush.index();
    report.flushed_at_end = (end.released[flush] - before_end.released[flush])
        + (end.would_release[flush] - before_end.would_release[flush]);
    for (i, name) in ReleaseReason::NAMES.iter().enumerate() {
        if before_end.released[i] > 0 {
            report.released.insert(name, before_end.released[i]);
        }
        if before_end.would_release[i] > 0 {
            report
                .would_release
                .insert(name, before_end.would_release[i]);
        }
    }
    for side in Side::BOTH {
        let by_reason: BTreeMap<&'static str, u64> = DropReason::NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| end.dropped[side.index()][*i] > 0)
            .map(|(i, name)| (*name, end.dropped[side.index()][i]))
            .collect();
        if !by_reason.is_empty() {
            report.dropped.insert(side.name(), by_reason);
        }
    }
    let h = &before_end.held_time;
    let p = |q: f64| h.percentile(q).map_or(0.0, |d| ms(d.as_micros() as u64));
    report.held_ms = HeldPercentiles {
        p50: p(0.5),
        p90: p(0.9),
        p99: p(0.99),
        max: ms(h.max().as_micros() as u64),
    };
    report
}

fn collect(
    tracker: &mut Tracker,
    report: &mut ReplayReport,
    origin: Timestamp,
    now: Timestamp,
    options: ReplayOptions,
) {
    let mut requested = false;
    while let Some(event) = tracker.poll_event() {
        let (reason, would_be) = match event {
            Event::Checkpoint(reason) => (reason, false),
            // The tracker answers would-be requests itself: no flush here.
            Event::WouldCheckpoint(reason) => (reason, true),
            Event::Release { .. } | Event::Drop { .. } => continue,
        };
        requested |= !would_be;
        let (comparator, offset, field) = match &reason {
            CheckpointReason::Mismatch(m) => (
                Some(m.comparator),
                Some(m.difference.offset),
                Some(m.difference.field),
            ),
            _ => (None, None, None),
        };
        report.checkpoints.push(CheckpointRecord {
            reason: reason.name(),
            flow: reason.flow().map(|f| f.to_string()),
            time_ms: ms(now.as_micros().saturating_sub(origin.as_micros())),
            comparator,
            offset,
            field,
            detail: reason.to_string(),
            would_be,
        });
    }
    if requested && options.flush_on_request {
        tracker.handle_checkpoint(now);
        while tracker.poll_event().is_some() {}
    }
}
