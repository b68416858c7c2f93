//! What the daemon creates on disk is private to its user: every UNIX socket it listens on
//! (a peer that can connect can inject packets or checkpoint requests) and every mismatch
//! capture (it holds the guests' traffic). The control socket's mode is checked where the
//! program that creates it is tested (`bin/tests/operate.rs`).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use colo_actors::{CaptureConfig, Daemon, Endpoint, PipelineConfig, Role};
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::rig::{Rig, UNIX_LISTEN, WAIT, run};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every listening UNIX endpoint of a pipeline (all four roles) is a socket of mode 0600,
/// and shutdown removes them all.
#[test]
fn every_unix_endpoint_is_private() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |role: Role| dir.path().join(format!("{}.sock", role.name()));
        let ep = |role: Role| Endpoint::UnixListen(path(role));
        let mut config = PipelineConfig::new(
            "private",
            ep(Role::PrimaryIn),
            ep(Role::SecondaryIn),
            ep(Role::Outdev),
        );
        config.notify_dev = Some(ep(Role::NotifyDev));
        let daemon = Daemon::start(vec![config]).await.expect("daemon starts");
        let roles = [
            Role::PrimaryIn,
            Role::SecondaryIn,
            Role::Outdev,
            Role::NotifyDev,
        ];
        for role in roles {
            let p = path(role);
            let meta = std::fs::metadata(&p).expect("the socket exists");
            assert!(meta.file_type().is_socket(), "{role}: not a socket");
            assert_eq!(mode(&p), 0o600, "{role}: mode {:o}", mode(&p));
        }
        daemon.shutdown(Duration::ZERO).await;
        for role in roles {
            assert!(!path(role).exists(), "{role}: left behind at shutdown");
        }
    });
}

/// A mismatch capture holds guest traffic: the file is created with mode 0600.
#[test]
fn mismatch_captures_are_private() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mismatches.pcap");
        let capture = CaptureConfig {
            path: file.clone(),
            max_mismatches: 10,
            max_bytes: 1 << 20,
        };
        let rig = Rig::start_with("capture-private", UNIX_LISTEN, move |c| {
            c.capture = Some(capture);
        })
        .await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let net = Net::default();
        p.send(&udp(&net, &Udp::payload(*b"primary"))).await;
        s.send(&udp(&net, &Udp::payload(*b"secondy"))).await;
        rig.wait_until("the mismatch", |c| c.checkpoints_total() == 1)
            .await;
        let start = std::time::Instant::now();
        while !file.exists() {
            assert!(start.elapsed() < WAIT, "no capture file written");
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(mode(&file), 0o600, "capture mode {:o}", mode(&file));
        rig.shutdown(Duration::ZERO).await;
    });
}
