//! A step-by-step harness for spec §11 scenarios against the sans-IO tracker.
//!
//! Each input (`primary`, `secondary`, `advance`, `checkpoint`) is one step; what the tracker
//! decides is collected and must be asserted before the next step: releases (in order, with
//! their reasons), checkpoint requests (with their reasons) and primary drops. Left unasserted,
//! they fail the next step or the end of the test, so a scenario cannot silently release or
//! checkpoint more than it says. Secondary drops are the normal end of secondary packets and
//! may be asserted or left alone. After every step the tracker's counters are checked, by
//! themselves and against a [`Ledger`] kept from the outside.

use std::sync::Arc;

use colo_core::{
    CheckpointReason, DropReason, Event, Frame, Registry, ReleaseReason, Side, Timestamp, Tracker,
    TrackerConfig,
};

use crate::frames::describe;
use crate::ledger::Ledger;

/// The kind of a checkpoint request, for expectations that do not care about the details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cp {
    /// A comparison failed.
    Mismatch,
    /// A packet waited too long.
    Timeout,
    /// A queue went over `max_queue_size`.
    QueueFull,
    /// No idle connection could be evicted.
    TableFull,
    /// The byte budget is exhausted.
    OverBudget,
}

impl Cp {
    /// The kind of `reason`.
    pub fn of(reason: &CheckpointReason) -> Cp {
        match reason {
            CheckpointReason::Mismatch(_) => Cp::Mismatch,
            CheckpointReason::Timeout { .. } => Cp::Timeout,
            CheckpointReason::QueueFull { .. } => Cp::QueueFull,
            CheckpointReason::TableFull { .. } => Cp::TableFull,
            CheckpointReason::OverBudget { .. } => Cp::OverBudget,
        }
    }
}

/// A tracker, a clock and the decisions not yet asserted.
pub struct Scenario {
    tracker: Tracker,
    now: Timestamp,
    ledger: Ledger,
    released: Vec<(Frame, ReleaseReason)>,
    checkpoints: Vec<(Timestamp, CheckpointReason)>,
    dropped: Vec<(Side, DropReason)>,
    label: String,
}

impl Scenario {
    /// A tracker with `config`, comparing with `registry`, at time 0.
    pub fn new(registry: Arc<Registry>, config: TrackerConfig) -> Self {
        Scenario {
            tracker: Tracker::new(config, registry, Timestamp::ZERO),
            now: Timestamp::ZERO,
            ledger: Ledger::default(),
            released: Vec::new(),
            checkpoints: Vec::new(),
            dropped: Vec::new(),
            label: String::new(),
        }
    }

    /// Names this run (a table row, say) in every failure message.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Where a failure happened: the label and the time.
    fn at(&self) -> String {
        if self.label.is_empty() {
            format!("at {} ms", self.now_ms())
        } else {
            format!("[{}] at {} ms", self.label, self.now_ms())
        }
    }

