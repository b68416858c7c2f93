//! The egress actor: owns the output socket (`outdev`) and writes released frames to it.
//!
//! Frames go out in release order, many per write. While the output peer is away (or too
//! slow) released frames wait in a buffer of up to `output_buffer` bytes; past that egress
//! stops taking batches from the tracker. The bytes it has not written are the tracker's
//! [`OutputCredit`]: while they reach `output_buffer` the tracker takes no input and the
//! readers stop reading (D-LOSS-2). Nothing released is ever
//! discarded because the output was down: frames leave the buffer only once a write of them
//! has completed, and a write cut short by a disconnect is repeated to the next peer.
//!
//! The output peer never sends anything, but its socket is read all the same: that is how
//! a peer that went away is noticed before the next frame is written into the void.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use colo_core::Frame;
use colo_core::frame::encode;
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::future::{BoxFuture, FutureExt, poll_fn};
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::stream::FuturesUnordered;
use log::{info, warn};

use crate::credit::OutputCredit;
use crate::link::{Conn, Link};
use crate::live::{LiveSlot, OutputStatus};
use crate::runtime;

/// Bytes encoded into one write, at most (a single larger frame is written whole).
const WRITE_CHUNK: usize = 256 * 1024;

/// A finished write: the socket half and buffer come back for the next one.
struct WriteDone {
    writer: WriteHalf<Conn>,
    buf: Vec<u8>,
    result: io::Result<()>,
}

enum State {
    /// Waiting for an output peer.
    Connecting(BoxFuture<'static, (Conn, String)>),
    /// A peer is connected.
    Connected {
        /// Yields when the peer goes away. A set of one future rather than the future itself:
        /// the set polls it only once its socket has woken it, where polling it on every
        /// wake-up of this actor tried a read each time (one `recvfrom` per batch released).
        watch: FuturesUnordered<BoxFuture<'static, ()>>,
        /// The socket's write half, when no write is in flight.
        writer: Option<WriteHalf<Conn>>,
        /// The write in flight.
        write: Option<BoxFuture<'static, WriteDone>>,
    },
}

enum Wake {
    Closing(Duration),
    Input(Option<Vec<Frame>>),
    Connected(Conn, String),
    PeerGone,
    Written(WriteDone),
    Deadline,
}

/// The egress actor's state.
pub(crate) struct Egress {
    link: Arc<Link>,
    vnet: bool,
    limit: u64,
    credit: Arc<OutputCredit>,
    live: LiveSlot,
    /// Released frames not yet written, oldest first; the first `in_flight` are being written.
    queue: VecDeque<Frame>,
    queued_bytes: u64,
    in_flight: usize,
    written_frames: u64,
    written_bytes: u64,
    state: State,
    scratch: Vec<u8>,
    paused: bool,
}

impl Egress {
    /// Egress on `link`, buffering up to `limit` bytes while the peer is away; what it writes
    /// is repaid to `credit`.
    pub(crate) fn new(
        link: Link,
        vnet: bool,
        limit: u64,
        credit: Arc<OutputCredit>,
        live: LiveSlot,
    ) -> Self {
        let link = Arc::new(link);
        Egress {
            state: State::Connecting(connecting(&link)),
            link,
            vnet,
            limit,
            credit,
            live,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: 0,
            written_frames: 0,
            written_bytes: 0,
            scratch: Vec::new(),
            paused: false,
        }
    }

