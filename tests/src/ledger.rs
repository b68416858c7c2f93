//! An independent account of what went into a tracker and what came out.
//!
//! The tracker keeps its own counters (D-LOSS-5); a test that only asked the tracker whether
//! its counters add up would trust the very thing under test. The ledger counts from the
//! outside, from the frames fed and the events polled, and checks that the two accounts agree:
//! no primary frame comes out that was not fed or that already came out, and
//! `received = released + dropped + held` holds on both sides by either account.

use std::collections::HashMap;

use colo_core::{Event, Frame, Side, Tracker};

use crate::frames::describe;

/// What a test fed a tracker and what the tracker gave back.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Primary frames fed and not yet released, by (VNET_LEN, DATA), with multiplicity.
    outstanding: HashMap<(u32, Vec<u8>), u32>,
    fed: [u64; 2],
    released: u64,
    dropped: [u64; 2],
}

impl Ledger {
    /// Records a frame handed to the tracker.
    pub fn fed(&mut self, side: Side, frame: &Frame) {
        self.fed[side.index()] += 1;
        if side == Side::Primary {
            *self
                .outstanding
                .entry((frame.vnet_len, frame.data.to_vec()))
                .or_default() += 1;
        }
    }

    /// Records one polled event; a release of a frame that is not outstanding is an error.
    pub fn observe(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Release { frame, .. } => {
                let key = (frame.vnet_len, frame.data.to_vec());
                match self.outstanding.get_mut(&key) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => {
                        return Err(format!(
                            "released a primary frame that was never fed or was already released: {}",
                            describe(frame)
                        ));
                    }
                }
                self.released += 1;
            }
            Event::Drop { side, .. } => self.dropped[side.index()] += 1,
            Event::Checkpoint(_) | Event::WouldCheckpoint(_) => {}
        }
        Ok(())
    }

    /// Frames fed from `side`.
    pub fn fed_count(&self, side: Side) -> u64 {
        self.fed[side.index()]
    }

    /// Primary frames released.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Frames dropped from `side`.
    pub fn dropped(&self, side: Side) -> u64 {
        self.dropped[side.index()]
    }

    /// Frames from `side` neither released nor dropped, by this account.
    pub fn held(&self, side: Side) -> u64 {
        match side {
            Side::Primary => self.fed[0] - self.released - self.dropped[0],
            Side::Secondary => self.fed[1] - self.dropped[1],
        }
    }

    /// Checks the tracker's counters against themselves (D-LOSS-5) and against this account,
    /// and that a tracker holding packets asks to be woken up.
    pub fn check(&self, tracker: &Tracker) -> Result<(), String> {
        let c = tracker.counters();
        c.check()?;
        for side in Side::BOTH {
            let i = side.index();
            if c.received[i] != self.fed[i] {
                return Err(format!(
                    "{side}: tracker received {} but {} were fed",
                    c.received[i], self.fed[i]
                ));
            }
            if c.dropped_total(side) != self.dropped[i] {
                return Err(format!(
                    "{side}: tracker counts {} dropped but {} drop events were polled",
                    c.dropped_total(side),
                    self.dropped[i]
                ));
            }
            if c.held[i] != self.held(side) {
                return Err(format!(
                    "{side}: tracker holds {} but the events leave {} held",
                    c.held[i],
                    self.held(side)
                ));
            }
        }
        if c.released_total() != self.released {
            return Err(format!(
                "tracker counts {} released but {} release events were polled",
                c.released_total(),
                self.released
            ));
        }
        if c.held[0] + c.held[1] > 0 && tracker.poll_timeout().is_none() {
            return Err("packets are held but the tracker asks for no timeout".into());
        }
        Ok(())
    }
}
