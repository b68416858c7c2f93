//! A beacon socket the daemon writes to (`primary_in` for the parked frame, `secondary_in`
//! for pokes): it reports when its peer connects and leaves, and writes the frames it is
//! given in the filter framing (the beacon has no vnet header).
//!
//! The state machine decides what to write from the connection reports, so a frame given
//! while no peer is connected is not kept: the next connection report makes it decide again.

use std::pin::pin;

use colo_core::Frame;
use colo_core::beacon::BeaconLink;
use colo_core::frame::encode;
use futures::channel::mpsc;
use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use futures::{FutureExt, StreamExt};
use log::{debug, info, warn};

use super::Input;
use crate::link::{Conn, Link};

/// Serves `link` until the beacon stops giving frames.
pub(crate) async fn run(
    link: Link,
    which: BeaconLink,
    mut frames: mpsc::UnboundedReceiver<Frame>,
    out: mpsc::UnboundedSender<Input>,
) {
    let label = link.label().to_string();
    let mut buf = Vec::new();
    loop {
        let mut connecting = pin!(link.connect());
        let (conn, peer) = loop {
            match select(connecting.as_mut(), frames.next()).await {
                Either::Left((c, _)) => break c,
                Either::Right((Some(_), _)) => {
                    debug!("{label}: not connected; frame not written");
                }
                Either::Right((None, _)) => return,
            }
        };
        info!("{label}: connected to {peer}");
        let _ = out.unbounded_send(Input::Link(which, true));
        let (reader, mut writer) = conn.split();
        let mut gone = pin!(watch(reader).fuse());
        let stopped = loop {
            match select(gone.as_mut(), frames.next()).await {
                Either::Left(((), _)) => {
                    info!("{label}: peer disconnected");
                    break false;
                }
                Either::Right((Some(frame), _)) => {
                    buf.clear();
                    encode(&frame, false, &mut buf);
                    let written = match writer.write_all(&buf).await {
                        Ok(()) => writer.flush().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = written {
                        warn!("{label}: write failed ({e}); closing the connection");
                        break false;
                    }
                }
                Either::Right((None, _)) => break true,
            }
        };
        let _ = out.unbounded_send(Input::Link(which, false));
        if stopped {
            return;
        }
    }
}

/// Reads (and ignores) whatever the peer sends; completes when it goes away.
async fn watch(mut reader: ReadHalf<Conn>) {
    let mut buf = [0u8; 512];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
