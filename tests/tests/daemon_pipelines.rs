//! The daemon as a whole: several pipelines in one daemon, failover, start-up errors and
//! UNIX socket hygiene.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use colo_actors::notify::{COLO_CHECKPOINT, DO_CHECKPOINT};
use colo_actors::{Daemon, Endpoint, PipelineConfig, Role, StartError};
use colo_core::Side;
use colo_protocols as _;
use colo_tests::frames::{Tcp, Udp, arp, fill, tcp, udp};
use colo_tests::rig::{
    PipeSpec, Rig, TCP_CONNECT, TCP_LISTEN, UNIX_CONNECT_VNET, UNIX_LISTEN, WAIT, checkpoints,
    dropped, released, run,
};

const GRACE: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(100);

/// Three pipelines with different wiring run side by side, each with its own sockets,
/// settings and counters: a match on one, a mismatch and flush on another, a held packet
/// on the third, and the shutdown report covers all three in order.
#[test]
fn several_pipelines_in_one_daemon() {
    run(async {
        let rig = Rig::start_many(vec![
            PipeSpec::new("multi-a", TCP_LISTEN),
            PipeSpec::new("multi-b", UNIX_CONNECT_VNET),
            PipeSpec::new("multi-c", TCP_CONNECT).tweak(|c| c.compare_timeout = 60_000),
        ])
        .await;
        let mut ends = Vec::new();
        for name in ["multi-a", "multi-b", "multi-c"] {
            ends.push((
                rig.connect_to(name, Role::PrimaryIn).await,
                rig.connect_to(name, Role::SecondaryIn).await,
                rig.connect_to(name, Role::Outdev).await,
                rig.connect_to(name, Role::NotifyDev).await,
            ));
        }
        let [a, b, c]: [_; 3] = ends.try_into().ok().expect("three pipelines");

        // a: a match.
        let (mut p, mut s, mut out, mut ctl) = a;
        let net = TCP_LISTEN.net();
        let seg = Tcp::data(1000, 5000, fill(b'a', 100));
        let pf = tcp(&net, &seg);
        p.send(&pf).await;
        rig.wait_until_in("multi-a", "holding", |c| c.held[0] == 1)
            .await;
        s.send(&tcp(&net.with_id(3), &seg)).await;
        assert_eq!(out.recv(WAIT).await.expect("a released"), pf);
        ctl.expect_silence(QUIET).await;

        // b: a mismatch, DO_CHECKPOINT on b's channel only, then b's flush.
        let (mut bp, mut bs, mut bout, mut bctl) = b;
        let bnet = UNIX_CONNECT_VNET.net();
        let bpf = udp(&bnet, &Udp::payload(*b"abc"));
        bp.send(&bpf).await;
        rig.wait_until_in("multi-b", "holding", |c| c.held[0] == 1)
            .await;
        bs.send(&udp(&bnet, &Udp::payload(*b"abd"))).await;
        assert_eq!(
            &bctl.recv(WAIT).await.expect("b's request").data[..],
            DO_CHECKPOINT
        );
        bctl.send_message(COLO_CHECKPOINT).await;
        assert_eq!(bout.recv(WAIT).await.expect("b flushed"), bpf);

        // c: held until shutdown.
        let (mut cp, _cs, mut cout, mut cctl) = c;
        let cpf = udp(&TCP_CONNECT.net(), &Udp::payload(*b"wait"));
        cp.send(&cpf).await;
        rig.wait_until_in("multi-c", "holding", |c| c.held[0] == 1)
            .await;
        cctl.expect_silence(Duration::from_millis(10)).await;
        out.expect_silence(Duration::from_millis(10)).await;

        let ca = rig.counters_of("multi-a");
        let cb = rig.counters_of("multi-b");
        let cc = rig.counters_of("multi-c");
        assert_eq!((released(&ca, "matched"), ca.checkpoints_total()), (1, 0));
        assert_eq!((checkpoints(&cb, "mismatch"), cb.flushes), (1, 1));
        assert_eq!((cc.received, cc.held), ([1, 0], [1, 0]));

        let report = rig.shutdown(GRACE).await;
        let names: Vec<_> = report.pipelines.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["multi-a", "multi-b", "multi-c"]);
        let released_at: Vec<_> = report
            .pipelines
            .iter()
            .map(|p| p.released_at_shutdown)
            .collect();
        assert_eq!(released_at, [0, 0, 1]);
        assert_eq!(cout.recv(WAIT).await.expect("c drained"), cpf);
    });
}

