//! The demo's bookkeeping of primary frames: when each was sent and when the output peer got
//! it, which yields the held-time percentiles and proves nothing was lost or duplicated.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

#[derive(Default)]
struct Book {
    /// Send times of frames not yet seen at the output, by content.
    pending: HashMap<Bytes, VecDeque<Instant>>,
    pending_count: usize,
    /// Frames the output peer received that were never sent (or came twice).
    unexpected: u64,
    /// Sent-to-output time of every frame received, in arrival order.
    held: Vec<Duration>,
    /// How often each frame reached the output, for barriers.
    delivered: HashMap<Bytes, u32>,
}

/// Shared between the primary guest, the secondary guest (for barriers) and the output peer.
#[derive(Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The primary guest is sending `frame` now.
    pub fn sent(&self, frame: &Bytes, at: Instant) {
        let mut b = self.book();
        b.pending.entry(frame.clone()).or_default().push_back(at);
        b.pending_count += 1;
    }

    /// The output peer received `frame` now.
    pub fn delivered(&self, frame: Bytes, at: Instant) {
        let mut b = self.book();
        let sent = b.pending.get_mut(&frame).and_then(VecDeque::pop_front);
        match sent {
            Some(sent) => {
                b.pending_count -= 1;
                b.held.push(at.saturating_duration_since(sent));
            }
            None => b.unexpected += 1,
        }
        *b.delivered.entry(frame).or_default() += 1;
    }

    /// Whether the output peer has received `frame`.
    pub fn was_delivered(&self, frame: &Bytes) -> bool {
        self.book().delivered.contains_key(frame)
    }

    /// Frames sent but not (yet) received at the output.
    pub fn pending(&self) -> usize {
        self.book().pending_count
    }

    /// Frames received at the output that match no sent frame.
    pub fn unexpected(&self) -> u64 {
        self.book().unexpected
    }

    /// Held time of every frame received at the output.
    pub fn held_times(&self) -> Vec<Duration> {
        self.book().held.clone()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn matches_duplicates_in_order_and_flags_strangers() {
        let l = Ledger::default();
        let t0 = Instant::now();
        let f = Bytes::from_static(b"frame");
        l.sent(&f, t0);
        l.sent(&f, t0 + Duration::from_millis(5));
        assert_eq!(l.pending(), 2);
        assert!(!l.was_delivered(&f));
        l.delivered(f.clone(), t0 + Duration::from_millis(10));
        l.delivered(f.clone(), t0 + Duration::from_millis(10));
        l.delivered(f.clone(), t0 + Duration::from_millis(10));
        l.delivered(Bytes::from_static(b"other"), t0);
        assert!(l.was_delivered(&f));
        assert_eq!(l.pending(), 0);
        assert_eq!(l.unexpected(), 2);
        assert_eq!(
            l.held_times(),
            vec![Duration::from_millis(10), Duration::from_millis(5)]
        );
    }
}
