//! The beacon's QMP client: one session at a time with a monitor of the primary QEMU.
//!
//! At connection it negotiates capabilities, turns on the `events` migration capability
//! (refused by QEMU while a migration runs; then `MIGRATION` and `MIGRATION_PASS` are simply
//! not seen) and asks whether the migration is in COLO. Then it passes every event on and
//! makes each checkpoint request as `migrate-set-parameters x-checkpoint-delay`, sending back
//! the value QEMU reports at that moment so that the period stays as configured.

use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};

use colo_core::beacon::QemuEvent;
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{Either, poll_fn, select};
use futures::io::{AsyncRead, AsyncWriteExt};
use log::{debug, info, warn};
use serde_json::{Value, json};

use super::Input;
use super::qmp::{self, MAX_LINE, Message};
use crate::link::{Conn, Link};

/// Bytes asked for per read.
const READ_CHUNK: usize = 4096;

/// A request in progress: first the query of the current delay, then the setting of it.
enum Pending {
    Query(u64),
    Set(u64, u64),
}

/// Why a session ended.
enum End {
    /// The beacon stopped: the pipeline is shutting down.
    Stopped,
    /// The connection failed or closed.
    Failed(io::Error),
}

/// Serves the QMP endpoint until the beacon stops sending requests.
pub(crate) async fn run(
    link: Link,
    mut requests: mpsc::UnboundedReceiver<()>,
    out: mpsc::UnboundedSender<Input>,
) {
    let label = link.label().to_string();
    loop {
        let mut connecting = Box::pin(link.connect());
        let (conn, peer) = loop {
            match select(connecting.as_mut(), requests.next()).await {
                Either::Left((c, _)) => break c,
                Either::Right((Some(()), _)) => {
                    warn!("{label}: not connected; checkpoint request not sent");
                }
                Either::Right((None, _)) => return,
            }
        };
        drop(connecting);
        info!("{label}: connected to {peer}");
        let mut session = Session {
            conn,
            buf: Vec::new(),
            next_id: 1,
            label: &label,
        };
        let (colo, early) = match session.handshake().await {
            Ok(h) => h,
            Err(e) => {
                warn!("{label}: QMP handshake failed ({e}); reconnecting");
                continue;
            }
        };
        info!(
            "{label}: QMP ready; the migration is {}in COLO",
            if colo { "" } else { "not yet " }
        );
        let _ = out.unbounded_send(Input::QmpUp { colo });
        for e in early {
            let _ = out.unbounded_send(Input::Event(e));
        }
        let end = session.serve(&mut requests, &out).await;
        let _ = out.unbounded_send(Input::QmpDown);
        match end {
            End::Stopped => return,
            End::Failed(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                info!("{label}: QMP peer disconnected")
            }
            End::Failed(e) => warn!("{label}: QMP connection failed ({e})"),
        }
    }
}

