//! Copying long-held packets out of the read buffers they share.
//!
//! A frame is a slice of the buffer its socket read filled (one allocation for a whole read,
//! tens of frames), so one held frame keeps that whole buffer alive. Frames usually wait a
//! millisecond or two and the buffer goes soon after; but a flow the secondary does not answer
//! holds its frames until the timeout, and each can keep a read's worth of other traffic in
//! memory that the budget does not count. Frames held longer than [`COMPACT_AFTER`] are
//! therefore copied into buffers of their own, once each; large frames already have theirs.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

use crate::comparator::FlowState;
use crate::flow::Side;
use crate::frame::OWN_ALLOCATION;
use crate::time::Timestamp;

/// How long a packet may share its read buffer. Well above normal held times (a few ms), so
/// that compaction copies only packets that wait for a timeout or a checkpoint.
pub const COMPACT_AFTER: Duration = Duration::from_millis(100);

/// Connections looked at per call while a pass is under way: a pass over a large table is
/// spread over several batches rather than stalling one of them.
pub(crate) const STEP: usize = 4096;

/// When compaction passes are due, and how far the current one has got.
#[derive(Debug)]
pub(crate) struct Compactor {
    next: Timestamp,
    /// The pass under way: packets that arrived before `until` are copied; connections
    /// from `at` on are still to be looked at.
    pass: Option<(Timestamp, usize)>,
}

impl Compactor {
    /// A compactor whose first pass is due [`COMPACT_AFTER`] after `now`.
    pub(crate) fn new(now: Timestamp) -> Self {
        Compactor {
            next: now + COMPACT_AFTER,
            pass: None,
        }
    }

    /// The connections (slots below `len`) to look at now, at most `step` of them, and the
    /// arrival time before which their held packets are copied; `None` when no pass is under
    /// way or due. A pass starts when due and `held` says something is held (asked only then:
    /// this runs for every batch).
    pub(crate) fn next(
        &mut self,
        now: Timestamp,
        len: usize,
        step: usize,
        held: impl FnOnce() -> bool,
    ) -> Option<(Range<usize>, Timestamp)> {
        if self.pass.is_none() && now >= self.next {
            self.next = now + COMPACT_AFTER;
            if held() {
                let micros = u64::try_from(COMPACT_AFTER.as_micros()).unwrap_or(u64::MAX);
                let until = Timestamp::from_micros(now.as_micros().saturating_sub(micros));
                self.pass = Some((until, 0));
            }
        }
        let (until, at) = self.pass?;
        let end = at.saturating_add(step).min(len);
        self.pass = (end < len).then_some((until, end));
        Some((at.min(end)..end, until))
    }
}

/// Copies every packet of `state` that arrived in `[from, until)` and may share its buffer
/// into a buffer of its own; returns how many were copied.
pub(crate) fn compact(state: &mut dyn FlowState, from: Timestamp, until: Timestamp) -> u64 {
    let mut copied = 0;
    for side in Side::BOTH {
        state.for_each_held(side, &mut |p| {
            if p.arrived >= from && p.arrived < until && p.frame.data.len() < OWN_ALLOCATION {
                p.frame.data = Bytes::copy_from_slice(&p.frame.data);
                copied += 1;
            }
        });
    }
    copied
}

#[cfg(test)]
mod test {
    use super::*;

    fn ms(t: u64) -> Timestamp {
        Timestamp::from_millis(t)
    }

    #[test]
    fn a_pass_starts_when_due_and_covers_the_table_in_steps() {
        let mut c = Compactor::new(ms(0));
        assert_eq!(c.next(ms(99), 10, 4, || true), None);
        assert_eq!(c.next(ms(100), 10, 4, || true), Some((0..4, ms(0))));
        assert_eq!(c.next(ms(101), 10, 4, || true), Some((4..8, ms(0))));
        assert_eq!(c.next(ms(102), 10, 4, || true), Some((8..10, ms(0))));
        assert_eq!(c.next(ms(103), 10, 4, || true), None);
        // The next pass is due COMPACT_AFTER after the last one started.
        assert_eq!(c.next(ms(199), 10, 4, || true), None);
        assert_eq!(
            c.next(ms(200), 10, usize::MAX, || true),
            Some((0..10, ms(100)))
        );
    }

    #[test]
    fn no_pass_while_nothing_is_held_and_a_shrunk_table_ends_it() {
        let mut c = Compactor::new(ms(0));
        assert_eq!(c.next(ms(150), 10, 4, || false), None);
        assert_eq!(c.next(ms(200), 10, 4, || true), None);
        assert_eq!(c.next(ms(250), 10, 4, || true), Some((0..4, ms(150))));
        assert_eq!(c.next(ms(251), 2, 4, || true), Some((2..2, ms(150))));
        assert_eq!(c.next(ms(252), 10, 4, || true), None);
    }
}
