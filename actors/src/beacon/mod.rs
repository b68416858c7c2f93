//! Beacon mode (KVM COLO): the actor that serves a pipeline's beacon, the tiny extra
//! `colo-compare` object in the primary QEMU whose output marks QEMU's flush point.
//!
//! Every decision is `colo_core::beacon`'s state machine; this actor moves bytes and messages
//! for it, with a helper per socket, all running inside the actor's own task:
//!
//! ```text
//!  tracker --requests--> beacon --parked frame--> feed(beacon primary_in)
//!                          |  \---------pokes---> feed(beacon secondary_in)
//!                          |  <--frames, settled-- reader(beacon outdev)
//!                          |  <------events------> session(QMP)
//!                          v
//!  primary reader <--flush barrier--   tracker <--failover (COLO_EXIT)--
//! ```
//!
//! A flush does not go to the tracker directly: it goes to the primary input's reader as a
//! drain barrier, which hands the tracker every primary frame already readable and then the
//! flush, so the epoch is cut exactly at the moment the beacon frame was seen.

mod config;
mod feed;
mod qmp;
mod session;
mod status;

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use colo_core::beacon::{Action, Beacon, BeaconLink, FlushCause, QemuEvent, Request};
use colo_core::{Frame, Side, Timestamp};
use futures::channel::{mpsc, oneshot};
use futures::future::{self, poll_fn, select};
use futures::{SinkExt, StreamExt};
use log::{debug, info, warn};

pub use config::BeaconConfig;
pub(crate) use config::distinct;
pub use status::BeaconStatus;

use crate::link::Link;
use crate::live::LiveSlot;
use crate::reader::{self, Barrier, Batch};
use crate::requests::RequestPath;
use crate::tracker::Control;

/// Batches of the beacon outdev's frames waiting for the beacon.
const OUTDEV_QUEUE: usize = 4;

/// What the beacon's helpers report to it.
#[derive(Debug)]
pub(crate) enum Input {
    /// A socket the beacon writes to connected (`true`) or went away.
    Link(BeaconLink, bool),
    /// The QMP session is up; whether the migration is in COLO.
    QmpUp {
        /// The migration is in COLO.
        colo: bool,
    },
    /// The QMP session is gone.
    QmpDown,
    /// An event of the primary QEMU.
    Event(QemuEvent),
}

/// A pipeline's beacon sockets, bound (listening ones) or ready to dial.
pub(crate) struct BeaconLinks {
    /// The beacon's `primary_in`.
    pub(crate) primary_in: Link,
    /// The beacon's `secondary_in`.
    pub(crate) secondary_in: Link,
    /// The beacon's `outdev`.
    pub(crate) outdev: Link,
    /// The primary's QMP monitor.
    pub(crate) qmp: Option<Link>,
}

/// Where the beacon's decisions go.
pub(crate) struct Outlets {
    /// `[pipeline]`, the prefix of the beacon's log lines.
    pub(crate) label: Arc<str>,
    /// The primary input reader's drain barriers: flushes go there.
    pub(crate) barriers: mpsc::UnboundedSender<Barrier>,
    /// The tracker's commands: failover goes there.
    pub(crate) control: mpsc::Sender<Control>,
    /// Where the beacon's state is published.
    pub(crate) live: LiveSlot,
}

/// Serves the beacon until the tracker stops sending checkpoint requests.
pub(crate) async fn run(links: BeaconLinks, requests: mpsc::Receiver<()>, outlets: Outlets) {
    let (input_tx, input_rx) = mpsc::unbounded();
    let (outdev_tx, outdev_rx) = mpsc::channel::<Batch>(OUTDEV_QUEUE);
    let (settle_tx, settle_rx) = mpsc::unbounded();
    let (arm_tx, arm_rx) = mpsc::unbounded();
    let (poke_tx, poke_rx) = mpsc::unbounded();
    let (qmp_tx, qmp_rx) = mpsc::unbounded();
    let BeaconLinks {
        primary_in,
        secondary_in,
        outdev,
        qmp,
    } = links;
    let qmp_input = input_tx.clone();
    let session = async move {
        match qmp {
            Some(link) => session::run(link, qmp_rx, qmp_input).await,
            None => future::pending().await,
        }
    };
    let helpers = future::join4(
        feed::run(primary_in, BeaconLink::PrimaryIn, arm_rx, input_tx.clone()),
        feed::run(secondary_in, BeaconLink::SecondaryIn, poke_rx, input_tx),
        reader::run(outdev, Side::Primary, false, outdev_tx, Some(settle_rx)),
        session,
    );
    let central = Central {
        machine: Beacon::new(session_id()),
        started: Instant::now(),
        arm: arm_tx,
        poke: poke_tx,
        qmp: qmp_tx,
        settle: settle_tx,
        outlets,
        status: BeaconStatus::default(),
    };
    info!(
        "{}: beacon mode: the parked frame marks each checkpoint flush; requests are pokes",
        central.outlets.label
    );
    let _ = select(
        pin!(central.run(requests, input_rx, outdev_rx)),
        pin!(helpers),
    )
    .await;
}

