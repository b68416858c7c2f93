//! The tracker actor: owns one pipeline's `colo_core::Tracker` and its wake-up timer.
//!
//! It feeds the engine the readers' batches, the notify channel's flushes and the daemon's
//! commands, and turns the engine's events into work for the others: released frames go to
//! egress as one batch per step, checkpoint requests go to the notify actor, and every
//! decision is logged. While egress cannot take another batch it stops taking input, which
//! is what makes back-pressure reach the readers' sockets (D-LOSS-2); commands are still
//! served, so a flush or a shutdown is never stuck behind a full output.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use colo_core::{Counters, Event, Frame, Side, Timestamp, Tracker};
use futures::channel::{mpsc, oneshot};
use futures::future::poll_fn;
use futures::{SinkExt, StreamExt};
use log::{debug, error, info, warn};

use crate::live::LiveSlot;
use crate::reader::Batch;
use crate::runtime;

/// A command for the tracker actor.
pub(crate) enum Control {
    /// A checkpoint happened: flush (acknowledged when given a sender).
    Checkpoint(Option<oneshot::Sender<()>>),
    /// Failover: release everything, then pass the primary through.
    Failover(oneshot::Sender<()>),
    /// Orderly shutdown: finish the input already read, drain, hand everything to egress.
    Shutdown(oneshot::Sender<Drained>),
}

/// What the tracker reports when it has shut down.
pub(crate) struct Drained {
    /// Held primary packets released by the drain.
    pub(crate) released: u64,
    /// The final counters.
    pub(crate) counters: Counters,
}

/// The pipeline's monotonic clock (D-TIME-1): time since the pipeline started.
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

/// The tracker actor's state.
pub(crate) struct TrackerActor {
    label: Arc<str>,
    tracker: Tracker,
    clock: Clock,
    egress: mpsc::Sender<Vec<Frame>>,
    notify: Option<mpsc::Sender<()>>,
    /// Released frames not yet handed to egress, in release order.
    pending: Vec<Frame>,
    live: LiveSlot,
}

enum Wake {
    Control(Option<Control>),
    Input(Option<Batch>),
    EgressReady(bool),
    Timer,
}

impl TrackerActor {
    /// An actor for `tracker`, whose clock started at `Timestamp::ZERO` just now.
    pub(crate) fn new(
        label: Arc<str>,
        tracker: Tracker,
        egress: mpsc::Sender<Vec<Frame>>,
        notify: Option<mpsc::Sender<()>>,
        live: LiveSlot,
    ) -> Self {
        live.set_counters(tracker.counters());
        TrackerActor {
            label,
            tracker,
            clock: Clock(Instant::now()),
            egress,
            notify,
            pending: Vec::new(),
            live,
        }
    }