    /// Writes what the tracker releases until the tracker closes its channel. `closing`
    /// announces the shutdown and its grace period: from then on every batch is taken
    /// whatever the buffer holds, and once the tracker's channel has ended egress waits at
    /// most the grace period for the output peer. Returns the frames left unwritten.
    pub(crate) async fn run(
        mut self,
        mut input: mpsc::Receiver<Vec<Frame>>,
        mut closing: oneshot::Receiver<Duration>,
    ) -> u64 {
        let mut input_open = true;
        let mut grace: Option<Duration> = None;
        let mut closing_open = true;
        let mut deadline: Option<BoxFuture<'static, ()>> = None;
        loop {
            self.start_write();
            self.publish();
            if !input_open && self.queue.is_empty() {
                self.finish().await;
                return 0;
            }
            let room = grace.is_some() || self.queued_bytes < self.limit;
            let wake = poll_fn(|cx| {
                if closing_open {
                    if let Poll::Ready(g) = closing.poll_unpin(cx) {
                        return Poll::Ready(Wake::Closing(g.unwrap_or(Duration::ZERO)));
                    }
                }
                if input_open && room {
                    if let Poll::Ready(b) = input.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Input(b));
                    }
                }
                match &mut self.state {
                    State::Connecting(f) => {
                        if let Poll::Ready((conn, peer)) = f.poll_unpin(cx) {
                            return Poll::Ready(Wake::Connected(conn, peer));
                        }
                    }
                    State::Connected { watch, write, .. } => {
                        if let Some(w) = write {
                            if let Poll::Ready(done) = w.poll_unpin(cx) {
                                return Poll::Ready(Wake::Written(done));
                            }
                        }
                        if let Poll::Ready(Some(())) = watch.poll_next_unpin(cx) {
                            return Poll::Ready(Wake::PeerGone);
                        }
                    }
                }
                if let Some(d) = deadline.as_mut() {
                    if d.poll_unpin(cx).is_ready() {
                        return Poll::Ready(Wake::Deadline);
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Closing(g) => {
                    closing_open = false;
                    grace = Some(g);
                }
                Wake::Input(Some(batch)) => self.take(batch),
                Wake::Input(None) => {
                    input_open = false;
                    let g = grace.unwrap_or(Duration::ZERO);
                    deadline = Some(runtime::sleep(g).boxed());
                }
                Wake::Connected(conn, peer) => self.connected(conn, &peer),
                Wake::PeerGone => self.disconnected(None),
                Wake::Written(done) => self.written(done),
                Wake::Deadline => {
                    let n = self.queue.len() as u64;
                    warn!(
                        "{}: the output peer did not take {n} released frames ({} bytes) within {} ms; they are not written",
                        self.link.label(),
                        self.queued_bytes,
                        grace.unwrap_or(Duration::ZERO).as_millis()
                    );
                    return n;
                }
            }
        }
    }

    fn take(&mut self, batch: Vec<Frame>) {
        for frame in batch {
            self.queued_bytes += frame.encoded_len(self.vnet) as u64;
            self.queue.push_back(frame);
        }
        if self.queued_bytes >= self.limit && !self.paused {
            self.paused = true;
            warn!(
                "{}: output buffer full ({} bytes, {} frames); inputs paused until the output peer takes them",
                self.link.label(),
                self.queued_bytes,
                self.queue.len()
            );
        }
    }

    fn connected(&mut self, conn: Conn, peer: &str) {
        let (reader, writer) = conn.split();
        self.state = State::Connected {
            watch: std::iter::once(watch(reader).boxed()).collect(),
            writer: Some(writer),
            write: None,
        };
        if self.queue.is_empty() {
            info!("{}: connected to {peer}", self.link.label());
        } else {
            info!(
                "{}: connected to {peer}; writing {} buffered frames",
                self.link.label(),
                self.queue.len()
            );
        }
    }

    fn disconnected(&mut self, error: Option<io::Error>) {
        self.in_flight = 0;
        self.state = State::Connecting(connecting(&self.link));
        let why = error.map_or_else(
            || "peer disconnected".to_string(),
            |e| format!("write failed ({e})"),
        );
        info!(
            "{}: {why}; released frames are buffered until a peer connects (up to {} bytes)",
            self.link.label(),
            self.limit
        );
    }

    fn written(&mut self, done: WriteDone) {
        let WriteDone {
            writer,
            mut buf,
            result,
        } = done;
        if let Err(e) = result {
            self.disconnected(Some(e));
            return;
        }
        let mut written = 0;
        for frame in self.queue.drain(..self.in_flight) {
            self.queued_bytes -= frame.encoded_len(self.vnet) as u64;
            written += frame.len() as u64;
        }
        self.credit.repay(written);
        self.written_frames += self.in_flight as u64;
        self.written_bytes += buf.len() as u64;
        self.in_flight = 0;
        if self.queued_bytes < self.limit {
            self.paused = false;
        }
        buf.clear();
        self.scratch = buf;
        if let State::Connected {
            writer: w, write, ..
        } = &mut self.state
        {
            *w = Some(writer);
            *write = None;
        }
    }

    /// Starts writing the oldest frames if a peer is connected and idle.
    fn start_write(&mut self) {
        let State::Connected { writer, write, .. } = &mut self.state else {
            return;
        };
        if self.queue.is_empty() || write.is_some() {
            return;
        }
        let Some(mut w) = writer.take() else {
            return;
        };
        let mut buf = std::mem::take(&mut self.scratch);
        let mut n = 0;
        for frame in &self.queue {
            if n > 0 && buf.len() + frame.encoded_len(self.vnet) > WRITE_CHUNK {
                break;
            }
            encode(frame, self.vnet, &mut buf);
            n += 1;
        }
        self.in_flight = n;
        *write = Some(
            async move {
                let mut result = w.write_all(&buf).await;
                if result.is_ok() {
                    result = w.flush().await;
                }
                WriteDone {
                    writer: w,
                    buf,
                    result,
                }
            }
            .boxed(),
        );
    }

    fn publish(&self) {
        self.live.set_output(OutputStatus {
            connected: matches!(self.state, State::Connected { .. }),
            buffered_frames: self.queue.len() as u64,
            buffered_bytes: self.queued_bytes,
            written_frames: self.written_frames,
            written_bytes: self.written_bytes,
        });
    }

    /// Everything is written: close the connection cleanly.
    async fn finish(self) {
        if let State::Connected {
            writer: Some(mut w),
            ..
        } = self.state
        {
            let _ = w.close().await;
        }
    }
}

fn connecting(link: &Arc<Link>) -> BoxFuture<'static, (Conn, String)> {
    let link = Arc::clone(link);
    async move { link.connect().await }.boxed()
}

/// Reads (and ignores) whatever the output peer sends; completes when it goes away.
async fn watch(mut reader: ReadHalf<Conn>) {
    let mut buf = [0u8; 512];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