/// Tells this run's frames from those parked by an earlier one.
fn session_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 40)
}

/// The wall clock, as QEMU stamps its events.
fn wall() -> Timestamp {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    Timestamp::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

enum Wake {
    Outdev(Batch),
    Input(Input),
    Request(Option<()>),
}

struct Central {
    machine: Beacon,
    started: Instant,
    arm: mpsc::UnboundedSender<Frame>,
    poke: mpsc::UnboundedSender<Frame>,
    qmp: mpsc::UnboundedSender<()>,
    settle: mpsc::UnboundedSender<Barrier>,
    outlets: Outlets,
    status: BeaconStatus,
}

impl Central {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<()>,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut outdev: mpsc::Receiver<Batch>,
    ) {
        self.publish();
        loop {
            let wake = poll_fn(|cx| {
                if let Poll::Ready(Some(b)) = outdev.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Outdev(b));
                }
                if let Poll::Ready(Some(i)) = inputs.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Input(i));
                }
                if let Poll::Ready(r) = requests.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Request(r));
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Outdev(batch) => self.outdev(batch),
                Wake::Input(input) => self.input(input),
                Wake::Request(Some(())) => self.request(),
                Wake::Request(None) => return,
            }
            self.act().await;
            self.publish();
        }
    }

    fn outdev(&mut self, batch: Batch) {
        for frame in &batch.frames {
            let before = self.machine.counters().clone();
            self.machine.released(&frame.data, wall());
            let after = self.machine.counters();
            let label = &self.outlets.label;
            if after.foreign > before.foreign {
                warn!(
                    "{label}: a {}-byte frame that is no beacon frame came out of the beacon; \
                     ignored (is something else writing to its primary_in?)",
                    frame.len()
                );
            } else if after.stale > before.stale {
                info!(
                    "{label}: a stale beacon frame (parked by an earlier connection or run, or \
                     overdue) came out; no flush"
                );
            }
        }
        if batch.barrier == Some(Barrier::Settled) {
            self.machine.outdev_settled();
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Link(link, true) => {
                self.set_link(link, true);
                self.machine.link_up(link);
            }
            Input::Link(link, false) => {
                self.set_link(link, false);
                self.machine.link_down(link);
            }
            Input::QmpUp { colo } => {
                self.status.qmp = true;
                self.machine.qmp_up(colo);
            }
            Input::QmpDown => {
                self.status.qmp = false;
                self.machine.qmp_down();
            }
            Input::Event(e) => {
                debug!("{}: QMP event {e:?}", self.outlets.label);
                self.machine.qemu_event(e);
            }
        }
    }

    fn set_link(&mut self, link: BeaconLink, up: bool) {
        match link {
            BeaconLink::PrimaryIn => self.status.primary_in = up,
            BeaconLink::SecondaryIn => self.status.secondary_in = up,
        }
    }

    fn request(&mut self) {
        let elapsed = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let label = &self.outlets.label;
        let path = match self.machine.request(Timestamp::from_micros(elapsed)) {
            Request::Poke(frame) => {
                debug!("{label}: checkpoint request: poke written to the beacon");
                let _ = self.poke.unbounded_send(frame);
                RequestPath::Poke
            }
            Request::Qmp => {
                info!("{label}: the beacon is not connected: checkpoint requested over QMP");
                let _ = self.qmp.unbounded_send(());
                RequestPath::Qmp
            }
            Request::Merged => {
                debug!("{label}: checkpoint request merged with the one waiting for its flush");
                RequestPath::Merged
            }
            Request::Unsent => {
                warn!(
                    "{label}: checkpoint request not sent: neither the beacon nor QMP is \
                     connected (or COLO is over)"
                );
                RequestPath::Unsent
            }
        };
        self.outlets.live.count_request(path);
    }

    async fn act(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            let label = &self.outlets.label;
            match action {
                Action::Arm(frame) => {
                    let _ = self.arm.unbounded_send(frame);
                }
                Action::Flush(flush) => {
                    if flush.cause == FlushCause::MissedBeacon {
                        warn!(
                            "{label}: the primary resumed with no beacon frame since its STOP: \
                             flushing at RESUME, late (missed beacon {})",
                            self.machine.counters().missed
                        );
                    }
                    if self
                        .outlets
                        .barriers
                        .unbounded_send(Barrier::Flush(flush))
                        .is_err()
                    {
                        warn!("{label}: the primary reader is gone; flush not made");
                    }
                }
                Action::SettleOutdev => {
                    let _ = self.settle.unbounded_send(Barrier::Settled);
                }
                Action::Failover { reason } => {
                    warn!(
                        "{label}: COLO_EXIT (reason {reason}): the secondary is gone; failing \
                         over"
                    );
                    let (ack, _) = oneshot::channel();
                    if self
                        .outlets
                        .control
                        .send(Control::Failover(ack))
                        .await
                        .is_err()
                    {
                        warn!("{label}: the tracker is gone; failover not made");
                    }
                }
            }
        }
    }

    fn publish(&mut self) {
        let m = &self.machine;
        self.status.armed = m.armed();
        self.status.colo = m.colo();
        self.status.exited = m.failed_over();
        self.status.epoch = m.epoch();
        self.status.counters.clone_from(m.counters());
        self.outlets.live.set_beacon(self.status.clone());
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use colo_core::beacon::{Flush, beacon_frame};
    use colo_core::frame::encode;
    use futures::io::AsyncWriteExt;

    use crate::endpoint::Endpoint;
    use crate::runtime;

    /// The primary reader's drain barrier: every frame written before the barrier was asked
    /// for reaches the tracker before it, however the reads and the barrier interleave.
    #[test]
    fn a_flush_barrier_comes_after_every_frame_already_readable() {
        async_std::task::block_on(async {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("p.sock");
            let link = Link::open(&Endpoint::UnixListen(path.clone()), "[t] primary_in".into())
                .await
                .expect("bind");
            let (tx, mut rx) = mpsc::channel::<Batch>(2);
            let (barriers, barrier_rx) = mpsc::unbounded();
            let reader = runtime::spawn(reader::run(
                link,
                Side::Primary,
                false,
                tx,
                Some(barrier_rx),
            ));
            let barrier = |epoch| {
                Barrier::Flush(Flush {
                    epoch,
                    cause: FlushCause::Beacon,
                })
            };
            // Nobody connected: nothing is readable, the barrier comes back at once.
            barriers.unbounded_send(barrier(0)).expect("reader runs");
            let b = rx.next().await.expect("a batch");
            assert_eq!((b.frames.len(), b.barrier), (0, Some(barrier(0))));
            let mut peer = async_std::os::unix::net::UnixStream::connect(&path)
                .await
                .expect("connect");
            for round in 1..=200u64 {
                let n = 1 + (round % 7) as usize;
                let mut bytes = Vec::new();
                for i in 0..n {
                    encode(&beacon_frame(round, i as u64), false, &mut bytes);
                }
                peer.write_all(&bytes).await.expect("write");
                barriers
                    .unbounded_send(barrier(round))
                    .expect("reader runs");
                let mut before = 0;
                loop {
                    let b = rx.next().await.expect("a batch");
                    before += b.frames.len();
                    if let Some(got) = b.barrier {
                        assert_eq!(got, barrier(round));
                        break;
                    }
                }
                assert_eq!(before, n, "round {round}: frames before the barrier");
            }
            drop(peer);
            reader.stop().await;
        });
    }
}
