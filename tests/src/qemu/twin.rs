//! One scenario fed step by step to QEMU's comparator and to colo-compare, recording after
//! every step what each released and how many checkpoints each requested.
//!
//! QEMU reads its inputs in whatever order poll reports them (spec §11), so every step is
//! finished before the next begins. For QEMU, "finished" is a double round trip of
//! `COLO_USERSPACE_PROXY_INIT` on the controller channel. The frames sent before the first
//! one were in their sockets when it was, so the iothread pass that answers it reads them too,
//! if an earlier pass has not; the second one is answered in a later pass, so by then every
//! release and every `DO_CHECKPOINT` those frames caused has been written. For colo-compare, "finished" is its counters showing the frames
//! received (they are published before the decisions go out), and then exactly as many
//! releases and requests read as the counters say were made.

use std::fmt;
use std::time::Duration;

use colo_actors::Role;
use colo_actors::notify::{
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
};
use colo_core::Frame;

use crate::frames::describe;
use crate::peer::Peer;
use crate::qemu::binary::QemuBinary;
use crate::qemu::comparator::QemuComparator;
use crate::rig::{Mode, Rig, Setup, Transport, WAIT};

/// Pause between the writes of [`Input::PrimaryWrites`], so that the reader sees them apart.
const WRITE_GAP: Duration = Duration::from_millis(1);
/// How long to look for more released frames once a QEMU step has finished (they are
/// already in the socket buffer by then).
const DRAIN: Duration = Duration::from_millis(5);

/// One step of a scenario.
#[derive(Clone, Debug)]
pub enum Input {
    /// A frame from the primary.
    Primary(Frame),
    /// A frame from the secondary.
    Secondary(Frame),
    /// Raw bytes to primary_in in separate writes, holding `frames` whole frames in all.
    PrimaryWrites {
        /// The writes, in order.
        writes: Vec<Vec<u8>>,
        /// How many frames they hold.
        frames: u64,
    },
    /// `COLO_CHECKPOINT` from the controller: flush.
    Checkpoint,
    /// Another controller message, sent as is.
    Message(Vec<u8>),
}

/// What came out after one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Frames released on outdev, in order.
    pub released: Vec<Frame>,
    /// `DO_CHECKPOINT` messages on the notify channel.
    pub checkpoints: usize,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CP, released [", self.checkpoints)?;
        for (i, frame) in self.released.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&describe(frame))?;
        }
        f.write_str("]")
    }
}

/// The observations of a whole scenario, one per step, shown one step per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace(pub Vec<Observed>);

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            writeln!(f, "    step {}: {o}", i + 1)?;
        }
        Ok(())
    }
}

/// Feeds `inputs` to QEMU's colo-compare.
pub async fn run_qemu(bin: &QemuBinary, vnet: bool, inputs: &[Input]) -> Trace {
    let mut q = QemuComparator::start(bin, vnet).await;
    let mut trace = Vec::with_capacity(inputs.len());
    for input in inputs {
        match input {
            Input::Primary(f) => q.primary.send(f).await,
            Input::Secondary(f) => q.secondary.send(f).await,
            Input::PrimaryWrites { writes, .. } => write_apart(&mut q.primary, writes).await,
            Input::Checkpoint => q.notify.send_message(COLO_CHECKPOINT).await,
            Input::Message(m) => q.notify.send_message(m).await,
        }
        let mut checkpoints = 0;
        if matches!(input, Input::Message(m) if m == COLO_USERSPACE_PROXY_INIT) {
            checkpoints += until_init_reply(&mut q.notify).await;
        }
        for _ in 0..2 {
            checkpoints += init_round_trip(&mut q.notify).await;
        }
        let mut released = Vec::new();
        while let Some(f) = q.outdev.recv(DRAIN).await {
            released.push(f);
        }
        assert!(q.running(), "QEMU's colo-compare died\n{}", q.diagnostics());
        trace.push(Observed {
            released,
            checkpoints,
        });
    }
    Trace(trace)
}