struct Session<'a> {
    conn: Conn,
    /// Bytes read and not yet returned as lines.
    buf: Vec<u8>,
    next_id: u64,
    label: &'a str,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Session<'_> {
    /// The next line, without its line break. Cancel-safe: bytes read stay in `buf`.
    fn poll_line(&mut self, cx: &mut std::task::Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                return Poll::Ready(Ok(line));
            }
            if self.buf.len() > MAX_LINE {
                return Poll::Ready(Err(invalid(format!(
                    "a QMP line longer than {MAX_LINE} bytes"
                ))));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match ready!(Pin::new(&mut self.conn).poll_read(cx, &mut chunk)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// The next QMP message; lines that are none are logged and skipped.
    async fn message(&mut self) -> io::Result<Message> {
        loop {
            let line = poll_fn(|cx| self.poll_line(cx)).await?;
            match qmp::parse(&line) {
                Ok(m) => return Ok(m),
                Err(e) => warn!("{}: skipping a line from QEMU: {e}", self.label),
            }
        }
    }

    /// Sends a command; returns its id.
    async fn send(&mut self, name: &str, arguments: Value) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.conn
            .write_all(&qmp::command(name, arguments, id))
            .await?;
        self.conn.flush().await?;
        Ok(id)
    }

    /// Runs a command and waits for its reply; events meanwhile are kept in `events`.
    async fn execute(
        &mut self,
        name: &str,
        arguments: Value,
        events: &mut Vec<QemuEvent>,
    ) -> io::Result<Result<Value, String>> {
        let id = self.send(name, arguments).await?;
        loop {
            match self.message().await? {
                Message::Return { id: Some(i), value } if i == id => return Ok(Ok(value)),
                Message::Error { id: Some(i), desc } if i == id => return Ok(Err(desc)),
                Message::Event(e) => events.push(e),
                _ => {}
            }
        }
    }

    /// Greeting, capabilities, the `events` capability and the migration's state. Returns
    /// whether the migration is in COLO and the events seen meanwhile.
    async fn handshake(&mut self) -> io::Result<(bool, Vec<QemuEvent>)> {
        match self.message().await? {
            Message::Greeting => {}
            other => return Err(invalid(format!("expected the greeting, got {other:?}"))),
        }
        let mut early = Vec::new();
        self.execute("qmp_capabilities", json!({}), &mut early)
            .await?
            .map_err(|e| invalid(format!("qmp_capabilities: {e}")))?;
        match self
            .execute("migrate-set-capabilities", qmp::enable_events(), &mut early)
            .await?
        {
            Ok(_) => debug!("{}: migration events on", self.label),
            Err(e) => info!(
                "{}: migration events capability not set ({e}); MIGRATION and MIGRATION_PASS \
                 are not seen",
                self.label
            ),
        }
        let colo = match self.execute("query-migrate", json!({}), &mut early).await? {
            Ok(v) => qmp::in_colo(&v),
            Err(e) => {
                warn!("{}: query-migrate failed: {e}", self.label);
                false
            }
        };
        Ok((colo, early))
    }

    async fn serve(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<()>,
        out: &mpsc::UnboundedSender<Input>,
    ) -> End {
        let mut pending: Option<Pending> = None;
        loop {
            let wake = poll_fn(|cx| {
                if let Poll::Ready(r) = requests.poll_next_unpin(cx) {
                    return Poll::Ready(Either::Left(r));
                }
                self.poll_line(cx).map(Either::Right)
            })
            .await;
            let line = match wake {
                Either::Left(None) => return End::Stopped,
                Either::Left(Some(())) => {
                    if pending.is_some() {
                        debug!(
                            "{}: a QMP checkpoint request is in progress; merged",
                            self.label
                        );
                        continue;
                    }
                    match self.send("query-migrate-parameters", json!({})).await {
                        Ok(id) => pending = Some(Pending::Query(id)),
                        Err(e) => return End::Failed(e),
                    }
                    continue;
                }
                Either::Right(Ok(line)) => line,
                Either::Right(Err(e)) => return End::Failed(e),
            };
            let message = match qmp::parse(&line) {
                Ok(m) => m,
                Err(e) => {
                    warn!("{}: skipping a line from QEMU: {e}", self.label);
                    continue;
                }
            };
            match (message, &pending) {
                (Message::Event(e), _) => {
                    let _ = out.unbounded_send(Input::Event(e));
                }
                (Message::Return { id, value }, Some(Pending::Query(q))) if id == Some(*q) => {
                    let Some(delay) = qmp::read_checkpoint_delay(&value) else {
                        warn!(
                            "{}: query-migrate-parameters gave no x-checkpoint-delay; \
                             checkpoint request not sent",
                            self.label
                        );
                        pending = None;
                        continue;
                    };
                    match self
                        .send("migrate-set-parameters", qmp::checkpoint_delay(delay))
                        .await
                    {
                        Ok(id) => pending = Some(Pending::Set(id, delay)),
                        Err(e) => return End::Failed(e),
                    }
                }
                (Message::Return { id, .. }, Some(Pending::Set(s, delay))) if id == Some(*s) => {
                    info!(
                        "{}: checkpoint requested over QMP (x-checkpoint-delay {delay} ms, \
                         unchanged)",
                        self.label
                    );
                    pending = None;
                }
                (Message::Error { id, desc }, Some(Pending::Query(i) | Pending::Set(i, _)))
                    if id == Some(*i) =>
                {
                    warn!("{}: QMP checkpoint request failed: {desc}", self.label);
                    pending = None;
                }
                _ => {}
            }
        }
    }
}
