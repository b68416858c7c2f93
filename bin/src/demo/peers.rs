//! The demo's socket peers: the two guests (primary and secondary filter-redirectors), the
//! output peer (the primary's filter-redirector indev) and the COLO controller on notify_dev.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::os::unix::net::UnixStream;
use bytes::Bytes;
use colo_core::frame::encode_parts;
use colo_core::{Decoded, Decoder, Side};

use super::DemoError;
use super::ledger::Ledger;
use super::traffic::Script;

/// How long each phase's traffic is spread over, per guest.
const PHASE_TIME: Duration = Duration::from_millis(350);
/// How long a guest waits for a divergent frame to be released before giving up on it.
const BARRIER_LIMIT: Duration = Duration::from_secs(5);

/// Connects to one of the daemon's listening sockets.
pub async fn connect(path: &Path, role: &'static str) -> Result<UnixStream, DemoError> {
    UnixStream::connect(path)
        .await
        .map_err(|source| DemoError::Connect { role, source })
}

/// One guest: sends its side of every phase, paced over [`PHASE_TIME`], starting each phase
/// `lag` late, and after a phase with a divergence waits until the primary's divergent frame
/// has been released (as the COLO controller pauses both VMs for a checkpoint).
pub async fn guest(
    side: Side,
    mut stream: UnixStream,
    script: Arc<Script>,
    ledger: Arc<Ledger>,
    lag: Duration,
) -> Result<(), DemoError> {
    let io = |source| DemoError::Io {
        role: if side == Side::Primary {
            "primary guest"
        } else {
            "secondary guest"
        },
        source,
    };
    let mut buf = Vec::with_capacity(2048);
    for phase in &script.phases {
        let frames = match side {
            Side::Primary => &phase.primary,
            Side::Secondary => &phase.secondary,
        };
        async_std::task::sleep(lag).await;
        let pace = PHASE_TIME / u32::try_from(frames.len().max(1)).unwrap_or(u32::MAX);
        for frame in frames {
            buf.clear();
            encode_parts(frame, None, &mut buf);
            if side == Side::Primary {
                ledger.sent(frame, Instant::now());
            }
            stream.write_all(&buf).await.map_err(io)?;
            async_std::task::sleep(pace).await;
        }
        if let Some(d) = &phase.divergence {
            let give_up = Instant::now() + BARRIER_LIMIT;
            while !ledger.was_delivered(&d.primary_frame) && Instant::now() < give_up {
                async_std::task::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    stream.flush().await.map_err(io)
}

/// Reads frames from `stream` until it closes, handing each to `each`.
async fn read_frames(
    mut stream: UnixStream,
    role: &'static str,
    mut each: impl FnMut(Bytes, &mut Vec<u8>),
) -> Result<UnixStream, DemoError> {
    let mut decoder = Decoder::new(false);
    let mut buf = vec![0u8; 64 * 1024];
    let mut replies = Vec::new();
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|source| DemoError::Io { role, source })?;
        if n == 0 {
            return Ok(stream);
        }
        decoder.feed(&buf[..n]);
        while let Some(decoded) = decoder.next_frame().map_err(|e| DemoError::Framing {
            role,
            problem: e.to_string(),
        })? {
            if let Decoded::Frame(f) = decoded {
                each(f.data, &mut replies);
            }
        }
        if !replies.is_empty() {
            stream
                .write_all(&replies)
                .await
                .map_err(|source| DemoError::Io { role, source })?;
            replies.clear();
        }
    }
}

/// The output peer: records every released frame until the daemon closes outdev.
pub async fn output(stream: UnixStream, ledger: Arc<Ledger>) -> Result<(), DemoError> {
    read_frames(stream, "output peer", |frame, _| {
        ledger.delivered(frame, Instant::now())
    })
    .await
    .map(drop)
}

/// What the controller saw on notify_dev.
#[derive(Default)]
pub struct ControllerLog {
    /// `DO_CHECKPOINT` requests received (each answered with `COLO_CHECKPOINT`).
    pub requests: AtomicU64,
    /// Whether the `COLO_USERSPACE_PROXY_INIT` handshake was answered.
    pub handshake: AtomicU64,
    /// Anything else received.
    pub unknown: AtomicU64,
}

/// The COLO controller: greets with `COLO_USERSPACE_PROXY_INIT`, then answers every
/// `DO_CHECKPOINT` with `COLO_CHECKPOINT` (the checkpoint itself is instantaneous here).
pub async fn controller(mut stream: UnixStream, log: Arc<ControllerLog>) -> Result<(), DemoError> {
    let role = "COLO controller";
    let mut hello = Vec::new();
    encode_parts(b"COLO_USERSPACE_PROXY_INIT", None, &mut hello);
    stream
        .write_all(&hello)
        .await
        .map_err(|source| DemoError::Io { role, source })?;
    read_frames(stream, role, |message, replies| {
        match &message[..] {
            b"DO_CHECKPOINT" => {
                log.requests.fetch_add(1, Ordering::Relaxed);
                encode_parts(b"COLO_CHECKPOINT", None, replies);
            }
            b"COLO_COMPARE_GET_XEN_INIT" => {
                log.handshake.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                log.unknown.fetch_add(1, Ordering::Relaxed);
            }
        };
    })
    .await
    .map(drop)
}
