//! Bad input on real sockets: the daemon stays up and recovers. Spec §11 T30 (any chunking),
//! T31 (zero-length frames, D-IN-1), T32 (oversized length, D-IN-2), T48 (half a length
//! field then a reconnect), and every input peer disconnecting mid-frame.

use std::time::Duration;

use colo_actors::Role;
use colo_core::frame::encode;
use colo_core::{NET_BUFSIZE, Side};
use colo_protocols as _;
use colo_tests::frames::{Tcp, Udp, arp, fill, tcp, udp};
use colo_tests::logcap;
use colo_tests::rig::{Rig, Setup, WAIT, dropped, released};
use colo_tests::setup_tests;

const GRACE: Duration = Duration::from_secs(1);

/// The wire bytes of `frame` in this setup's framing.
fn wire(setup: Setup, frame: &colo_core::Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode(frame, setup.vnet, &mut out);
    out
}

/// T30: a frame fed one byte per write, then three frames in one write: same as normal.
async fn t30(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let seg = Tcp::data(1000, 5000, fill(b'x', 100));
    let pf = tcp(&net, &seg);
    for b in wire(setup, &pf) {
        p.send_raw(&[b]).await;
    }
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    let sf = tcp(&net.with_id(9), &seg);
    for b in wire(setup, &sf) {
        s.send_raw(&[b]).await;
    }
    assert_eq!(out.recv(WAIT).await.expect("P released"), pf);
    let three = [
        udp(&net, &Udp::payload(*b"one")),
        udp(&net.with_id(2), &Udp::payload(*b"two")),
        udp(&net.with_id(3), &Udp::payload(*b"three")),
    ];
    p.send_all(&three).await;
    rig.wait_until("holding three", |c| c.held[0] == 3).await;
    s.send_all(&three).await;
    assert_eq!(out.recv_n(3, WAIT).await, three);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!((released(&c, "matched"), c.checkpoints_total()), (4, 0));
    rig.shutdown(GRACE).await;
}
setup_tests!(t30:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// T31 (stance): a zero-length frame on either input is counted, logged and skipped; the
/// daemon stays up and the frames around it are handled normally.
async fn t31(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let empty = wire(setup, &colo_core::Frame::new(Vec::new()));
    let net = setup.net();
    let pf = udp(&net, &Udp::payload(*b"around"));
    let mut bytes = empty.clone();
    bytes.extend(wire(setup, &pf));
    bytes.extend(&empty);
    p.send_raw(&bytes).await;
    rig.wait_until("P counted", |c| {
        c.received[0] == 1 && c.empty_frames[0] == 2
    })
    .await;
    s.send_raw(&empty).await;
    s.send(&udp(&net.with_id(5), &Udp::payload(*b"around")))
        .await;
    assert_eq!(out.recv(WAIT).await.expect("P released"), pf);
    let c = rig
        .wait_until("done", |c| c.held == [0, 0] && c.empty_frames == [2, 1])
        .await;
    assert_eq!(c.received, [1, 1], "empty frames are not packets");
    logcap::wait_for(&[&name, "primary_in", "zero-length frame skipped"], WAIT).await;
    logcap::wait_for(&[&name, "secondary_in", "zero-length frame skipped"], WAIT).await;
    rig.shutdown(GRACE).await;
}
setup_tests!(t31:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen => colo_tests::rig::UNIX_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// T32 (stance): LEN = 70000 on primary_in closes that connection with a log line naming the
/// input, the length and the limit; the secondary keeps working; a reconnecting primary
/// starts with a fresh decoder and its valid ARP is forwarded.
async fn t32(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let mut bytes = 70000u32.to_be_bytes().to_vec();
    bytes.extend(if setup.vnet { vec![0; 4] } else { vec![] });
    bytes.extend(wire(setup, &arp(&net)));
    p.send_raw(&bytes).await;
    p.expect_closed(WAIT).await;
    let line = logcap::wait_for(
        &[&name, "primary_in", "70000", &NET_BUFSIZE.to_string()],
        WAIT,
    )
    .await;
    assert!(line.contains("closing the connection"), "{line}");
    s.send(&arp(&net)).await;
    let c = rig.wait_until("S counted", |c| c.received[1] == 1).await;
    assert_eq!(dropped(&c, Side::Secondary, "uncompared"), 1);
    assert_eq!(c.received[0], 0, "nothing after the bad length was taken");
    let mut p = rig.connect(Role::PrimaryIn).await;
    let a = arp(&net);
    p.send(&a).await;
    assert_eq!(out.recv(WAIT).await.expect("ARP forwarded"), a);
    rig.shutdown(GRACE).await;
}
setup_tests!(t32:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// T48 (stance): half a length field, disconnect, reconnect, a valid frame: it works,
/// because every connection gets a fresh decoder; the cut frame is logged.
async fn t48(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    p.send_raw(&[0, 0]).await;
    drop(p);
    logcap::wait_for(&[&name, "primary_in", "mid-frame"], WAIT).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let a = arp(&net);
    p.send(&a).await;
    assert_eq!(out.recv(WAIT).await.expect("ARP forwarded"), a);
    let c = rig.wait_until("counted", |c| c.received[0] == 1).await;
    assert_eq!(
        c.empty_frames,
        [0, 0],
        "no phantom frame from the stale half header"
    );
    rig.shutdown(GRACE).await;
}
setup_tests!(t48:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen => colo_tests::rig::UNIX_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// Each input peer vanishes in the middle of a frame (header or data) while a comparison is
/// pending; after both reconnect, the comparison completes.
async fn inputs_reconnect_mid_frame(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let seg = Tcp::data(7000, 1, fill(b'm', 200));
    let pf = tcp(&net, &seg);
    let sf = tcp(&net.with_id(40), &seg);
    let mut p = rig.connect(Role::PrimaryIn).await;
    let cut = wire(setup, &pf);
    p.send_raw(&cut[..cut.len() / 2]).await;
    drop(p);
    let mut s = rig.connect(Role::SecondaryIn).await;
    s.send_raw(&wire(setup, &sf)[..6]).await;
    drop(s);
    logcap::wait_for(&[&name, "primary_in", "mid-frame"], WAIT).await;
    logcap::wait_for(&[&name, "secondary_in", "mid-frame"], WAIT).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    s.send(&sf).await;
    assert_eq!(out.recv(WAIT).await.expect("P released"), pf);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!((c.received, c.checkpoints_total()), ([1, 1], 0));
    rig.shutdown(GRACE).await;
}
setup_tests!(inputs_reconnect_mid_frame: all);
