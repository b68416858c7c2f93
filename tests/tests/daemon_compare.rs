//! The daemon compares and releases over real sockets: spec §11 T01, T03, T06, T18, T21, T28,
//! T29 end to end, the test playing primary, secondary, output peer and controller, over TCP
//! and UNIX sockets, the daemon listening or dialling, vnet on and off.

use std::time::Duration;

use colo_actors::Role;
use colo_actors::notify::{COLO_CHECKPOINT, DO_CHECKPOINT};
use colo_core::Side;
use colo_protocols as _;
use colo_tests::frames::{Net, Tcp, Udp, arp, fill, tcp, udp};
use colo_tests::rig::{Rig, Setup, WAIT, checkpoints, dropped, released};
use colo_tests::setup_tests;

const GRACE: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(100);

/// T01: P(1000,100,5000) then an identical S (but for the IP ID): P released once, no CP.
async fn t01(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let net = setup.net();
    let seg = Tcp::data(1000, 5000, fill(b'A', 100));
    let pf = tcp(&net, &seg);
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    out.expect_silence(Duration::from_millis(20)).await;
    s.send(&tcp(&net.with_id(77), &seg)).await;
    let got = out.recv(WAIT).await.expect("P released");
    assert_eq!(got, pf, "the primary's bytes and VNET_LEN, unmodified");
    let c = rig
        .wait_until("done", |c| c.held == [0, 0] && released(c, "matched") == 1)
        .await;
    assert_eq!(c.checkpoints_total(), 0);
    ctl.expect_silence(QUIET).await;
    out.expect_silence(Duration::from_millis(20)).await;
    let report = rig.shutdown(GRACE).await;
    assert_eq!(report.pipelines[0].released_at_shutdown, 0);
    assert_eq!(report.pipelines[0].counters.released_total(), 1);
}
setup_tests!(t01: all);

/// T03: different payloads: nothing out, one DO_CHECKPOINT at once; then COLO_CHECKPOINT
/// flushes: P out, S gone.
async fn t03(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let net = setup.net();
    let pf = tcp(&net, &Tcp::data(1000, 5000, fill(b'A', 100)));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    s.send(&tcp(&net, &Tcp::data(1000, 5000, fill(b'B', 100))))
        .await;
    let request = ctl.recv(WAIT).await.expect("DO_CHECKPOINT");
    assert_eq!(&request.data[..], DO_CHECKPOINT);
    assert_eq!(request.vnet_len, 0);
    ctl.expect_silence(QUIET).await;
    out.expect_silence(Duration::from_millis(10)).await;
    let c = rig.counters();
    assert_eq!(checkpoints(&c, "mismatch"), 1);
    assert_eq!(c.held, [1, 1]);
    ctl.send_message(COLO_CHECKPOINT).await;
    assert_eq!(out.recv(WAIT).await.expect("P flushed"), pf);
    let c = rig
        .wait_until("flushed", |c| c.held == [0, 0] && c.flushes == 1)
        .await;
    assert_eq!(released(&c, "checkpoint-flush"), 1);
    assert_eq!(dropped(&c, Side::Secondary, "checkpoint-flush"), 1);
    assert_eq!(c.checkpoints_total(), 1);
    rig.shutdown(GRACE).await;
}
setup_tests!(t03: all);

