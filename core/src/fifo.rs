//! Packet-by-packet comparison in arrival order, for protocols without a byte stream.
//!
//! QEMU compares UDP, ICMP and other protocols by taking the *newest* primary packet first,
//! which turns a secondary that lags by two packets into a spurious checkpoint and reorders the
//! output (Q1). Here the oldest primary packet is compared first and secondary candidates are
//! searched oldest first (D-ORDER-1), so a lagging secondary is not a mismatch.
//!
//! A protocol only provides a [`Matcher`]; [`FifoComparator`] and [`FifoFlow`] do the rest.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::comparator::{Claim, Comparator, FlowState, Outcome, Verdict};
use crate::event::{DropReason, ReleaseReason};
use crate::flow::{FlowKey, Side};
use crate::packet::Packet;
use crate::time::Timestamp;

/// Decides whether one primary packet and one secondary packet carry the same output.
pub trait Matcher: Send + Sync + 'static {
    /// Compare the two packets.
    fn compare(&self, primary: &Packet, secondary: &Packet) -> Verdict;
}

/// A [`Comparator`] made of claims and a [`Matcher`].
pub struct FifoComparator<M> {
    claims: Vec<Claim>,
    matcher: Arc<M>,
}

impl<M: Matcher> FifoComparator<M> {
    /// A comparator taking `claims` and comparing with `matcher`.
    pub fn new(claims: Vec<Claim>, matcher: M) -> Self {
        FifoComparator {
            claims,
            matcher: Arc::new(matcher),
        }
    }
}

impl<M: Matcher> Comparator for FifoComparator<M> {
    fn claims(&self) -> Vec<Claim> {
        self.claims.clone()
    }

    fn new_flow(&self, _key: &FlowKey) -> Box<dyn FlowState> {
        Box::new(FifoFlow::new(Arc::clone(&self.matcher)))
    }
}

/// The two arrival-ordered queues of one flow.
pub struct FifoFlow<M> {
    matcher: Arc<M>,
    queues: [VecDeque<Packet>; 2],
}

impl<M: Matcher> FifoFlow<M> {
    /// Empty queues comparing with `matcher`.
    pub fn new(matcher: Arc<M>) -> Self {
        FifoFlow {
            matcher,
            queues: [VecDeque::new(), VecDeque::new()],
        }
    }
}

impl<M: Matcher> FlowState for FifoFlow<M> {
    fn push(&mut self, side: Side, packet: Packet) {
        let queue = &mut self.queues[side.index()];
        // Most flows hold one packet per side at a time: room for one rather than the default
        // four keeps the memory (and the cache footprint) of many flows small.
        if queue.capacity() == 0 {
            queue.reserve_exact(1);
        }
        queue.push_back(packet);
    }

    fn compare(&mut self, out: &mut Outcome<'_>) {
        let [primary, secondary] = &mut self.queues;
        while let Some(p) = primary.front() {
            let Some(first) = secondary.front() else {
                return;
            };
            // The oldest candidate is nearly always the counterpart; its verdict also names the
            // difference when nothing matches.
            let verdict = self.matcher.compare(p, first);
            let found = match verdict {
                Verdict::Same => Some(0),
                Verdict::Differ(_) => secondary
                    .iter()
                    .skip(1)
                    .position(|s| self.matcher.compare(p, s) == Verdict::Same)
                    .map(|i| i + 1),
            };
            match found {
                Some(i) => {
                    let s = if i == 0 {
                        secondary.pop_front()
                    } else {
                        secondary.remove(i)
                    };
                    let (Some(p), Some(s)) = (primary.pop_front(), s) else {
                        return;
                    };
                    out.release(p, ReleaseReason::Matched);
                    out.drop_secondary(s, DropReason::Matched);
                }
                None => {
                    // Report against the oldest candidate: it is the one that should have matched.
                    if let Verdict::Differ(diff) = verdict {
                        out.mismatch(p, first, diff);
                    }
                    return;
                }
            }
        }
    }

    fn take_all(&mut self, side: Side, into: &mut Vec<Packet>) {
        into.extend(self.queues[side.index()].drain(..));
    }

    fn oldest(&self, side: Side) -> Option<Timestamp> {
        self.queues[side.index()].front().map(|p| p.arrived)
    }

    fn for_each_held(&mut self, side: Side, visit: &mut dyn FnMut(&mut Packet)) {
        self.queues[side.index()].iter_mut().for_each(visit);
    }
}
