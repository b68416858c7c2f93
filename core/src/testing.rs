//! Scenario helpers for testing comparators against the real engine (feature `testing`).
//!
//! A comparator is only as good as the decisions the tracker makes with it, so its tests should
//! drive a [`Tracker`], not the comparator alone. [`Harness`] does that with the comparators a
//! test names, one millisecond per input, and checks the counters identity (D-LOSS-5) after
//! every input; [`Step`] says what one input made the engine do.
//!
//! ```text
//! struct Mine;
//! impl Comparators for Mine {
//!     fn registrations() -> Vec<&'static Registration> { vec![&MY_PLUGIN, &colo_protocols::tcp::TCP] }
//! }
//! type Harness = colo_core::testing::Harness<Mine>;
//! let mut h = Harness::new();
//! h.primary(frame.clone());
//! assert_eq!(h.secondary(frame.clone()).released(), vec![(frame, ReleaseReason::Matched)]);
//! ```

// A test harness: a refused section or registry is a broken test, reported by panicking
// (documented on each function), never input from a peer.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::TrackerConfig;
use crate::event::{CheckpointReason, DropReason, Event, Mismatch, ReleaseReason};
use crate::flow::Side;
use crate::frame::Frame;
use crate::registry::{ComparatorsConfig, Registration, Registry};
use crate::time::Timestamp;
use crate::tracker::Tracker;

/// The comparators a [`Harness`] builds its registry from.
pub trait Comparators {
    /// The registrations, as a program would link them.
    fn registrations() -> Vec<&'static Registration>;
}

/// What one input made the engine do.
#[derive(Debug, Default)]
pub struct Step {
    /// The events, in order.
    pub events: Vec<Event>,
}

impl Step {
    /// Released frames with their reasons, in release order.
    pub fn released(&self) -> Vec<(Vec<u8>, ReleaseReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Release { frame, reason, .. } => Some((frame.data.to_vec(), *reason)),
                _ => None,
            })
            .collect()
    }

    /// Dropped packets' sides and reasons, in order.
    pub fn dropped(&self) -> Vec<(Side, DropReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Drop { side, reason, .. } => Some((*side, *reason)),
                _ => None,
            })
            .collect()
    }

    /// Number of checkpoint requests.
    pub fn checkpoints(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Checkpoint(_)))
            .count()
    }

    /// The mismatches reported, in order.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Checkpoint(CheckpointReason::Mismatch(m)) => Some((**m).clone()),
                _ => None,
            })
            .collect()
    }

    /// True when nothing was released, dropped or requested.
    pub fn is_quiet(&self) -> bool {
        self.events.is_empty()
    }
}

/// A tracker over the comparators `C`, fed one millisecond per input.
pub struct Harness<C> {
    tracker: Tracker,
    now: Timestamp,
    comparators: PhantomData<C>,
}

impl<C: Comparators> Default for Harness<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Comparators> Harness<C> {
    /// Default settings for every comparator.
    pub fn new() -> Self {
        Self::with(&ComparatorsConfig::default())
    }

    /// The comparator `name`'s section set to `section` (RON text).
    ///
    /// # Panics
    /// When `section` is not valid RON or the comparator refuses it.
    pub fn with_section(name: &str, section: &str) -> Self {
        let value: ron::Value = ron::from_str(section).expect("the section is valid RON");
        Self::with(&ComparatorsConfig {
            disabled: Vec::new(),
            settings: BTreeMap::from([(name.to_string(), value)]),
        })
    }

    /// Every comparator but `name`.
    pub fn with_disabled(name: &str) -> Self {
        Self::with(&ComparatorsConfig {
            disabled: vec![name.to_string()],
            settings: BTreeMap::new(),
        })
    }

    /// The given comparator configuration.
    ///
    /// # Panics
    /// When the registry refuses the configuration.
    pub fn with(config: &ComparatorsConfig) -> Self {
        let registry = Registry::build_from(&C::registrations(), config)
            .expect("the registry accepts the configuration");
        Harness {
            tracker: Tracker::new(
                TrackerConfig::default(),
                Arc::new(registry),
                Timestamp::ZERO,
            ),
            now: Timestamp::ZERO,
            comparators: PhantomData,
        }
    }

    /// The engine.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    fn tick(&mut self) -> Timestamp {
        self.now = Timestamp::from_micros(self.now.as_micros() + 1000);
        self.now
    }

    fn collect(&mut self) -> Step {
        let mut step = Step::default();
        while let Some(e) = self.tracker.poll_event() {
            step.events.push(e);
        }
        if let Err(e) = self.tracker.counters().check() {
            panic!("counters identity broken: {e}");
        }
        step
    }

    fn feed(&mut self, side: Side, frame: Vec<u8>) -> Step {
        let now = self.tick();
        self.tracker.handle_frame(side, Frame::new(frame), now);
        self.collect()
    }

    /// A frame from the primary.
    pub fn primary(&mut self, frame: Vec<u8>) -> Step {
        self.feed(Side::Primary, frame)
    }

    /// A frame from the secondary.
    pub fn secondary(&mut self, frame: Vec<u8>) -> Step {
        self.feed(Side::Secondary, frame)
    }

    /// A checkpoint happened: everything held is flushed.
    pub fn checkpoint(&mut self) -> Step {
        let now = self.tick();
        self.tracker.handle_checkpoint(now);
        self.collect()
    }

    /// Primary packets the comparator `name` released as matching.
    pub fn matched(&self, name: &str) -> u64 {
        self.tracker
            .counters()
            .comparators
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.matched)
    }

    /// Packets held per side.
    pub fn held(&self) -> [u64; 2] {
        self.tracker.counters().held
    }
}