    /// The tracker, for counters and flow snapshots.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.now.as_micros() / 1000
    }

    /// A frame from the primary.
    #[track_caller]
    pub fn primary(&mut self, frame: &Frame) -> &mut Self {
        self.frame(Side::Primary, frame)
    }

    /// A frame from the secondary.
    #[track_caller]
    pub fn secondary(&mut self, frame: &Frame) -> &mut Self {
        self.frame(Side::Secondary, frame)
    }

    #[track_caller]
    fn frame(&mut self, side: Side, frame: &Frame) -> &mut Self {
        self.begin_step();
        self.ledger.fed(side, frame);
        self.tracker.handle_frame(side, frame.clone(), self.now);
        self.end_step(&format!("{side} {}", describe(frame)))
    }

    /// Lets `ms` milliseconds pass, running every timeout the tracker asks for on the way, at
    /// the moment it asks for it.
    #[track_caller]
    pub fn advance(&mut self, ms: u64) -> &mut Self {
        self.begin_step();
        let target = Timestamp::from_micros(self.now.as_micros() + ms * 1000);
        while let Some(due) = self.tracker.poll_timeout() {
            if due > target {
                break;
            }
            // A wake-up already due is handled now: time never goes backwards.
            self.now = due.max(self.now);
            self.tracker.handle_timeout(self.now);
            self.end_step(&format!("timeout due at {due}"));
            if let Some(next) = self.tracker.poll_timeout() {
                assert!(
                    next > self.now,
                    "{}: after handling the timeout due at {due} the next is due at {next}",
                    self.at()
                );
            }
        }
        self.now = target;
        self
    }

    /// A checkpoint happened (`COLO_CHECKPOINT`): the tracker flushes.
    #[track_caller]
    pub fn checkpoint(&mut self) -> &mut Self {
        self.begin_step();
        self.tracker.handle_checkpoint(self.now);
        self.end_step("checkpoint")
    }

    #[track_caller]
    fn begin_step(&self) {
        if let Err(e) = self.unasserted() {
            panic!("before the next step {}: {e}", self.at());
        }
    }

    #[track_caller]
    fn end_step(&mut self, what: &str) -> &mut Self {
        while let Some(event) = self.tracker.poll_event() {
            if let Err(e) = self.ledger.observe(&event) {
                panic!("{what} {}: {e}", self.at());
            }
            match event {
                Event::Release { frame, reason, .. } => self.released.push((frame, reason)),
                Event::Drop { side, reason, .. } => self.dropped.push((side, reason)),
                Event::Checkpoint(reason) => self.checkpoints.push((self.now, reason)),
                Event::WouldCheckpoint(_) => {}
            }
        }
        if let Err(e) = self.ledger.check(&self.tracker) {
            panic!("after {what} {}: {e}", self.at());
        }
        self
    }

    fn unasserted(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (frame, reason) in &self.released {
            problems.push(format!("release ({reason}) of {}", describe(frame)));
        }
        for (at, reason) in &self.checkpoints {
            problems.push(format!("checkpoint request at {at}: {reason}"));
        }
        for (side, reason) in &self.dropped {
            if *side == Side::Primary {
                problems.push(format!("primary drop ({reason})"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("unasserted decisions: {}", problems.join("; ")))
        }
    }

    /// Asserts the releases since the last check: exactly these frames, in this order, for
    /// these reasons.
    #[track_caller]
    pub fn expect_released(&mut self, expected: &[(&Frame, ReleaseReason)]) -> &mut Self {
        let got = std::mem::take(&mut self.released);
        let same = got.len() == expected.len()
            && got
                .iter()
                .zip(expected)
                .all(|((f, r), (ef, er))| f == *ef && r == er);
        if !same {
            let show = |v: Vec<String>| v.join("\n    ");
            panic!(
                "{}: releases differ\n  expected:\n    {}\n  got:\n    {}",
                self.at(),
                show(
                    expected
                        .iter()
                        .map(|(f, r)| format!("{r}: {}", describe(f)))
                        .collect()
                ),
                show(
                    got.iter()
                        .map(|(f, r)| format!("{r}: {}", describe(f)))
                        .collect()
                ),
            );
        }
        self
    }

    /// Asserts the checkpoint requests since the last check, by kind, in order.
    #[track_caller]
    pub fn expect_checkpoints(&mut self, expected: &[Cp]) -> &mut Self {
        let got = self.take_checkpoints();
        let kinds: Vec<Cp> = got.iter().map(|(_, r)| Cp::of(r)).collect();
        assert_eq!(
            kinds,
            expected,
            "{}: checkpoint requests differ; got: {:?}",
            self.at(),
            got.iter().map(|(_, r)| r.to_string()).collect::<Vec<_>>()
        );
        self
    }

    /// Takes the checkpoint requests since the last check, with the time each was made, for
    /// assertions on their details.
    pub fn take_checkpoints(&mut self) -> Vec<(Timestamp, CheckpointReason)> {
        std::mem::take(&mut self.checkpoints)
    }

    /// Asserts the drops since the last check (either side), in order.
    #[track_caller]
    pub fn expect_dropped(&mut self, expected: &[(Side, DropReason)]) -> &mut Self {
        let got = std::mem::take(&mut self.dropped);
        assert_eq!(got, expected, "{}: drops differ", self.at());
        self
    }

    /// Asserts that nothing was released, no checkpoint requested and no primary packet
    /// dropped since the last check.
    #[track_caller]
    pub fn expect_nothing(&mut self) -> &mut Self {
        if let Err(e) = self.unasserted() {
            panic!("{}: expected nothing, got {e}", self.at());
        }
        self
    }

    /// Asserts how many packets the tracker holds per side.
    #[track_caller]
    pub fn expect_held(&mut self, primary: u64, secondary: u64) -> &mut Self {
        let held = self.tracker.counters().held;
        assert_eq!(
            held,
            [primary, secondary],
            "{}: held [primary, secondary]",
            self.at()
        );
        self
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Err(e) = self.unasserted() {
            panic!("at the end of the scenario {}: {e}", self.at());
        }
    }
}
