//! Fuzz target: the tracker driven by an arbitrary sequence of frames, timeouts, checkpoints,
//! setting changes, failover and shutdown.
//!
//! The settings are drawn from the input too, tiny queues, budgets and tables included, so the
//! queue-full, table-full and over-budget paths are as reachable as matching. After every
//! input the [`Audit`] checks the counters identity and the independent ledger (no frame
//! released twice or without being fed), and the step itself is checked against what the
//! design promises for it.

use std::sync::{Arc, OnceLock};

use colo_core::config::PassthroughRule;
use colo_core::packet::{Classified, classify};
use colo_core::registry::ComparatorsConfig;
use colo_core::{
    CheckpointReason, DropReason, Event, Frame, Registry, ReleaseReason, Side, Timestamp, Tracker,
    TrackerConfig,
};

use super::audit::Audit;
use super::input::Input;
use super::traffic::{Streams, mutate};

/// Inputs per run at most, so that one fuzz input cannot take seconds.
const MAX_STEPS: usize = 2000;

/// The comparators the daemon ships, which the program running the target must link (as the
/// daemon does: `use colo_protocols as _; use colo_ntp as _; use colo_dns as _;`). This
/// library does not link the plugins itself, or every test binary using it would get them.
pub const SHIPPED: [&str; 6] = ["dns", "icmp", "ip", "ntp", "tcp", "udp"];

/// The registry with default settings, and one with every datagram comparator strict.
fn registry(strict: bool) -> Arc<Registry> {
    static BUILT: OnceLock<[Arc<Registry>; 2]> = OnceLock::new();
    let [plain, strict_one] = BUILT.get_or_init(|| {
        let linked: Vec<&str> = Registry::registrations().iter().map(|r| r.name).collect();
        assert!(
            SHIPPED.iter().all(|n| linked.contains(n)),
            "the fuzzing program must link the shipped comparators {SHIPPED:?}; linked: {linked:?}"
        );
        let build = |config: &ComparatorsConfig| {
            Arc::new(
                Registry::build(config)
                    .unwrap_or_else(|e| panic!("the shipped comparators build: {e}")),
            )
        };
        let mut config = ComparatorsConfig::default();
        for name in ["udp", "icmp", "ip"] {
            let value = ron::from_str("(strict: true)")
                .unwrap_or_else(|e| panic!("a strict section parses: {e}"));
            config.settings.insert(name.to_string(), value);
        }
        [build(&ComparatorsConfig::default()), build(&config)]
    });
    Arc::clone(if strict { strict_one } else { plain })
}

/// Settings drawn from the input: mostly small, so that every limit is reached.
fn settings(input: &mut Input<'_>, observe: bool) -> TrackerConfig {
    let sizes = input.u8();
    let passthrough = match input.below(8) {
        0 => vec![PassthroughRule {
            protocol: Some(17),
            port: Some(7000),
            ..PassthroughRule::default()
        }],
        1 => vec![PassthroughRule {
            ethertype: Some(0x86dd),
            ..PassthroughRule::default()
        }],
        _ => Vec::new(),
    };
    TrackerConfig {
        compare_timeout: 1 + u64::from(input.u16() % 5000),
        expired_scan_cycle: 1 + u64::from(input.u16() % 2000),
        max_queue_size: 1 + u32::from(sizes & 7),
        max_held_bytes: match (sizes >> 3) & 3 {
            0 => TrackerConfig::default().max_held_bytes,
            1 => 1 + u64::from(input.u16()),
            _ => 1 + u64::from(input.u16()) * 16,
        },
        max_connections: if sizes & 0x20 == 0 {
            1 + u32::from(input.u8() & 7)
        } else {
            TrackerConfig::default().max_connections
        },
        passthrough,
        observe,
    }
}

/// The fuzzed world: the engine, the outside account and the clock.
struct Run {
    tracker: Tracker,
    audit: Audit,
    streams: Streams,
    now: Timestamp,
}

impl Run {
    fn tick(&mut self, input: &mut Input<'_>) -> Timestamp {
        self.now = Timestamp::from_micros(self.now.as_micros() + u64::from(input.u8()) * 50);
        self.now
    }

    /// Feeds one frame and checks the step: an uncompared or failed-over primary frame goes out
    /// at once, a failed-over secondary frame is dropped at once.
    fn feed(&mut self, side: Side, frame: Frame, now: Timestamp) {
        self.audit.ledger.fed(side, &frame);
        let uncompared = matches!(classify(&frame), Classified::Uncompared(_));
        let failed_over = self.tracker.failed_over();
        self.tracker.handle_frame(side, frame.clone(), now);
        let events = self.audit.settle(&mut self.tracker);
        let released_now = events.iter().any(|e| {
            matches!(e, Event::Release { frame: f, reason, .. }
                if *f == frame && (!failed_over || *reason == ReleaseReason::Failover))
        });
        match side {
            Side::Primary if uncompared || failed_over => {
                assert!(
                    released_now,
                    "primary frame not released at once: {events:?}"
                )
            }
            Side::Secondary if failed_over => assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::Drop {
                        side: Side::Secondary,
                        reason: DropReason::Failover,
                        ..
                    }
                )),
                "secondary frame after failover not dropped at once"
            ),
            _ => {}
        }
    }

    /// Time passes; a due scan raises at most one timeout request, and exactly one when a
    /// held packet is older than the timeout.
    fn timeout(&mut self, input: &mut Input<'_>) {
        let step = u64::from(input.u16()) * 1000;
        let mut now = Timestamp::from_micros(self.now.as_micros() + step);
        let due = self.tracker.poll_timeout();
        if input.bool() {
            if let Some(due) = due {
                now = now.max(due);
            }
        }
        self.now = now;
        let limit = self.tracker.config().timeout();
        let expired = self
            .tracker
            .flows()
            .iter()
            .filter_map(|f| f.oldest)
            .any(|t| now.saturating_since(t) > limit);
        let scans = due.is_some_and(|d| now >= d);
        self.tracker.handle_timeout(now);
        let events = self.audit.settle(&mut self.tracker);
        let timeouts = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Checkpoint(CheckpointReason::Timeout { .. })
                        | Event::WouldCheckpoint(CheckpointReason::Timeout { .. })
                )
            })
            .count();
        let want = usize::from(scans && expired);
        assert_eq!(
            timeouts, want,
            "timeout requests in one scan (due {due:?}, now {now:?}, expired {expired})"
        );
    }
}

