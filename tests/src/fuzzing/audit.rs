//! The checks the tracker target makes after every input it gives the engine.
//!
//! The [`Ledger`] keeps the outside account (what was fed, what came out, no frame released
//! twice or released without being fed); the audit adds what the design promises on top:
//! primary packets are only ever dropped over the budget, the budget holds, observe mode never
//! asks for a real checkpoint, the control interface's flow view agrees with the counters.

use colo_core::{DropReason, Event, ReleaseReason, Side, Tracker};

use crate::ledger::Ledger;

/// The outside view of one tracker under fuzzing.
#[derive(Debug)]
pub struct Audit {
    /// Frames fed and events seen.
    pub ledger: Ledger,
    observe: bool,
    /// The most bytes the engine may hold now: the budget, or more right after a lowered
    /// budget until the engine is back under it.
    ceiling: u64,
}

impl Audit {
    /// An audit of a tracker whose settings are in force.
    pub fn new(tracker: &Tracker) -> Self {
        Audit {
            ledger: Ledger::default(),
            observe: tracker.config().observe,
            ceiling: tracker.config().max_held_bytes,
        }
    }

    /// The settings changed: a lower budget applies once the engine is back under it.
    pub fn reconfigured(&mut self, tracker: &Tracker) {
        let held = tracker.counters().held_bytes;
        self.ceiling = tracker.config().max_held_bytes.max(held);
    }

    /// Takes every pending event and checks the engine; returns the events.
    pub fn settle(&mut self, tracker: &mut Tracker) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = tracker.poll_event() {
            if let Err(problem) = self.ledger.observe(&e) {
                panic!("{problem}");
            }
            match &e {
                Event::Checkpoint(_) => {
                    assert!(!self.observe, "observe mode asked for a checkpoint")
                }
                Event::WouldCheckpoint(_) => {
                    assert!(self.observe, "a would-be checkpoint outside observe mode")
                }
                Event::Release { reason, .. } => assert!(
                    self.observe || *reason != ReleaseReason::Observed,
                    "released as observed outside observe mode"
                ),
                Event::Drop { .. } => {}
            }
            events.push(e);
        }
        self.check(tracker);
        events
    }

    fn check(&mut self, tracker: &Tracker) {
        let c = tracker.counters();
        if let Err(problem) = c.check() {
            panic!("counters do not add up: {problem}");
        }
        if self.observe {
            // Every primary packet went out on arrival; copies are held, not packets.
            let l = &self.ledger;
            assert_eq!(
                l.released(),
                l.fed_count(Side::Primary),
                "observe: a primary packet was not released on arrival"
            );
            assert_eq!(c.received[0], l.fed_count(Side::Primary));
            assert_eq!(c.received[1], l.fed_count(Side::Secondary));
            assert_eq!(c.released_total(), l.released());
            for side in Side::BOTH {
                assert_eq!(c.dropped_total(side), l.dropped(side), "{side} drops");
            }
        } else if let Err(problem) = self.ledger.check(tracker) {
            panic!("{problem}");
        }
        let over_budget = DropReason::OverBudget.index();
        for (i, n) in c.dropped[Side::Primary.index()].iter().enumerate() {
            assert!(
                i == over_budget || *n == 0,
                "{n} primary packets dropped as {}: only over-budget drops are allowed",
                DropReason::NAMES[i]
            );
        }
        let budget = tracker.config().max_held_bytes;
        if c.held_bytes <= budget {
            self.ceiling = budget;
        }
        assert!(
            c.held_bytes <= self.ceiling,
            "{} bytes held, budget {}",
            c.held_bytes,
            self.ceiling
        );
        if c.flows <= 64 {
            let flows = tracker.flows();
            let mut held = [0u64; 2];
            let mut bytes = 0;
            for f in &flows {
                held[0] += u64::from(f.held[0]);
                held[1] += u64::from(f.held[1]);
                bytes += f.held_bytes;
            }
            assert_eq!(
                (held, bytes),
                (c.held, c.held_bytes),
                "the flow view disagrees with the counters"
            );
        }
    }

    /// After a flush of any kind nothing may stay held.
    pub fn assert_empty(&self, tracker: &Tracker, after: &str) {
        let c = tracker.counters();
        assert_eq!(
            (c.held, c.held_bytes),
            ([0, 0], 0),
            "packets held after {after}"
        );
    }
}