/// Failover releases everything held, then passes the primary straight through and drops
/// the secondary; an unknown pipeline is an error.
#[test]
fn failover_passes_the_primary_through() {
    run(async {
        let rig = Rig::start("failover", UNIX_LISTEN).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let mut out = rig.connect(Role::Outdev).await;
        let net = UNIX_LISTEN.net();
        let held = udp(&net, &Udp::payload(*b"held"));
        p.send(&held).await;
        rig.wait_until("holding", |c| c.held[0] == 1).await;
        rig.daemon()
            .failover("failover")
            .await
            .expect("known pipeline");
        assert_eq!(out.recv(WAIT).await.expect("released by failover"), held);
        let after = udp(&net.with_id(9), &Udp::payload(*b"after"));
        p.send(&after).await;
        assert_eq!(out.recv(WAIT).await.expect("passed through"), after);
        s.send(&arp(&net)).await;
        let c = rig.wait_until("S counted", |c| c.received[1] == 1).await;
        assert_eq!(released(&c, "failover"), 2);
        assert_eq!(dropped(&c, Side::Secondary, "failover"), 1);
        assert!(
            rig.daemon().failover("nope").await.is_err(),
            "unknown pipeline"
        );
        rig.shutdown(GRACE).await;
    });
}

fn config(name: &str, dir: &Path, primary_in: Endpoint) -> PipelineConfig {
    PipelineConfig::new(
        name,
        primary_in,
        Endpoint::UnixConnect(dir.join("s.sock")),
        Endpoint::UnixConnect(dir.join("o.sock")),
    )
}

async fn start_err(configs: Vec<PipelineConfig>) -> StartError {
    match Daemon::start(configs).await {
        Ok(_) => panic!("the daemon started"),
        Err(e) => e,
    }
}

/// A TCP port already taken is a start error naming the pipeline, the socket and the
/// endpoint.
#[test]
fn address_in_use_is_a_start_error() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("address");
        let mut c = config(
            "busy",
            dir.path(),
            Endpoint::TcpListen("127.0.0.1:0".into()),
        );
        c.secondary_in = Endpoint::TcpListen(addr.to_string());
        let err = start_err(vec![c]).await;
        assert!(
            matches!(
                &err,
                StartError::Bind {
                    role: "secondary_in",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "pipeline \"busy\": cannot listen on secondary_in tcp-listen:{addr}: "
            )),
            "{text}"
        );
    });
}

/// Configuration mistakes are refused at start with the pipeline and field named.
#[test]
fn invalid_pipelines_are_refused() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = || Endpoint::UnixConnect(dir.path().join("p.sock"));
        assert!(matches!(start_err(vec![]).await, StartError::NoPipelines));
        let twice = start_err(vec![
            config("same", dir.path(), p()),
            config("same", dir.path(), p()),
        ])
        .await;
        assert_eq!(twice.to_string(), "two pipelines are named \"same\"");
        let mut zero = config("zero", dir.path(), p());
        zero.compare_timeout = 0;
        assert_eq!(
            start_err(vec![zero]).await.to_string(),
            "pipeline \"zero\": compare_timeout: must be positive"
        );
        let mut unknown = config("cmp", dir.path(), p());
        unknown
            .comparators
            .disabled
            .push("no-such-comparator".into());
        let text = start_err(vec![unknown]).await.to_string();
        assert!(
            text.starts_with("pipeline \"cmp\": unknown comparator \"no-such-comparator\""),
            "{text}"
        );
    });
}

/// A UNIX listening socket: a stale socket file is replaced, the new socket is private
/// (0600), and shutdown removes it. A live listener or a file that is not a socket is never
/// deleted: both are start errors.
#[test]
fn unix_socket_hygiene() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
        assert!(path.exists(), "a dead listener leaves its file");
        let daemon = Daemon::start(vec![config(
            "hygiene",
            dir.path(),
            Endpoint::UnixListen(path.clone()),
        )])
        .await
        .expect("a stale socket file is replaced");
        let meta = std::fs::metadata(&path).expect("socket exists");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let live = start_err(vec![config(
            "second",
            dir.path(),
            Endpoint::UnixListen(path.clone()),
        )])
        .await;
        assert!(
            live.to_string().contains("another process is listening"),
            "{live}"
        );
        daemon.shutdown(Duration::ZERO).await;
        assert!(!path.exists(), "shutdown removes the socket file");

        let file = dir.path().join("plain");
        std::fs::write(&file, b"keep me").expect("a regular file");
        let err = start_err(vec![config(
            "plain",
            dir.path(),
            Endpoint::UnixListen(file.clone()),
        )])
        .await;
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
    });
}
