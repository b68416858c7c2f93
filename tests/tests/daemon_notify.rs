//! The notify channel end to end (§2.4): DO_CHECKPOINT out, COLO_CHECKPOINT and
//! COLO_USERSPACE_PROXY_INIT in, the vnet asymmetry (T35), unsupported instructions (T41),
//! timeout-driven requests, and the controller reconnecting mid-frame.

use std::time::Duration;

use colo_actors::Role;
use colo_actors::notify::{
    COLO_CHECKPOINT, COLO_COMPARE_GET_XEN_INIT, COLO_USERSPACE_PROXY_INIT, DO_CHECKPOINT,
};
use colo_protocols as _;
use colo_tests::frames::{Udp, udp};
use colo_tests::logcap;
use colo_tests::rig::{Rig, Setup, WAIT, checkpoints, released};
use colo_tests::setup_tests;

const GRACE: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(100);

/// Frames `message` as the daemon must: LEN, no VNET_LEN field whatever the vnet setting.
fn wire(message: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(message.len())
        .expect("short message")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(message);
    out
}

/// T40: COLO_USERSPACE_PROXY_INIT is answered with COLO_COMPARE_GET_XEN_INIT, framed without
/// the vnet field; a checkpoint request is DO_CHECKPOINT, framed the same way (Q15).
async fn t40(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let _out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    ctl.send_message(COLO_USERSPACE_PROXY_INIT).await;
    let reply = ctl.recv_raw(29, WAIT).await;
    assert_eq!(reply, wire(COLO_COMPARE_GET_XEN_INIT));
    let net = setup.net();
    p.send(&udp(&net, &Udp::payload(*b"abc"))).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    s.send(&udp(&net, &Udp::payload(*b"abd"))).await;
    let request = ctl.recv_raw(17, WAIT).await;
    assert_eq!(request, wire(DO_CHECKPOINT));
    assert_eq!(checkpoints(&rig.counters(), "mismatch"), 1);
    let report = rig.shutdown(GRACE).await;
    assert_eq!(report.pipelines[0].released_at_shutdown, 1);
    assert_eq!(report.pipelines[0].unwritten, 0);
}
setup_tests!(t40: all);

/// T41: an unknown instruction is logged as unsupported and changes nothing; the channel's
/// framing is intact, so a COLO_CHECKPOINT after it still flushes.
async fn t41(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let pf = udp(&setup.net(), &Udp::payload(*b"held"));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    ctl.send_message(b"BOGUS").await;
    // Exact matching: a trailing NUL makes a known message unsupported too.
    ctl.send_message(b"COLO_CHECKPOINT\0").await;
    let line = logcap::wait_for(&[&name, "unsupported instruction", "BOGUS"], WAIT).await;
    assert!(line.starts_with("WARN"), "{line}");
    logcap::wait_for(
        &[&name, "unsupported instruction", "COLO_CHECKPOINT\\x00"],
        WAIT,
    )
    .await;
    out.expect_silence(QUIET).await;
    let c = rig.counters();
    assert_eq!((c.held, c.flushes), ([1, 0], 0));
    ctl.send_message(COLO_CHECKPOINT).await;
    assert_eq!(out.recv(WAIT).await.expect("flushed"), pf);
    rig.wait_until("flushed", |c| c.flushes == 1 && c.held == [0, 0])
        .await;
    rig.shutdown(GRACE).await;
}
setup_tests!(t41:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// T35: with vnet on, a COLO_CHECKPOINT without the VNET_LEN field is not recognised (no
/// flush); after the controller reconnects (fresh decoder), one with the field flushes.
async fn t35(name: String, setup: Setup) {
    assert!(setup.vnet);
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let pf = udp(&setup.net(), &Udp::payload(*b"held"));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    ctl.send_raw(&wire(COLO_CHECKPOINT)).await;
    out.expect_silence(QUIET).await;
    assert_eq!(rig.counters().flushes, 0);
    drop(ctl);
    let mut ctl = rig.connect(Role::NotifyDev).await;
    ctl.send_message(COLO_CHECKPOINT).await;
    assert_eq!(out.recv(WAIT).await.expect("flushed"), pf);
    let c = rig.wait_until("flushed", |c| c.flushes == 1).await;
    assert_eq!(released(&c, "checkpoint-flush"), 1);
    rig.shutdown(GRACE).await;
}
setup_tests!(t35:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// A packet nobody matches raises timeout requests (one per scan) until a flush, logged at
/// info with the reason.
async fn timeout_requests(name: String, setup: Setup) {
    let rig = Rig::start_with(&name, setup, |c| {
        c.compare_timeout = 100;
        c.expired_scan_cycle = 50;
    })
    .await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let pf = udp(&setup.net(), &Udp::payload(*b"lonely"));
    p.send(&pf).await;
    for _ in 0..2 {
        let request = ctl.recv(WAIT).await.expect("DO_CHECKPOINT on timeout");
        assert_eq!(&request.data[..], DO_CHECKPOINT);
    }
    let line = logcap::wait_for(&[&name, "checkpoint requested: timeout"], WAIT).await;
    assert!(line.starts_with("INFO"), "{line}");
    assert!(checkpoints(&rig.counters(), "timeout") >= 2);
    ctl.send_message(COLO_CHECKPOINT).await;
    assert_eq!(out.recv(WAIT).await.expect("flushed"), pf);
    rig.wait_until("flushed", |c| c.held == [0, 0]).await;
    rig.shutdown(GRACE).await;
}
setup_tests!(timeout_requests:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// The controller vanishes halfway through a COLO_CHECKPOINT frame; its next connection
/// starts clean and its COLO_CHECKPOINT flushes.
async fn controller_reconnects_mid_frame(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let pf = udp(&setup.net(), &Udp::payload(*b"held"));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    let whole = {
        let mut w = wire(COLO_CHECKPOINT);
        if setup.vnet {
            w.splice(4..4, [0u8; 4]);
        }
        w
    };
    ctl.send_raw(&whole[..9]).await;
    drop(ctl);
    logcap::wait_for(&[&name, "notify_dev", "mid-frame"], WAIT).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    ctl.send_raw(&whole).await;
    assert_eq!(out.recv(WAIT).await.expect("flushed"), pf);
    assert_eq!(
        rig.wait_until("flushed", |c| c.flushes == 1).await.held,
        [0, 0]
    );
    rig.shutdown(GRACE).await;
}
setup_tests!(controller_reconnects_mid_frame:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// `Daemon::checkpoint` flushes like COLO_CHECKPOINT and returns once it is done; an unknown
/// pipeline is an error.
async fn checkpoint_command(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let frames = [
        udp(&net, &Udp::payload(*b"one")),
        udp(&net.with_id(2), &Udp::payload(*b"two")),
    ];
    p.send_all(&frames).await;
    rig.wait_until("holding both", |c| c.held[0] == 2).await;
    rig.daemon()
        .checkpoint(&name)
        .await
        .expect("known pipeline");
    let c = rig.counters();
    assert_eq!((c.flushes, c.held), (1, [0, 0]));
    assert_eq!(out.recv_n(2, WAIT).await, frames, "flushed oldest first");
    let err = rig
        .daemon()
        .checkpoint("no-such-pipeline")
        .await
        .expect_err("unknown pipeline");
    assert_eq!(err.to_string(), "no pipeline named \"no-such-pipeline\"");
    rig.shutdown(GRACE).await;
}
setup_tests!(checkpoint_command:
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);
