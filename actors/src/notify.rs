//! The notify actor: the COLO controller's channel (QEMU's `notify_dev`, §2.4).
//!
//! Out: `DO_CHECKPOINT` for every checkpoint request the tracker raises. In:
//! `COLO_CHECKPOINT` (flush) and `COLO_USERSPACE_PROXY_INIT` (answered with
//! `COLO_COMPARE_GET_XEN_INIT`); anything else is logged as unsupported and changes nothing.
//! Matching is exact, as QEMU's. The vnet asymmetry is QEMU's too: with vnet support on,
//! incoming frames carry the VNET_LEN field, outgoing ones never do.

use colo_core::Decoder;
use colo_core::frame::encode_parts;
use futures::channel::mpsc;
use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{SinkExt, StreamExt};
use log::{info, warn};

use crate::link::{Conn, Link};
use crate::live::LiveSlot;
use crate::reader::{ConnEnd, decode_all, log_end};
use crate::requests::RequestPath;
use crate::tracker::Control;

/// Sent to ask the controller for a checkpoint.
pub const DO_CHECKPOINT: &[u8] = b"DO_CHECKPOINT";
/// Received when a checkpoint has happened: flush.
pub const COLO_CHECKPOINT: &[u8] = b"COLO_CHECKPOINT";
/// Received when the controller starts.
pub const COLO_USERSPACE_PROXY_INIT: &[u8] = b"COLO_USERSPACE_PROXY_INIT";
/// The answer to [`COLO_USERSPACE_PROXY_INIT`].
pub const COLO_COMPARE_GET_XEN_INIT: &[u8] = b"COLO_COMPARE_GET_XEN_INIT";

/// Bytes asked for per read; controller messages are tiny.
const READ_CHUNK: usize = 4096;

enum Step {
    Read(std::io::Result<usize>),
    Request(Option<()>),
}

/// Serves the controller's channel until the tracker stops sending requests.
pub(crate) async fn run(
    link: Link,
    vnet: bool,
    mut requests: mpsc::Receiver<()>,
    mut tracker: mpsc::Sender<Control>,
    live: LiveSlot,
) {
    let label = link.label().to_string();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mut connecting = Box::pin(link.connect());
        let (mut conn, peer) = loop {
            match select(connecting.as_mut(), requests.next()).await {
                Either::Left((c, _)) => break c,
                Either::Right((Some(()), _)) => {
                    warn!("{label}: no controller connected; DO_CHECKPOINT not sent");
                    live.count_request(RequestPath::Unsent);
                }
                Either::Right((None, _)) => return,
            }
        };
        drop(connecting);
        info!("{label}: connected to {peer}");
        let mut decoder = Decoder::new(vnet);
        let end = loop {
            let step = match select(conn.read(&mut buf), requests.next()).await {
                Either::Left((r, _)) => Step::Read(r),
                Either::Right((m, _)) => Step::Request(m),
            };
            match step {
                Step::Read(Ok(0)) => break ConnEnd::Closed,
                Step::Read(Ok(n)) => {
                    decoder.feed(&buf[..n]);
                    let got = decode_all(&mut decoder, &label);
                    let mut failed = None;
                    for frame in got.frames {
                        if let Err(end) =
                            message(&mut conn, &frame.data, &label, &mut tracker).await
                        {
                            failed = Some(end);
                            break;
                        }
                    }
                    if let Some(end) = failed.or(got.failure.map(ConnEnd::Framing)) {
                        break end;
                    }
                }
                Step::Read(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Step::Read(Err(e)) => break ConnEnd::Failed(e),
                Step::Request(Some(())) => {
                    if let Err(e) = send(&mut conn, DO_CHECKPOINT).await {
                        warn!("{label}: sending DO_CHECKPOINT failed: {e}");
                        live.count_request(RequestPath::Unsent);
                        break ConnEnd::Failed(e);
                    }
                    live.count_request(RequestPath::Notify);
                }
                Step::Request(None) => break ConnEnd::Stopped,
            }
        };
        log_end(&label, &end, &decoder);
        if matches!(end, ConnEnd::Stopped) {
            return;
        }
    }
}

/// Acts on one message from the controller.
async fn message(
    conn: &mut Conn,
    data: &[u8],
    label: &str,
    tracker: &mut mpsc::Sender<Control>,
) -> Result<(), ConnEnd> {
    if data == COLO_CHECKPOINT {
        info!("{label}: COLO_CHECKPOINT received");
        tracker
            .send(Control::Checkpoint(None))
            .await
            .map_err(|_| ConnEnd::Stopped)
    } else if data == COLO_USERSPACE_PROXY_INIT {
        info!("{label}: COLO_USERSPACE_PROXY_INIT received; answering COLO_COMPARE_GET_XEN_INIT");
        send(conn, COLO_COMPARE_GET_XEN_INIT).await.map_err(|e| {
            warn!("{label}: sending COLO_COMPARE_GET_XEN_INIT failed: {e}");
            ConnEnd::Failed(e)
        })
    } else {
        let shown = data.get(..64).unwrap_or(data);
        warn!(
            "{label}: COLO compare got unsupported instruction ({} bytes: \"{}\")",
            data.len(),
            shown.escape_ascii()
        );
        Ok(())
    }
}

/// Writes one message, framed without the VNET_LEN field whatever the vnet setting (Q15).
async fn send(conn: &mut Conn, message: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4 + message.len());
    encode_parts(message, None, &mut out);
    conn.write_all(&out).await?;
    conn.flush().await
}
