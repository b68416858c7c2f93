//! The reader actor: one per packet input (primary_in, secondary_in).
//!
//! It owns its socket and serves one peer at a time, with a fresh frame decoder for every
//! connection so that a peer that vanished mid-frame cannot poison the next one (D-IN-2,
//! T48). It reads large chunks straight into the decoder's buffer, where the frames stay
//! until they are released (no copy out of a read buffer), and hands the frames of each chunk
//! to the tracker as one batch; the channel is bounded, so a tracker that stops taking input
//! stops the reading.
//!
//! A reader may also take drain barriers (beacon mode): it then reads everything already
//! readable on its socket, until the read would block, hands those frames on, and then the
//! barrier itself in the same channel, so whoever receives the barrier has seen every frame
//! that was in the socket when it was asked for.

use std::pin::pin;
use std::task::Poll;

use colo_core::beacon::Flush;
use colo_core::{Decoded, Decoder, Frame, FrameError, Side};
use futures::channel::mpsc;
use futures::future::{Either, poll_fn, select};
use futures::{FutureExt, SinkExt, StreamExt};
use log::{info, warn};

use crate::link::{Conn, Link};

/// Bytes asked for per read.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Bytes per frame assumed when sizing a batch: about the smallest frame with its length
/// field, so that a read of small frames fits without the batch growing (measured: a guess of
/// 128 regrew the batch of every 64-byte-frame read, 2 % of the daemon's instructions).
const FRAME_GUESS: usize = 64;

/// The frames of one read from one input.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The input they came from.
    pub(crate) side: Side,
    /// Complete frames, in arrival order.
    pub(crate) frames: Vec<Frame>,
    /// Zero-length frames skipped among them (D-IN-1).
    pub(crate) empty: u32,
    /// A drain barrier, passed on after the frames.
    pub(crate) barrier: Option<Barrier>,
}

/// A drain barrier: it reaches the receiver after every frame that was readable on the
/// reader's socket when the barrier was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Barrier {
    /// Flush the pipeline after these frames (the primary input of a beacon pipeline).
    Flush(Flush),
    /// Everything that was readable has been passed on (the beacon's outdev).
    Settled,
}

/// Where a reader takes barriers from, if it takes any.
pub(crate) type Barriers = Option<mpsc::UnboundedReceiver<Barrier>>;

/// What decoding one chunk produced.
pub(crate) struct Decodes {
    /// Complete frames.
    pub(crate) frames: Vec<Frame>,
    /// Zero-length frames skipped.
    pub(crate) empty: u32,
    /// Set when the stream lost its framing: the connection must be closed.
    pub(crate) failure: Option<FrameError>,
}

/// Takes every complete frame out of `decoder`, logging skipped empty frames under `label`.
pub(crate) fn decode_all(decoder: &mut Decoder, label: &str) -> Decodes {
    // Room for a chunk of small frames at once, rather than growing frame by frame.
    let guess = (decoder.buffered() / FRAME_GUESS).clamp(1, 1024);
    let mut out = Decodes {
        frames: Vec::with_capacity(guess),
        empty: 0,
        failure: None,
    };
    loop {
        match decoder.next_frame() {
            Ok(Some(Decoded::Frame(f))) => out.frames.push(f),
            Ok(Some(Decoded::Empty)) => {
                warn!("{label}: zero-length frame skipped");
                out.empty = out.empty.saturating_add(1);
            }
            Ok(None) => return out,
            Err(e) => {
                out.failure = Some(e);
                return out;
            }
        }
    }
}

/// Logs why a connection ended; `decoder` tells whether it ended mid-frame.
pub(crate) fn log_end(label: &str, end: &ConnEnd, decoder: &Decoder) {
    match end {
        ConnEnd::Closed => match decoder.finish() {
            Ok(()) => info!("{label}: peer disconnected"),
            Err(e) => {
                warn!("{label}: peer disconnected mid-frame ({e}); the partial frame is discarded")
            }
        },
        ConnEnd::Failed(e) => warn!("{label}: read failed ({e}); closing the connection"),
        ConnEnd::Framing(e) => warn!("{label}: {e}; closing the connection"),
        ConnEnd::Stopped => {}
    }
}

/// Why the actor stopped serving a connection.
pub(crate) enum ConnEnd {
    /// The peer closed it.
    Closed,
    /// Reading failed.
    Failed(std::io::Error),
    /// The stream lost its framing (oversized length).
    Framing(FrameError),
    /// Nobody takes our output any more: the pipeline is stopping.
    Stopped,
}

