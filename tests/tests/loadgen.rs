//! The load generator against the real daemon and against the null peer, over loopback: every
//! primary frame must come out exactly once, mismatching pairs must be released by answering
//! the daemon's checkpoint requests, and the null peer must copy the primary stream byte for
//! byte. These are short runs (thousands of pairs); `tests/bench/run.sh` does the long ones.

use std::time::Duration;

// Links the built-in comparators' registrations into this test binary.
use colo_protocols as _;
use colo_tests::loadgen::driver::{self, Length, Peers, RunSpec};
use colo_tests::loadgen::null_peer::{NullPeer, NullPeerSpec};
use colo_tests::loadgen::report::Report;
use colo_tests::loadgen::socket::Addr;
use colo_tests::loadgen::workload::{Proto, Resegment, WorkloadSpec};
use colo_tests::rig::{self, Rig, TCP_LISTEN};

/// The daemon's sockets as the generator dials them.
fn peers_of(rig: &Rig) -> Peers {
    let addr = |role: &str| {
        rig.daemon()
            .local_addrs()
            .into_iter()
            .find(|(_, r, _)| *r == role)
            .map(|(_, _, a)| Addr::Tcp(a.to_string()))
            .unwrap_or_else(|| panic!("the daemon has no {role} socket"))
    };
    Peers {
        primary: addr("primary_in"),
        secondary: addr("secondary_in"),
        output: addr("outdev"),
        notify: Some(addr("notify_dev")),
    }
}

fn spec(pairs: u64) -> RunSpec {
    RunSpec {
        window: 256,
        batch: 16,
        length: Length::Count(pairs),
        drain: Duration::from_secs(5),
        settle: Duration::ZERO,
        patience: Duration::from_secs(2),
        ..RunSpec::default()
    }
}

/// Runs the generator on a blocking thread while the daemon runs on the async runtime.
async fn generate(peers: Peers, workload: WorkloadSpec, spec: RunSpec) -> Report {
    async_std::task::spawn_blocking(move || driver::run(&peers, workload, &spec))
        .await
        .expect("the generator runs")
}