/// T06: P(1000,100) against S(1000,50) + S(1050,50), equal ACKs: nothing after the first S,
/// P out after the second, no CP.
async fn t06(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let payload: Vec<u8> = (0..100u8).collect();
    let pf = tcp(&net, &Tcp::data(1000, 5000, payload.clone()));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    s.send(&tcp(&net, &Tcp::data(1000, 5000, payload[..50].to_vec())))
        .await;
    rig.wait_until("holding the first S", |c| c.received[1] == 1)
        .await;
    out.expect_silence(QUIET).await;
    s.send(&tcp(&net, &Tcp::data(1050, 5000, payload[50..].to_vec())))
        .await;
    assert_eq!(out.recv(WAIT).await.expect("P released"), pf);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!(c.checkpoints_total(), 0);
    assert_eq!(released(&c, "matched"), 1);
    rig.shutdown(GRACE).await;
}
setup_tests!(t06:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// T18: U("abc") against U("abc") with another IP ID and TTL: released, no CP.
async fn t18(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let pf = udp(&net, &Udp::payload(*b"abc"));
    p.send(&pf).await;
    rig.wait_until("holding P", |c| c.held[0] == 1).await;
    let other = Net {
        ttl: 63,
        ..net.with_id(999)
    };
    s.send(&udp(&other, &Udp::payload(*b"abc"))).await;
    assert_eq!(out.recv(WAIT).await.expect("P released"), pf);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!(c.checkpoints_total(), 0);
    rig.shutdown(GRACE).await;
}
setup_tests!(t18:
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);

/// T21 (FIFO stance, D-ORDER-1): P U1, U2, then S U1: U1 out, no CP; then S U2: U2 out.
async fn t21(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let net = setup.net();
    let u1 = udp(&net, &Udp::payload(*b"first"));
    let u2 = udp(&net.with_id(2), &Udp::payload(*b"second"));
    p.send_all(&[u1.clone(), u2.clone()]).await;
    rig.wait_until("holding both", |c| c.held[0] == 2).await;
    s.send(&udp(&net.with_id(50), &Udp::payload(*b"first")))
        .await;
    assert_eq!(out.recv(WAIT).await.expect("U1 released"), u1);
    out.expect_silence(QUIET).await;
    s.send(&udp(&net.with_id(51), &Udp::payload(*b"second")))
        .await;
    assert_eq!(out.recv(WAIT).await.expect("U2 released"), u2);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!(c.checkpoints_total(), 0);
    ctl.expect_silence(Duration::from_millis(20)).await;
    rig.shutdown(GRACE).await;
}
setup_tests!(t21:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// T28 with our stance (D-L3-1): P ARP, a 10-byte and a 17-byte frame go out at once, in
/// arrival order, never queued; IPv6 and 802.1Q-tagged IPv4 are compared (held until S).
async fn t28(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let uncompared = [
        arp(&net),
        setup.frame(&[0xa5; 10]),
        setup.frame(&fill(0x17, 17)),
    ];
    p.send_all(&uncompared).await;
    assert_eq!(out.recv_n(3, WAIT).await, uncompared);
    let c = rig.wait_until("counted", |c| c.received[0] == 3).await;
    assert_eq!(released(&c, "uncompared"), 3);
    assert_eq!(c.held, [0, 0]);
    let v6 = Net {
        vnet: net.vnet.clone(),
        ..Net::v6()
    };
    let tagged = Net {
        vnet: net.vnet.clone(),
        ..Net::vlan(7)
    };
    let compared = [
        udp(&v6, &Udp::payload(*b"six")),
        udp(&tagged, &Udp::payload(*b"tagged")),
    ];
    p.send_all(&compared).await;
    rig.wait_until("holding v6 and tagged", |c| c.held[0] == 2)
        .await;
    out.expect_silence(QUIET).await;
    s.send_all(&compared).await;
    assert_eq!(out.recv_n(2, WAIT).await, compared);
    let c = rig.wait_until("done", |c| c.held == [0, 0]).await;
    assert_eq!(released(&c, "matched"), 2);
    assert_eq!(c.checkpoints_total(), 0);
    rig.shutdown(GRACE).await;
}
setup_tests!(t28:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// T29: S ARP is dropped, nothing out, no CP; S IPv6 is compared, so it waits (D-L3-1).
async fn t29(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let mut ctl = rig.connect(Role::NotifyDev).await;
    let net = setup.net();
    s.send(&arp(&net)).await;
    let c = rig.wait_until("counted", |c| c.received[1] == 1).await;
    assert_eq!(dropped(&c, Side::Secondary, "uncompared"), 1);
    let v6 = Net {
        vnet: net.vnet.clone(),
        ..Net::v6()
    };
    s.send(&udp(&v6, &Udp::payload(*b"six"))).await;
    let c = rig.wait_until("holding S v6", |c| c.held[1] == 1).await;
    assert_eq!(c.checkpoints_total(), 0);
    out.expect_silence(QUIET).await;
    ctl.expect_silence(Duration::from_millis(10)).await;
    let report = rig.shutdown(GRACE).await;
    let c = &report.pipelines[0].counters;
    assert_eq!(dropped(c, Side::Secondary, "shutdown-flush"), 1);
}
setup_tests!(t29:
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen => colo_tests::rig::UNIX_LISTEN,
);