/// Runs the target on one input; panics when a property breaks.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let observe = mode & 3 == 3;
    let strict = mode & 4 == 4;
    let config = settings(&mut input, observe);
    let tracker = Tracker::new(config, registry(strict), Timestamp::ZERO);
    let mut run = Run {
        audit: Audit::new(&tracker),
        tracker,
        streams: Streams::default(),
        now: Timestamp::ZERO,
    };
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.below(16) {
            0..=2 => {
                let choice = run.streams.choose(&mut input, 0);
                let frame = run.streams.build(&choice);
                let now = run.tick(&mut input);
                run.feed(Side::Primary, frame, now);
            }
            3..=4 => {
                let choice = run.streams.choose(&mut input, 1);
                let frame = run.streams.build(&choice);
                let now = run.tick(&mut input);
                run.feed(Side::Secondary, frame, now);
            }
            5..=8 => {
                // Both sides send the same thing, the secondary possibly resegmented, altered
                // by one byte, or first.
                let choice = run.streams.choose(&mut input, 0);
                run.streams.follow(&choice, 1);
                let primary = run.streams.build(&choice);
                let how = input.u8();
                let secondary: Vec<Frame> = match how & 3 {
                    0 | 1 => vec![run.streams.build(&choice)],
                    2 => vec![mutate(
                        &run.streams.build(&choice),
                        usize::from(input.u16()),
                        input.u8(),
                    )],
                    _ => {
                        let cut = input.below(choice.payload.len() + 1);
                        let mut first = choice.clone();
                        first.payload.truncate(cut);
                        first.flags[1] = false;
                        let mut second = choice.clone();
                        second.payload.drain(..cut);
                        second.seq = choice
                            .seq
                            .wrapping_add(u32::try_from(cut).unwrap_or(0))
                            .wrapping_add(u32::from(choice.flags[0]));
                        second.flags[0] = false;
                        vec![run.streams.build(&first), run.streams.build(&second)]
                    }
                };
                let now = run.tick(&mut input);
                if how & 4 == 4 {
                    for s in secondary {
                        run.feed(Side::Secondary, s, now);
                    }
                    run.feed(Side::Primary, primary, now);
                } else {
                    run.feed(Side::Primary, primary, now);
                    for s in secondary {
                        run.feed(Side::Secondary, s, now);
                    }
                }
            }
            9 => {
                let side = if input.bool() {
                    Side::Secondary
                } else {
                    Side::Primary
                };
                let len = usize::from(input.u8()) * 4;
                let raw = input.bytes(len).to_vec();
                let now = run.tick(&mut input);
                run.feed(side, Frame::new(raw), now);
            }
            10..=11 => run.timeout(&mut input),
            12 => {
                let now = run.tick(&mut input);
                run.tracker.handle_checkpoint(now);
                run.audit.settle(&mut run.tracker);
                run.audit.assert_empty(&run.tracker, "a checkpoint");
            }
            13 => {
                let observe = run.tracker.config().observe;
                let next = settings(&mut input, observe);
                if let Err(e) = run.tracker.set_config(next) {
                    panic!("valid settings refused: {e}");
                }
                run.audit.reconfigured(&run.tracker);
            }
            14 => {
                let side = if input.bool() {
                    Side::Secondary
                } else {
                    Side::Primary
                };
                run.tracker.note_empty_frame(side);
                run.audit.settle(&mut run.tracker);
            }
            _ => {
                // Failover is rare in life and final: one in four of these choices.
                if input.below(4) == 0 {
                    let now = run.tick(&mut input);
                    run.tracker.handle_failover(now);
                    run.audit.settle(&mut run.tracker);
                    run.audit.assert_empty(&run.tracker, "failover");
                    assert!(run.tracker.failed_over());
                }
            }
        }
    }
    let now = run.tick(&mut input);
    let released = run.tracker.drain(now);
    run.audit.settle(&mut run.tracker);
    run.audit.assert_empty(&run.tracker, "the shutdown drain");
    let l = &run.audit.ledger;
    assert_eq!(
        l.released() + l.dropped(Side::Primary),
        l.fed_count(Side::Primary),
        "after the drain every primary packet is released or dropped"
    );
    if observe {
        assert_eq!(
            released, 0,
            "observe mode released packets twice at shutdown"
        );
    }
}
