//! A test peer on one of the daemon's sockets, playing a QEMU filter-redirector or the COLO
//! controller: it writes frames in the filter framing and reads the daemon's frames back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use colo_core::frame::{encode, encode_parts};
use colo_core::{Decoded, Decoder, Frame};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A connected byte stream, TCP or UNIX.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// One connection of the test to the daemon.
pub struct Peer {
    stream: Box<dyn Duplex>,
    tx_vnet: bool,
    decoder: Decoder,
    inbox: VecDeque<Frame>,
    raw: Vec<u8>,
    buf: Vec<u8>,
    eof: bool,
}

impl Peer {
    /// A peer writing frames with the VNET_LEN field when `tx_vnet`, and expecting it on the
    /// frames it reads when `rx_vnet`.
    pub fn new(stream: Box<dyn Duplex>, tx_vnet: bool, rx_vnet: bool) -> Self {
        Peer {
            stream,
            tx_vnet,
            decoder: Decoder::new(rx_vnet),
            inbox: VecDeque::new(),
            raw: Vec::new(),
            buf: vec![0; 65536],
            eof: false,
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) {
        self.send_all(std::slice::from_ref(frame)).await;
    }

    /// Sends several frames in one write.
    pub async fn send_all(&mut self, frames: &[Frame]) {
        let mut out = Vec::new();
        for f in frames {
            encode(f, self.tx_vnet, &mut out);
        }
        self.send_raw(&out).await;
    }

    /// Sends a controller message (`COLO_CHECKPOINT`, ...) as one frame, with a VNET_LEN
    /// field of 0 when this peer writes the field.
    pub async fn send_message(&mut self, message: &[u8]) {
        let mut out = Vec::new();
        encode_parts(message, self.tx_vnet.then_some(0), &mut out);
        self.send_raw(&out).await;
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the daemon");
        self.stream.flush().await.expect("flush to the daemon");
    }

    /// Writes bytes as they are; a failure (the daemon closed the connection, as it does on
    /// a stream it cannot frame) is returned rather than a panic.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes into the decoder; false on end of stream or when `deadline` passes.
    async fn fill(&mut self, deadline: Instant, raw: bool) -> bool {
        if self.eof {
            return false;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let buf = &mut self.buf;
        match async_std::future::timeout(left, self.stream.read(buf)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                if raw {
                    self.raw.extend_from_slice(&self.buf[..n]);
                } else {
                    self.decoder.feed(&self.buf[..n]);
                    while let Some(d) = self.decoder.next_frame().expect("daemon framing") {
                        match d {
                            Decoded::Frame(f) => self.inbox.push_back(f),
                            Decoded::Empty => panic!("the daemon sent a zero-length frame"),
                        }
                    }
                }
                true
            }
        }
    }

    /// The next frame from the daemon, `None` if none comes within `within` or the stream ends.
    pub async fn recv(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(f) = self.inbox.pop_front() {
                return Some(f);
            }
            if !self.fill(deadline, false).await {
                return self.inbox.pop_front();
            }
        }
    }

    /// Exactly the next `n` frames; panics if fewer arrive within `within`.
    pub async fn recv_n(&mut self, n: usize, within: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + within;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(f) => got.push(f),
                None => panic!("got {} of {n} frames within {within:?}", got.len()),
            }
        }
        got
    }

    /// Exactly `n` raw bytes (for checking the daemon's framing byte for byte).
    pub async fn recv_raw(&mut self, n: usize, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        while self.raw.len() < n {
            assert!(
                self.fill(deadline, true).await,
                "got {} of {n} bytes within {within:?}: {:?}",
                self.raw.len(),
                self.raw
            );
        }
        self.raw.drain(..n).collect()
    }

    /// Panics if the daemon sends a frame within `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(f) = self.recv(quiet).await {
            panic!(
                "expected nothing, got a {}-byte frame: {}",
                f.len(),
                crate::frames::describe(&f)
            );
        }
    }

    /// Panics unless the daemon closes the connection within `within`.
    pub async fn expect_closed(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.eof {
            if !self.fill(deadline, false).await && !self.eof {
                panic!("the daemon did not close the connection within {within:?}");
            }
        }
    }
}