/// Serves `link` forever: one peer after another, passing on each barrier of `barriers`
/// after what was readable when it came.
pub(crate) async fn run(
    link: Link,
    side: Side,
    vnet: bool,
    mut tracker: mpsc::Sender<Batch>,
    mut barriers: Barriers,
) {
    loop {
        let Some((mut conn, peer)) = connect(&link, side, &mut tracker, &mut barriers).await else {
            return;
        };
        info!("{}: connected to {peer}", link.label());
        let mut decoder = Decoder::new(vnet);
        let mut input = Input {
            decoder: &mut decoder,
            label: link.label(),
            side,
            tracker: &mut tracker,
        };
        let end = serve(&mut conn, &mut input, &mut barriers).await;
        log_end(link.label(), &end, &decoder);
        if matches!(end, ConnEnd::Stopped) {
            return;
        }
    }
}

/// The next peer. Barriers asked for meanwhile are passed on at once: nothing is readable.
/// `None` when nobody takes the reader's output any more.
async fn connect(
    link: &Link,
    side: Side,
    tracker: &mut mpsc::Sender<Batch>,
    barriers: &mut Barriers,
) -> Option<(Conn, String)> {
    let mut connecting = pin!(link.connect());
    if let Some(rx) = barriers.as_mut() {
        loop {
            match select(connecting.as_mut(), rx.next()).await {
                Either::Left((c, _)) => return Some(c),
                Either::Right((Some(b), _)) => {
                    if send(tracker, side, Vec::new(), 0, Some(b)).await.is_err() {
                        return None;
                    }
                }
                Either::Right((None, _)) => break,
            }
        }
        *barriers = None;
    }
    Some(connecting.await)
}

/// One connection's decoding state and where its frames go.
struct Input<'a> {
    decoder: &'a mut Decoder,
    label: &'a str,
    side: Side,
    tracker: &'a mut mpsc::Sender<Batch>,
}

enum Step {
    Read(std::io::Result<usize>),
    Barrier(Option<Barrier>),
}

async fn send(
    tracker: &mut mpsc::Sender<Batch>,
    side: Side,
    frames: Vec<Frame>,
    empty: u32,
    barrier: Option<Barrier>,
) -> Result<(), ConnEnd> {
    tracker
        .send(Batch {
            side,
            frames,
            empty,
            barrier,
        })
        .await
        .map_err(|_| ConnEnd::Stopped)
}

impl Input<'_> {
    /// Hands on the frames the decoder has complete.
    async fn take(&mut self) -> Result<(), ConnEnd> {
        let got = decode_all(self.decoder, self.label);
        if !got.frames.is_empty() || got.empty > 0 {
            send(self.tracker, self.side, got.frames, got.empty, None).await?;
        }
        match got.failure {
            Some(e) => Err(ConnEnd::Framing(e)),
            None => Ok(()),
        }
    }

    /// Takes in what is readable now, without waiting, then passes `barrier` on. Returns how
    /// the connection ended if it did meanwhile.
    async fn drain(&mut self, conn: &mut Conn, barrier: Barrier) -> Result<(), ConnEnd> {
        let mut end = Ok(());
        loop {
            let mut chunk = self.decoder.read_buffer(READ_CHUNK);
            // A read that would block is pending: nothing more is readable now.
            let read = poll_fn(|cx| conn.poll_read_to(cx, &mut chunk)).now_or_never();
            self.decoder.fill(chunk);
            match read {
                None => break,
                Some(Ok(0)) => {
                    end = Err(ConnEnd::Closed);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => {
                    end = Err(ConnEnd::Failed(e));
                    break;
                }
            }
            match self.take().await {
                Ok(()) => {}
                Err(ConnEnd::Stopped) => return Err(ConnEnd::Stopped),
                Err(e) => {
                    end = Err(e);
                    break;
                }
            }
        }
        send(self.tracker, self.side, Vec::new(), 0, Some(barrier)).await?;
        end
    }
}

async fn serve(conn: &mut Conn, input: &mut Input<'_>, barriers: &mut Barriers) -> ConnEnd {
    loop {
        let mut chunk = input.decoder.read_buffer(READ_CHUNK);
        let step = poll_fn(|cx| {
            if let Some(rx) = barriers.as_mut() {
                if let Poll::Ready(b) = rx.poll_next_unpin(cx) {
                    return Poll::Ready(Step::Barrier(b));
                }
            }
            conn.poll_read_to(cx, &mut chunk).map(Step::Read)
        })
        .await;
        input.decoder.fill(chunk);
        match step {
            Step::Barrier(Some(b)) => match input.drain(conn, b).await {
                Ok(()) => continue,
                Err(end) => return end,
            },
            Step::Barrier(None) => {
                *barriers = None;
                continue;
            }
            Step::Read(Ok(0)) => return ConnEnd::Closed,
            Step::Read(Ok(_)) => {}
            Step::Read(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Step::Read(Err(e)) => return ConnEnd::Failed(e),
        }
        if let Err(end) = input.take().await {
            return end;
        }
    }
}
