//! The output's credit: bytes of released frames handed to egress and not written yet.
//!
//! Egress stops taking batches once `output_buffer` bytes wait in it, but that alone bounds
//! nothing: batches already handed over wait in the channel between tracker and egress, and a
//! single checkpoint flush releases up to the whole memory budget at once, so released but
//! unwritten frames could pile up to several budgets while new ones were held behind them.
//! The tracker adds what it hands over, egress takes back what it wrote, and the tracker takes
//! no input while the credit is spent. Held and unwritten bytes together then stay under the
//! memory budget plus `output_buffer`: a flush only moves bytes from one to the other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

/// Unwritten bytes against a limit, with the tracker's waker for when room comes back.
#[derive(Debug)]
pub(crate) struct OutputCredit {
    unwritten: AtomicU64,
    limit: u64,
    waker: AtomicWaker,
}

impl OutputCredit {
    /// No bytes unwritten; input pauses at `limit`.
    pub(crate) fn new(limit: u64) -> Self {
        OutputCredit {
            unwritten: AtomicU64::new(0),
            limit,
            waker: AtomicWaker::new(),
        }
    }

    /// `bytes` were handed to egress.
    pub(crate) fn spend(&self, bytes: u64) {
        self.unwritten.fetch_add(bytes, Ordering::AcqRel);
    }

    /// `bytes` handed over earlier were written (or will never be): wakes the tracker if that
    /// made room.
    pub(crate) fn repay(&self, bytes: u64) {
        let before = self
            .unwritten
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes))
            })
            .unwrap_or_else(|u| u);
        if before.saturating_sub(bytes) < self.limit {
            self.waker.wake();
        }
    }

    /// Bytes handed over and not written yet.
    pub(crate) fn unwritten(&self) -> u64 {
        self.unwritten.load(Ordering::Acquire)
    }

    /// Ready while fewer than the limit's bytes are unwritten; otherwise the task of `cx` is
    /// woken once [`OutputCredit::repay`] makes room.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.unwritten() < self.limit {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Egress may have repaid between the check and the registration.
        if self.unwritten() < self.limit {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod test {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn input_pauses_at_the_limit_and_resumes_when_written_bytes_make_room() {
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let credit = OutputCredit::new(100);
        assert!(credit.poll_room(&mut cx).is_ready());
        credit.spend(60);
        assert!(credit.poll_room(&mut cx).is_ready());
        // A flush may hand over far more than the limit at once.
        credit.spend(500);
        assert!(credit.poll_room(&mut cx).is_pending());
        credit.repay(400);
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            0,
            "160 bytes are still over the limit"
        );
        assert!(credit.poll_room(&mut cx).is_pending());
        credit.repay(100);
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            1,
            "room again: the tracker is woken"
        );
        assert!(credit.poll_room(&mut cx).is_ready());
        credit.repay(1000);
        assert_eq!(credit.unwritten(), 0, "never below zero");
    }
}
