//! Unix signals as messages: a thread blocks in `signal-hook`'s iterator and forwards each
//! signal into a bounded channel the async side awaits, so no work runs in a signal handler.

use std::io;
use std::thread::JoinHandle;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// What a signal asks the daemon to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT: drain and exit.
    Shutdown(&'static str),
    /// SIGHUP: reopen the log file.
    ReopenLog,
}

/// The signals received so far, in order.
pub struct SignalListener {
    requests: mpsc::Receiver<Request>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalListener {
    /// Starts catching SIGTERM, SIGINT and SIGHUP.
    pub fn start() -> io::Result<Self> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let (mut tx, requests) = mpsc::channel(8);
        let thread = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let request = match signal {
                        SIGHUP => Request::ReopenLog,
                        SIGINT => Request::Shutdown("SIGINT"),
                        _ => Request::Shutdown("SIGTERM"),
                    };
                    if futures::executor::block_on(tx.send(request)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SignalListener {
            requests,
            handle,
            thread: Some(thread),
        })
    }

    /// The next signal; `None` once the listener thread has stopped.
    pub async fn next(&mut self) -> Option<Request> {
        self.requests.next().await
    }
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        self.handle.close();
        self.requests.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
