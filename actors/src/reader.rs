//! The reader actor: one per packet input (primary_in, secondary_in).
//!
//! It owns its socket and serves one peer at a time, with a fresh frame decoder for every
//! connection so that a peer that vanished mid-frame cannot poison the next one (D-IN-2,
//! T48). It reads large chunks and hands the frames of each chunk to the tracker as one
//! batch; the channel is bounded, so a tracker that stops taking input stops the reading.

use colo_core::{Decoded, Decoder, Frame, FrameError, Side};
use futures::SinkExt;
use futures::channel::mpsc;
use futures::io::AsyncReadExt;
use log::{info, warn};

use crate::link::{Conn, Link};

/// Bytes asked for per read.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The frames of one read from one input.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The input they came from.
    pub(crate) side: Side,
    /// Complete frames, in arrival order.
    pub(crate) frames: Vec<Frame>,
    /// Zero-length frames skipped among them (D-IN-1).
    pub(crate) empty: u32,
}

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
    let mut out = Decodes {
        frames: Vec::new(),
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

/// Serves `link` forever: one peer after another.
pub(crate) async fn run(link: Link, side: Side, vnet: bool, mut tracker: mpsc::Sender<Batch>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let (mut conn, peer) = link.connect().await;
        info!("{}: connected to {peer}", link.label());
        let mut decoder = Decoder::new(vnet);
        let end = serve(
            &mut conn,
            &mut decoder,
            &mut buf,
            link.label(),
            side,
            &mut tracker,
        )
        .await;
        log_end(link.label(), &end, &decoder);
        if matches!(end, ConnEnd::Stopped) {
            return;
        }
    }
}

async fn serve(
    conn: &mut Conn,
    decoder: &mut Decoder,
    buf: &mut [u8],
    label: &str,
    side: Side,
    tracker: &mut mpsc::Sender<Batch>,
) -> ConnEnd {
    loop {
        let n = match conn.read(buf).await {
            Ok(0) => return ConnEnd::Closed,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return ConnEnd::Failed(e),
        };
        decoder.feed(&buf[..n]);
        let got = decode_all(decoder, label);
        if (!got.frames.is_empty() || got.empty > 0)
            && tracker
                .send(Batch {
                    side,
                    frames: got.frames,
                    empty: got.empty,
                })
                .await
                .is_err()
        {
            return ConnEnd::Stopped;
        }
        if let Some(e) = got.failure {
            return ConnEnd::Framing(e);
        }
    }
}