    /// Runs until a [`Control::Shutdown`] has been served.
    pub(crate) async fn run(
        mut self,
        mut input: mpsc::Receiver<Batch>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let mut inputs_open = true;
        let mut control_open = true;
        loop {
            let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> =
                self.tracker.poll_timeout().map(|due| {
                    let wait = due.saturating_since(self.clock.now());
                    Box::pin(runtime::sleep(wait)) as Pin<Box<dyn Future<Output = ()> + Send>>
                });
            let wake = poll_fn(|cx| {
                if control_open {
                    if let Poll::Ready(m) = control.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Control(m));
                    }
                }
                if !self.pending.is_empty() {
                    if let Poll::Ready(r) = self.egress.poll_ready(cx) {
                        return Poll::Ready(Wake::EgressReady(r.is_ok()));
                    }
                } else if inputs_open {
                    if let Poll::Ready(b) = input.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Input(b));
                    }
                }
                if let Some(t) = timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Control(Some(Control::Shutdown(reply))) => {
                    self.shutdown(input, reply).await;
                    return;
                }
                Wake::Control(Some(Control::Checkpoint(ack))) => self.checkpoint(ack),
                Wake::Control(Some(Control::Failover(ack))) => self.failover(ack),
                Wake::Control(None) => control_open = false,
                Wake::Input(Some(batch)) => self.handle_batch(batch),
                Wake::Input(None) => inputs_open = false,
                Wake::EgressReady(true) => {
                    let batch = std::mem::take(&mut self.pending);
                    if self.egress.start_send(batch).is_err() {
                        error!(
                            "{}: egress is gone; released frames cannot be written",
                            self.label
                        );
                    }
                }
                Wake::EgressReady(false) => {
                    error!(
                        "{}: egress is gone; {} released frames cannot be written",
                        self.label,
                        self.pending.len()
                    );
                    self.pending.clear();
                }
                Wake::Timer => {
                    self.tracker.handle_timeout(self.clock.now());
                    self.after_step();
                }
            }
        }
    }

    fn checkpoint(&mut self, ack: Option<oneshot::Sender<()>>) {
        let before = self.tracker.counters().released_total();
        self.tracker.handle_checkpoint(self.clock.now());
        let n = self.tracker.counters().released_total() - before;
        info!(
            "{}: checkpoint: flushed, {n} held primary packets released",
            self.label
        );
        self.after_step();
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    fn failover(&mut self, ack: oneshot::Sender<()>) {
        let before = self.tracker.counters().released_total();
        self.tracker.handle_failover(self.clock.now());
        let n = self.tracker.counters().released_total() - before;
        info!(
            "{}: failover: {n} held primary packets released; the primary now passes straight through",
            self.label
        );
        self.after_step();
        let _ = ack.send(());
    }

    fn handle_batch(&mut self, batch: Batch) {
        for _ in 0..batch.empty {
            self.tracker.note_empty_frame(batch.side);
        }
        let now = self.clock.now();
        for frame in batch.frames {
            self.tracker.handle_frame(batch.side, frame, now);
        }
        self.after_step();
    }

    /// Publishes the counters, then turns the engine's events into work. Publishing first
    /// means that whoever sees a frame or a request come out also sees it counted.
    fn after_step(&mut self) {
        self.live.set_counters(self.tracker.counters());
        while let Some(event) = self.tracker.poll_event() {
            match event {
                Event::Release {
                    frame,
                    reason,
                    flow,
                    held,
                } => {
                    debug!(
                        "{}: release {} bytes on {}: {reason}, held {} us",
                        self.label,
                        frame.len(),
                        flow_name(flow.as_ref()),
                        held.as_micros()
                    );
                    self.pending.push(frame);
                }
                Event::Drop {
                    side,
                    reason,
                    flow,
                    len,
                } => {
                    if side == Side::Primary {
                        warn!(
                            "{}: intentional drop of a {len}-byte primary packet on {}: {reason}",
                            self.label,
                            flow_name(flow.as_ref())
                        );
                    } else {
                        debug!(
                            "{}: drop {len} bytes from {side} on {}: {reason}",
                            self.label,
                            flow_name(flow.as_ref())
                        );
                    }
                }
                Event::Checkpoint(reason) => {
                    info!("{}: checkpoint requested: {reason}", self.label);
                    self.request_checkpoint();
                }
            }
        }
    }

    fn request_checkpoint(&mut self) {
        let Some(notify) = self.notify.as_mut() else {
            return;
        };
        match notify.try_send(()) {
            Ok(()) => {}
            Err(e) if e.is_full() => debug!(
                "{}: checkpoint request merged with those not yet sent",
                self.label
            ),
            Err(_) => warn!("{}: notify channel is gone; request not sent", self.label),
        }
    }

    async fn shutdown(mut self, mut input: mpsc::Receiver<Batch>, reply: oneshot::Sender<Drained>) {
        // The readers are stopped by now: what they already read is still processed.
        while let Some(batch) = input.next().await {
            self.handle_batch(batch);
        }
        let released = self.tracker.drain(self.clock.now());
        self.after_step();
        info!(
            "{}: shutdown: {released} held primary packets released",
            self.label
        );
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() && self.egress.send(pending).await.is_err() {
            error!(
                "{}: egress is gone; released frames cannot be written",
                self.label
            );
        }
        self.egress.close_channel();
        let _ = reply.send(Drained {
            released,
            counters: self.tracker.counters().clone(),
        });
    }
}

fn flow_name(flow: Option<&colo_core::FlowKey>) -> String {
    flow.map_or_else(|| "-".to_string(), ToString::to_string)
}
