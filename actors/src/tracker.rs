//! The tracker actor: owns one pipeline's `colo_core::Tracker` and its wake-up timer.
//!
//! It feeds the engine the readers' batches, the notify channel's flushes and the daemon's
//! commands, and turns the engine's events into work for the others: released frames go to
//! egress as one batch per step, checkpoint requests go to the notify actor, and every
//! decision is reported (logged, and a mismatch captured) by [`crate::decisions`]. While
//! egress cannot take another batch, or the frames handed to it and not written reach
//! `output_buffer` bytes ([`OutputCredit`]), it stops taking input, which is what makes
//! back-pressure reach the readers' sockets (D-LOSS-2); commands are still served, so a flush
//! or a shutdown is never stuck behind a full output.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use colo_core::beacon::Flush;
use colo_core::config::ConfigError;
use colo_core::{Counters, Event, Frame, Timestamp, Tracker, TrackerConfig};
use futures::channel::{mpsc, oneshot};
use futures::future::poll_fn;
use futures::{SinkExt, StreamExt};
use log::{debug, error, info, warn};

use crate::capture::CaptureConfig;
use crate::credit::OutputCredit;
use crate::decisions::Decisions;
use crate::flows::FlowView;
use crate::live::LiveSlot;
use crate::reader::{Barrier, Batch};
use crate::requests::RequestPath;
use crate::runtime;

/// A command for the tracker actor.
pub(crate) enum Control {
    /// A checkpoint happened: flush (acknowledged when given a sender).
    Checkpoint(Option<oneshot::Sender<()>>),
    /// Failover: release everything, then pass the primary through.
    Failover(oneshot::Sender<()>),
    /// Orderly shutdown: finish the input already read, drain, hand everything to egress.
    Shutdown(oneshot::Sender<Drained>),
    /// A snapshot of the tracked flows.
    Flows(oneshot::Sender<Vec<FlowView>>),
    /// New settings, applied between two inputs so that no packet is lost.
    Reconfigure(Reconfigure, oneshot::Sender<Result<(), ConfigError>>),
}

/// The settings a running pipeline can take.
pub(crate) struct Reconfigure {
    /// The engine's settings (all but `observe` may change).
    pub(crate) tracker: TrackerConfig,
    /// The mismatch capture.
    pub(crate) capture: Option<CaptureConfig>,
}

/// What the tracker reports when it has shut down.
pub(crate) struct Drained {
    /// Held primary packets released by the drain.
    pub(crate) released: u64,
    /// The final counters.
    pub(crate) counters: Counters,
}

/// The engine's wake-up timer.
type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

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
    decisions: Decisions,
    tracker: Tracker,
    clock: Clock,
    egress: Output,
    notify: Option<mpsc::Sender<()>>,
    /// Released frames not yet handed to egress, in release order.
    pending: Vec<Frame>,
    live: LiveSlot,
}

