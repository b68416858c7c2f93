//! The load generator's account of its primary frames: when each was sent, whether it came
//! back, and how many came back twice or were never sent.
//!
//! Tags are dense (0, 1, 2, ...), so "came back" is one bit per tag, kept for the whole run,
//! and the send times of recent tags live in a ring indexed by tag. A frame still out when the
//! ring wraps past it (a packet held for seconds while newer ones flow) has its send time moved
//! to a side table instead of being forgotten, so its held time is still measured exactly.

use std::collections::HashMap;

/// What a frame read from the output turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The first copy of a frame that was sent; held this many nanoseconds.
    First {
        /// Time from its send to its release.
        held_ns: u64,
    },
    /// A frame that already came out.
    Duplicate,
    /// A tag never sent (or a frame the generator did not make).
    Unknown,
}

/// The account.
pub struct Tally {
    times: Vec<u64>,
    mask: u64,
    overdue: HashMap<u64, u64>,
    back: Vec<u64>,
    sent: u64,
    released: u64,
    duplicates: u64,
    unknown: u64,
}

impl Tally {
    /// An account whose ring holds at least `window` send times (more, so that wrapping past
    /// a frame still out is rare).
    pub fn new(window: usize) -> Self {
        let cap = (window.saturating_mul(8)).max(1 << 16).next_power_of_two();
        Tally {
            times: vec![0; cap],
            mask: cap as u64 - 1,
            overdue: HashMap::new(),
            back: Vec::new(),
            sent: 0,
            released: 0,
            duplicates: 0,
            unknown: 0,
        }
    }

    fn is_back(&self, tag: u64) -> bool {
        self.back
            .get((tag / 64) as usize)
            .is_some_and(|w| w & (1 << (tag % 64)) != 0)
    }

    /// Records `count` frames sent at `at_ns`, tagged from [`Tally::sent`] on.
    pub fn send(&mut self, count: u64, at_ns: u64) {
        let cap = self.mask + 1;
        for tag in self.sent..self.sent + count {
            let slot = (tag & self.mask) as usize;
            if tag >= cap {
                let old = tag - cap;
                if !self.is_back(old) {
                    self.overdue.insert(old, self.times[slot]);
                }
            }
            self.times[slot] = at_ns;
            if tag % 64 == 0 {
                self.back.push(0);
            }
        }
        self.sent += count;
    }

    /// Records a frame tagged `tag` read from the output at `at_ns`.
    pub fn release(&mut self, tag: u64, at_ns: u64) -> Seen {
        if tag >= self.sent {
            self.unknown += 1;
            return Seen::Unknown;
        }
        if self.is_back(tag) {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        if let Some(w) = self.back.get_mut((tag / 64) as usize) {
            *w |= 1 << (tag % 64);
        }
        self.released += 1;
        let sent_at = if self.sent - tag <= self.mask + 1 {
            self.times[(tag & self.mask) as usize]
        } else {
            self.overdue.remove(&tag).unwrap_or(at_ns)
        };
        Seen::First {
            held_ns: at_ns.saturating_sub(sent_at),
        }
    }

    /// Frames sent (= the next tag).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Distinct frames that came back.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Frames sent that have not come back (yet).
    pub fn outstanding(&self) -> u64 {
        self.sent - self.released
    }

    /// Copies of frames that had already come back.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Frames read that were never sent.
    pub fn unknown(&self) -> u64 {
        self.unknown
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn each_frame_counts_once_and_held_time_is_from_its_send() {
        let mut t = Tally::new(4);
        t.send(3, 100);
        t.send(2, 150);
        assert_eq!(t.sent(), 5);
        assert_eq!(t.release(3, 400), Seen::First { held_ns: 250 });
        assert_eq!(t.release(0, 500), Seen::First { held_ns: 400 });
        assert_eq!(t.release(0, 600), Seen::Duplicate);
        assert_eq!(t.release(9, 600), Seen::Unknown);
        assert_eq!(
            (t.released(), t.outstanding(), t.duplicates(), t.unknown()),
            (2, 3, 1, 1)
        );
    }

    #[test]
    fn a_frame_held_past_the_ring_keeps_its_send_time() {
        let mut t = Tally::new(1);
        let cap = 1u64 << 16;
        t.send(1, 7);
        for i in 1..3 * cap {
            t.send(1, 1000 + i);
            assert_eq!(t.release(i, 2000 + i), Seen::First { held_ns: 1000 });
        }
        assert_eq!(t.outstanding(), 1);
        assert_eq!(t.release(0, 10_007), Seen::First { held_ns: 10_000 });
        assert_eq!(t.release(0, 10_008), Seen::Duplicate);
        assert_eq!(t.outstanding(), 0);
    }
}
