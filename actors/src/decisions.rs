//! The engine's decisions as the shell reports them: one function per kind of
//! [`Event`](colo_core::Event), the only place where that kind is logged, in the style of
//! vector's internal events.
//!
//! The numbers are the engine's: `colo_core`'s tracker counts each decision in the same step
//! that creates its event, and the tracker actor publishes those counters for the metrics and
//! `stats`. Every event is logged here and nowhere else, so a log line exists exactly for each
//! counted decision and the two cannot disagree. What the shell itself adds to a decision (the
//! mismatch capture) is done and counted here too, so the log line can name the capture file.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use colo_core::{CheckpointReason, DropReason, FlowKey, ReleaseReason, Side};
use log::{debug, info, warn};

use crate::capture::{CaptureConfig, CaptureWriter, Captured};
use crate::live::LiveSlot;

/// One pipeline's reporter of decisions.
pub(crate) struct Decisions {
    label: Arc<str>,
    capture: Option<CaptureWriter>,
    live: LiveSlot,
}

fn flow_name(flow: Option<&FlowKey>) -> String {
    flow.map_or_else(|| "-".to_string(), ToString::to_string)
}

impl Decisions {
    /// A reporter logging under `label`, capturing mismatches when `capture` is set.
    pub(crate) fn new(label: Arc<str>, capture: Option<CaptureConfig>, live: LiveSlot) -> Self {
        let d = Decisions {
            label,
            capture: capture.map(CaptureWriter::new),
            live,
        };
        d.publish_capture();
        d
    }

    /// Takes new capture settings: a new file starts a new capture, new bounds apply to the
    /// current one.
    pub(crate) fn set_capture(&mut self, capture: Option<CaptureConfig>) {
        match (self.capture.as_mut(), capture) {
            (Some(w), Some(c)) if w.config().path == c.path => w.set_bounds(c),
            (_, c) => self.capture = c.map(CaptureWriter::new),
        }
        self.publish_capture();
    }

    fn publish_capture(&self) {
        self.live
            .set_capture(self.capture.as_ref().map(|w| w.status().clone()));
    }

    /// A primary packet goes to the output.
    pub(crate) fn released(
        &self,
        len: usize,
        reason: ReleaseReason,
        flow: Option<&FlowKey>,
        held: Duration,
    ) {
        debug!(
            "{}: release {len} bytes on {}: {reason}, held {} us",
            self.label,
            flow_name(flow),
            held.as_micros()
        );
    }

    /// A packet leaves without being output.
    pub(crate) fn dropped(
        &self,
        side: Side,
        reason: DropReason,
        flow: Option<&FlowKey>,
        len: usize,
    ) {
        if side == Side::Primary {
            warn!(
                "{}: intentional drop of a {len}-byte primary packet on {}: {reason}",
                self.label,
                flow_name(flow)
            );
        } else {
            debug!(
                "{}: drop {len} bytes from {side} on {}: {reason}",
                self.label,
                flow_name(flow)
            );
        }
    }

    /// A checkpoint is requested (`would_be`: observe mode, where nothing is requested).
    /// A mismatch is captured first, so the line can name the file.
    pub(crate) fn checkpoint(&mut self, reason: &CheckpointReason, would_be: bool) {
        let captured = match reason {
            CheckpointReason::Mismatch(m) => self.capture.as_mut().map(|w| {
                let what = w.record(m, SystemTime::now());
                (w.status().clone(), w.config().clone(), what)
            }),
            _ => None,
        };
        let note = match &captured {
            Some((status, _, Captured::Written(n))) => {
                format!(
                    "; frames captured to {} (mismatch {n})",
                    status.path.display()
                )
            }
            Some((status, _, _)) => format!("; not captured to {}", status.path.display()),
            None => String::new(),
        };
        if would_be {
            info!(
                "{}: observe: would request a checkpoint: {reason}{note}",
                self.label
            );
        } else {
            info!("{}: checkpoint requested: {reason}{note}", self.label);
        }
        match captured {
            Some((status, config, Captured::Full { first: true })) => warn!(
                "{}: capture {} is full ({} mismatches, {} bytes; bounds {} mismatches, {} bytes): \
                 further mismatches are counted, not captured",
                self.label,
                status.path.display(),
                status.written,
                status.bytes,
                config.max_mismatches,
                config.max_bytes
            ),
            Some((status, _, Captured::Failed { error, first: true })) => warn!(
                "{}: cannot write capture {}: {error}; mismatches are counted, not captured",
                self.label,
                status.path.display()
            ),
            _ => {}
        }
        if self.capture.is_some() {
            self.publish_capture();
        }
    }
}