/// Where released frames go: egress's channel, and the credit of bytes not written yet.
pub(crate) struct Output {
    /// Batches of released frames, in release order.
    pub(crate) frames: mpsc::Sender<Vec<Frame>>,
    /// Bytes handed over and not written: input pauses while it is spent.
    pub(crate) credit: Arc<OutputCredit>,
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
        egress: Output,
        notify: Option<mpsc::Sender<()>>,
        live: LiveSlot,
        capture: Option<CaptureConfig>,
    ) -> Self {
        live.set_counters(tracker.counters());
        TrackerActor {
            decisions: Decisions::new(Arc::clone(&label), capture, live.clone()),
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
        // The wake-up timer is kept while the engine's next due time stays the same, and also
        // while nothing is held (a scan of nothing is harmless): a new one on every turn cost an
        // allocation and a timer registration per batch.
        let mut timer: Option<(Timestamp, Sleep)> = None;
        loop {
            let due = self.tracker.poll_timeout();
            if due.is_some() && timer.as_ref().map(|(d, _)| *d) != due {
                timer = due.map(|due| {
                    let wait = due.saturating_since(self.clock.now());
                    (due, Box::pin(runtime::sleep(wait)) as Sleep)
                });
            }
            let wake = poll_fn(|cx| {
                if control_open {
                    if let Poll::Ready(m) = control.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Control(m));
                    }
                }
                if !self.pending.is_empty() {
                    if let Poll::Ready(r) = self.egress.frames.poll_ready(cx) {
                        return Poll::Ready(Wake::EgressReady(r.is_ok()));
                    }
                } else if inputs_open && self.egress.credit.poll_room(cx).is_ready() {
                    if let Poll::Ready(b) = input.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Input(b));
                    }
                }
                if let Some((_, t)) = timer.as_mut() {
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
                Wake::Control(Some(Control::Flows(reply))) => {
                    let now = self.clock.now();
                    let flows = self.tracker.flows();
                    let _ = reply.send(flows.into_iter().map(|f| FlowView::new(f, now)).collect());
                }
                Wake::Control(Some(Control::Reconfigure(settings, reply))) => {
                    let _ = reply.send(self.reconfigure(settings));
                }
                Wake::Control(None) => control_open = false,
                Wake::Input(Some(batch)) => self.handle_batch(batch),
                Wake::Input(None) => inputs_open = false,
                Wake::EgressReady(true) => {
                    // The next batch is likely as large: growing it frame by frame costs more.
                    let capacity = self.pending.len();
                    let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(capacity));
                    let bytes = batch.iter().map(|f| f.len() as u64).sum();
                    self.egress.credit.spend(bytes);
                    if self.egress.frames.start_send(batch).is_err() {
                        self.egress.credit.repay(bytes);
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
                    timer = None;
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
        self.live.set_failed_over();
        self.after_step();
        let _ = ack.send(());
    }

    fn reconfigure(&mut self, settings: Reconfigure) -> Result<(), ConfigError> {
        self.tracker.set_config(settings.tracker)?;
        self.decisions.set_capture(settings.capture);
        info!("{}: new settings in force", self.label);
        Ok(())
    }

    fn handle_batch(&mut self, batch: Batch) {
        for _ in 0..batch.empty {
            self.tracker.note_empty_frame(batch.side);
        }
        let now = self.clock.now();
        self.tracker.handle_frames(batch.side, batch.frames, now);
        self.after_step();
        if let Some(Barrier::Flush(flush)) = batch.barrier {
            self.beacon_flush(flush);
        }
    }

    /// Beacon mode's checkpoint flush, made once every primary frame that was readable when
    /// the beacon frame came has been handled (the primary reader's drain barrier).
    fn beacon_flush(&mut self, flush: Flush) {
        let before = self.tracker.counters().released_total();
        self.tracker.handle_checkpoint(self.clock.now());
        let n = self.tracker.counters().released_total() - before;
        info!(
            "{}: checkpoint flush, epoch {} ({}): {n} held primary packets released",
            self.label, flush.epoch, flush.cause
        );
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
                    self.decisions
                        .released(frame.len(), reason, flow.as_ref(), held);
                    self.pending.push(frame);
                }
                Event::Drop {
                    side,
                    reason,
                    flow,
                    len,
                } => self.decisions.dropped(side, reason, flow.as_ref(), len),
                Event::Checkpoint(reason) => {
                    self.decisions.checkpoint(&reason, false);
                    self.request_checkpoint();
                }
                Event::WouldCheckpoint(reason) => self.decisions.checkpoint(&reason, true),
            }
        }
    }

    fn request_checkpoint(&mut self) {
        let Some(notify) = self.notify.as_mut() else {
            self.live.count_request(RequestPath::Unsent);
            return;
        };
        match notify.try_send(()) {
            Ok(()) => {}
            Err(e) if e.is_full() => {
                self.live.count_request(RequestPath::Merged);
                debug!(
                    "{}: checkpoint request merged with those not yet sent",
                    self.label
                )
            }
            Err(_) => {
                self.live.count_request(RequestPath::Unsent);
                warn!("{}: notify channel is gone; request not sent", self.label)
            }
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
        if !pending.is_empty() && self.egress.frames.send(pending).await.is_err() {
            error!(
                "{}: egress is gone; released frames cannot be written",
                self.label
            );
        }
        self.egress.frames.close_channel();
        let _ = reply.send(Drained {
            released,
            counters: self.tracker.counters().clone(),
        });
    }
}
