//! Observe mode and mismatch captures in the running daemon: in observe mode every primary
//! packet goes out at once and no DO_CHECKPOINT is sent, while the would-be checkpoints are
//! counted and logged; with a capture configured each mismatch's two frames land in a pcap
//! file that `tshark` reads, and the checkpoint's log line names it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use colo_actors::{CaptureConfig, Role};
use colo_core::pcap;
use colo_core::{CheckpointReason, ReleaseReason};
use colo_protocols as _;
use colo_tests::frames::{Udp, udp};
use colo_tests::logcap;
use colo_tests::rig::{Rig, TCP_LISTEN, UNIX_CONNECT_VNET, WAIT};
use colo_tests::tool::have;

const GRACE: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(150);

/// Observe mode: the primary is released on arrival, before the secondary has said
/// anything; a mismatch is a would-be checkpoint, never a DO_CHECKPOINT.
#[test]
fn observe_releases_at_once_and_never_requests_a_checkpoint() {
    colo_tests::rig::run(async {
        for (name, setup) in [
            ("observe-tcp", TCP_LISTEN),
            ("observe-unix-vnet", UNIX_CONNECT_VNET),
        ] {
            let rig = Rig::start_with(name, setup, |c| c.observe = true).await;
            let mut p = rig.connect(Role::PrimaryIn).await;
            let mut s = rig.connect(Role::SecondaryIn).await;
            let mut out = rig.connect(Role::Outdev).await;
            let mut ctl = rig.connect(Role::NotifyDev).await;
            let net = setup.net();
            let sent = udp(&net, &Udp::payload(*b"primary says abc"));
            p.send(&sent).await;
            let got = out
                .recv(WAIT)
                .await
                .expect("released before the secondary spoke");
            assert_eq!(got, sent);
            s.send(&udp(&net, &Udp::payload(*b"secondary says x")))
                .await;
            let c = rig
                .wait_until("a would-be mismatch", |c| c.would_checkpoints[0] == 1)
                .await;
            assert_eq!(c.checkpoints_total(), 0);
            ctl.expect_silence(QUIET).await;
            logcap::wait_for(
                &[
                    &format!("[{name}]"),
                    "observe: would request a checkpoint: mismatch",
                ],
                WAIT,
            )
            .await;
            // A matching pair: released at once, counted as a would-be match.
            let same = udp(&net, &Udp::payload(*b"same"));
            p.send(&same).await;
            assert_eq!(out.recv(WAIT).await, Some(same.clone()));
            s.send(&same).await;
            let c = rig
                .wait_until("a would-be match", |c| {
                    c.would_release[ReleaseReason::Matched.index()] == 1
                })
                .await;
            assert_eq!(c.released[ReleaseReason::Observed.index()], 2);
            assert_eq!(c.held, [0, 0]);
            c.check().expect("the observe identity holds");
            // A lonely primary: out at once, and nothing more at shutdown.
            p.send(&udp(&net, &Udp::payload(*b"lonely"))).await;
            out.recv(WAIT).await.expect("lonely released at once");
            rig.wait_until("the copy held", |c| c.held[0] == 1).await;
            let report = rig.shutdown(GRACE).await;
            assert_eq!(report.pipelines[0].released_at_shutdown, 0);
            out.expect_silence(QUIET).await;
        }
    });
}

fn records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("the capture exists");
    pcap::Reader::new(&bytes)
        .expect("a pcap header")
        .map(|r| r.expect("a whole record").data.to_vec())
        .collect()
}

/// A mismatch writes the primary's and the secondary's frames (Ethernet part, even with
/// vnet on) to the capture; the log line of the checkpoint names the file; a full capture
/// counts what it skips and says so once.
#[test]
fn mismatches_are_captured_for_tshark() {
    colo_tests::rig::run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mismatches.pcap");
        let config = CaptureConfig {
            max_mismatches: 1,
            ..CaptureConfig::new(&path)
        };
        let name = "capture-vnet";
        let setup = UNIX_CONNECT_VNET;
        let rig = Rig::start_with(name, setup, move |c| c.capture = Some(config)).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let _out = rig.connect(Role::Outdev).await;
        let _ctl = rig.connect(Role::NotifyDev).await;
        let net = setup.net();
        let primary = udp(&net, &Udp::payload(*b"primary-abc"));
        let secondary = udp(&net, &Udp::payload(*b"secondaryxyz"));
        p.send(&primary).await;
        s.send(&secondary).await;
        let line = logcap::wait_for(
            &[&format!("[{name}]"), "checkpoint requested: mismatch"],
            WAIT,
        )
        .await;
        assert!(
            line.contains(&format!(
                "frames captured to {} (mismatch 1)",
                path.display()
            )),
            "{line}"
        );
        assert_eq!(
            records(&path),
            vec![primary.ethernet().to_vec(), secondary.ethernet().to_vec()]
        );
        if have("tshark") {
            let out = Command::new("tshark")
                .args(["-r"])
                .arg(&path)
                .args(["-T", "fields", "-e", "frame.number", "-e", "udp.payload"])
                .output()
                .expect("tshark runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let rows: Vec<&str> = text.lines().collect();
            assert_eq!(
                rows,
                vec![
                    format!("1\t{}", hex(b"primary-abc")),
                    format!("2\t{}", hex(b"secondaryxyz"))
                ],
                "{text}"
            );
        }
        // The bound: a second mismatch is counted, not written, and said once.
        rig.daemon().checkpoint(name).await.expect("known pipeline");
        p.send(&primary).await;
        s.send(&secondary).await;
        let c = rig
            .wait_until("a second mismatch", |c| {
                c.checkpoints[CheckpointReason::NAMES
                    .iter()
                    .position(|n| *n == "mismatch")
                    .expect("mismatch reason")]
                    == 2
            })
            .await;
        assert_eq!(c.comparators.iter().map(|k| k.mismatched).sum::<u64>(), 2);
        logcap::wait_for(&[&format!("[{name}]"), "is full (1 mismatches"], WAIT).await;
        let snapshot = rig.daemon().handle().snapshot();
        let capture = snapshot[0]
            .capture
            .clone()
            .expect("a capture is configured");
        assert_eq!((capture.written, capture.skipped), (1, 1));
        assert_eq!(records(&path).len(), 2);
        rig.shutdown(GRACE).await;
    });
}
