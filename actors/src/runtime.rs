//! The async runtime, named in one place: spawning tasks and sleeping.
//!
//! Actor logic is written against `futures` channels and I/O traits; only this module and
//! [`crate::link`] (sockets) use async-std, so the runtime could be swapped by rewriting them.

use std::future::Future;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, Aborted};

/// A spawned actor that can be stopped from outside, and awaited.
pub(crate) struct Task<T> {
    handle: async_std::task::JoinHandle<Result<T, Aborted>>,
    abort: AbortHandle,
}

/// Runs `future` as a task of its own.
pub(crate) fn spawn<T, F>(future: F) -> Task<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let handle = async_std::task::spawn(Abortable::new(future, registration));
    Task { handle, abort }
}

impl<T> Task<T> {
    /// A handle that stops the task without waiting (usable from `Drop`).
    pub(crate) fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// Stops the task and waits until its future (and every socket it owns) is dropped.
    pub(crate) async fn stop(self) {
        self.abort.abort();
        let _ = self.handle.await;
    }

    /// Waits for the task to finish by itself; `None` if it was stopped.
    pub(crate) async fn join(self) -> Option<T> {
        self.handle.await.ok()
    }
}

/// Completes after `duration`.
pub(crate) fn sleep(duration: Duration) -> impl Future<Output = ()> + Send + 'static {
    async_std::task::sleep(duration)
}