/// Feeds `inputs` to colo-compare (in process, default settings, UNIX sockets); `name` names
/// the pipeline.
pub async fn run_ours(name: &str, vnet: bool, inputs: &[Input]) -> Trace {
    let rig = Rig::start(name, Setup::new(Transport::Unix, Mode::DaemonListens, vnet)).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    // Answered once the notify actor has taken the connection: no request can miss it now.
    assert_eq!(init_round_trip(&mut ctl).await, 0);
    let mut sent = [0u64; 2];
    let mut flushes = 0;
    let mut released_seen = 0;
    let mut requests_seen = 0;
    let mut trace = Vec::with_capacity(inputs.len());
    for input in inputs {
        let mut checkpoints = 0;
        match input {
            Input::Primary(f) => {
                p.send(f).await;
                sent[0] += 1;
            }
            Input::Secondary(f) => {
                s.send(f).await;
                sent[1] += 1;
            }
            Input::PrimaryWrites { writes, frames } => {
                write_apart(&mut p, writes).await;
                sent[0] += frames;
            }
            Input::Checkpoint => {
                ctl.send_message(COLO_CHECKPOINT).await;
                flushes += 1;
            }
            Input::Message(m) => {
                ctl.send_message(m).await;
                // The same actor answers in order: once answered, the message was handled.
                if m != COLO_USERSPACE_PROXY_INIT {
                    ctl.send_message(COLO_USERSPACE_PROXY_INIT).await;
                }
                checkpoints += until_init_reply(&mut ctl).await;
            }
        }
        let c = rig
            .wait_until("done with the step", |c| {
                c.received == sent && c.flushes == flushes
            })
            .await;
        let released = usize::try_from(c.released_total() - released_seen).expect("small");
        released_seen = c.released_total();
        let requested = usize::try_from(c.checkpoints_total() - requests_seen).expect("small");
        requests_seen = c.checkpoints_total();
        let released = out.recv_n(released, WAIT).await;
        while checkpoints < requested {
            let m = ctl.recv(WAIT).await.unwrap_or_else(|| {
                panic!("{checkpoints} of {requested} DO_CHECKPOINT arrived within {WAIT:?}")
            });
            assert_eq!(&m.data[..], DO_CHECKPOINT, "only requests are expected now");
            checkpoints += 1;
        }
        trace.push(Observed {
            released,
            checkpoints,
        });
    }
    out.expect_silence(Duration::from_millis(20)).await;
    ctl.expect_silence(Duration::from_millis(20)).await;
    rig.shutdown(Duration::ZERO).await;
    Trace(trace)
}

/// Writes `writes` one by one with a short pause between them.
async fn write_apart(peer: &mut Peer, writes: &[Vec<u8>]) {
    for w in writes {
        peer.send_raw(w).await;
        async_std::task::sleep(WRITE_GAP).await;
    }
}

/// Sends `COLO_USERSPACE_PROXY_INIT` and reads up to its answer; returns the `DO_CHECKPOINT`
/// messages read on the way.
async fn init_round_trip(ctl: &mut Peer) -> usize {
    ctl.send_message(COLO_USERSPACE_PROXY_INIT).await;
    until_init_reply(ctl).await
}

/// Reads up to the next `COLO_COMPARE_GET_XEN_INIT`; returns the `DO_CHECKPOINT` messages
/// read on the way.
async fn until_init_reply(ctl: &mut Peer) -> usize {
    let mut checkpoints = 0;
    loop {
        let m = ctl
            .recv(WAIT)
            .await
            .unwrap_or_else(|| panic!("no COLO_COMPARE_GET_XEN_INIT within {WAIT:?}"));
        match &m.data[..] {
            d if d == COLO_COMPARE_GET_XEN_INIT => return checkpoints,
            d if d == DO_CHECKPOINT => checkpoints += 1,
            d => panic!(
                "unexpected controller message {:?}",
                String::from_utf8_lossy(d)
            ),
        }
    }
}