#[test]
fn every_primary_frame_comes_out_of_the_daemon_exactly_once() {
    rig::run(async {
        let rig = Rig::start("loadgen-exact", TCP_LISTEN).await;
        let workload = WorkloadSpec {
            proto: Proto::Mixed,
            size: 300,
            flows: 50,
            resegment: Resegment::Split,
            mismatch: 0.0,
        };
        let report = generate(peers_of(&rig), workload, spec(3000)).await;
        assert!(report.exact(), "{}", report.summary());
        assert_eq!(
            (report.units, report.sent, report.released),
            (3000, 3000, 3000)
        );
        assert_eq!(
            report.frames, 3000,
            "every release is measured in a count run"
        );
        assert_eq!(report.held.len(), 3000);
        assert_eq!(report.checkpoint_requests, 0);
        let c = rig.counters();
        assert_eq!(
            c.received,
            [3000, 3000 + 1500],
            "split TCP doubles the secondary's"
        );
        assert_eq!(rig::released(&c, "matched"), 3000, "{}", rig::summary(&c));
        rig.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn merged_secondary_segments_release_both_primaries() {
    rig::run(async {
        let rig = Rig::start("loadgen-merge", TCP_LISTEN).await;
        let workload = WorkloadSpec {
            proto: Proto::Tcp,
            size: 1400,
            flows: 8,
            resegment: Resegment::Merge,
            mismatch: 0.0,
        };
        let report = generate(peers_of(&rig), workload, spec(500)).await;
        assert!(report.exact(), "{}", report.summary());
        assert_eq!((report.units, report.sent), (500, 1000));
        assert_eq!(rig.counters().received, [1000, 500]);
        rig.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn mismatching_pairs_are_released_by_answering_checkpoint_requests() {
    rig::run(async {
        let rig = Rig::start_with("loadgen-mismatch", TCP_LISTEN, |p| {
            // Primaries whose secondary a flush took before they arrived wait for the timeout.
            p.compare_timeout = 200;
            p.expired_scan_cycle = 50;
        })
        .await;
        let workload = WorkloadSpec {
            mismatch: 0.2,
            flows: 16,
            ..WorkloadSpec::default()
        };
        let report = generate(peers_of(&rig), workload, spec(2000)).await;
        assert!(report.exact(), "{}", report.summary());
        assert_eq!(report.mismatched, 400);
        assert!(report.checkpoint_requests > 0, "{}", report.summary());
        assert!(report.checkpoints > 0);
        let c = rig.counters();
        assert!(rig::checkpoints(&c, "mismatch") > 0);
        assert!(c.flushes > 0, "the COLO_CHECKPOINT answers were obeyed");
        rig.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn primary_only_keeps_every_frame_held() {
    rig::run(async {
        let rig = Rig::start("loadgen-held", TCP_LISTEN).await;
        let run = RunSpec {
            window: 1000,
            drain: Duration::from_millis(300),
            primary_only: true,
            ..spec(400)
        };
        // No controller: nothing answers the timeout's checkpoint request with a flush.
        let peers = Peers {
            notify: None,
            ..peers_of(&rig)
        };
        let report = generate(peers, WorkloadSpec::default(), run).await;
        assert_eq!((report.sent, report.released, report.lost), (400, 0, 400));
        assert!(!report.exact());
        let c = rig
            .wait_until("holding every primary", |c| c.held == [400, 0])
            .await;
        assert_eq!(c.received, [400, 0]);
        // Nobody reads the output any more: the drain's frames are given up quickly.
        rig.shutdown(Duration::from_millis(100)).await;
    });
}

fn null_peer(spec: &NullPeerSpec) -> (Peers, std::thread::JoinHandle<u64>) {
    let peer = NullPeer::bind(spec).expect("bind the null peer");
    let peers = peer.peers().expect("bound addresses");
    let serving = std::thread::spawn(move || peer.serve_one().expect("one session").copied);
    (peers, serving)
}

#[test]
fn the_null_peer_copies_the_primary_stream_over_tcp() {
    let any = || Addr::Tcp("127.0.0.1:0".into());
    let (peers, serving) = null_peer(&NullPeerSpec {
        primary_in: any(),
        secondary_in: any(),
        outdev: any(),
        notify_dev: Some(any()),
    });
    let report = driver::run(&peers, WorkloadSpec::default(), &spec(5000)).expect("run");
    assert!(report.exact(), "{}", report.summary());
    // 5000 frames of 64 bytes, each behind a 4-byte length.
    assert_eq!(serving.join().expect("the null peer ends"), 5000 * 68);
}

#[test]
fn the_null_peer_copies_the_primary_stream_over_unix_sockets() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let at = |name: &str| Addr::Unix(dir.path().join(name));
    let (peers, serving) = null_peer(&NullPeerSpec {
        primary_in: at("p.sock"),
        secondary_in: at("s.sock"),
        outdev: at("o.sock"),
        notify_dev: None,
    });
    let workload = WorkloadSpec {
        proto: Proto::Tcp,
        size: 1400,
        flows: 64,
        ..WorkloadSpec::default()
    };
    let report = driver::run(&peers, workload, &spec(2000)).expect("run");
    assert!(report.exact(), "{}", report.summary());
    assert_eq!(report.bytes, 2000 * 1400);
    assert_eq!(serving.join().expect("the null peer ends"), 2000 * 1404);
}

#[test]
fn a_peer_that_is_not_there_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let nowhere = Addr::Unix(dir.path().join("nobody.sock"));
    let peers = Peers {
        primary: nowhere.clone(),
        secondary: nowhere.clone(),
        output: nowhere,
        notify: None,
    };
    let run = RunSpec {
        patience: Duration::from_millis(50),
        ..spec(1)
    };
    let err = driver::run(&peers, WorkloadSpec::default(), &run).expect_err("nobody listens");
    assert!(
        err.to_string()
            .starts_with("output: cannot connect to unix:"),
        "{err}"
    );
}
