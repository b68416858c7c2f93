//! Real QEMU on both sides: a primary and a secondary host QEMU whose `filter-redirector`s
//! are set up exactly as the README's "Running with QEMU" section says, colo-compare between
//! them with the README's configuration, the test playing both guests, the outside world and
//! the COLO controller. Every wiring: TCP and UNIX, QEMU dialling (with reconnect) and QEMU
//! listening, vnet_hdr_support off and on.

use std::time::Duration;

use colo_actors::notify::{COLO_CHECKPOINT, DO_CHECKPOINT};
use colo_core::Frame;
use colo_protocols as _;
use colo_tests::frames::{Net, Tcp, Udp, fill, icmp_echo, tcp, udp};
use colo_tests::qemu::binary;
use colo_tests::qemu::hosts::{QemuRole, Site, Wiring};
use colo_tests::rig::{Transport, WAIT, checkpoints, released};

const GRACE: Duration = Duration::from_secs(1);
const QUIET: Duration = Duration::from_millis(150);
/// Enough to read what is already in a socket's buffer (after waiting [`QUIET`] elsewhere).
const BUFFERED: Duration = Duration::from_millis(5);

/// The primary's frame for step `i` of a mixed stream, and the secondary's: the same
/// transport bytes behind another IP ID and TTL, so that what comes out is provably the
/// primary's. TCP on two flows (one of them segmented differently by the secondary), UDP and
/// ICMP, interleaved.
fn pair(i: u32) -> (Frame, Vec<Frame>) {
    let p = Net::default().with_id(u16::try_from(i).expect("small") + 1);
    let s = Net {
        ttl: 63,
        ..Net::default().with_id(40000 + u16::try_from(i).expect("small"))
    };
    let byte = b'a' + u8::try_from(i % 26).expect("small");
    match i % 4 {
        0 => {
            let seq = 1000 + 100 * (i / 4);
            let seg = Tcp::data(seq, 5000, fill(byte, 100));
            (tcp(&p, &seg), vec![tcp(&s, &seg)])
        }
        1 => {
            let seq = 70000 + 80 * (i / 4);
            let flow = |seq, payload| Tcp {
                src_port: 5003,
                dst_port: 40001,
                ..Tcp::data(seq, 9000, payload)
            };
            let whole = tcp(&p, &flow(seq, fill(byte, 80)));
            let halves = vec![
                tcp(&s, &flow(seq, fill(byte, 40))),
                tcp(&s, &flow(seq + 40, fill(byte, 40))),
            ];
            (whole, halves)
        }
        2 => {
            let d = Udp::payload(fill(byte, 30 + (i as usize % 7)));
            (udp(&p, &d), vec![udp(&s, &d)])
        }
        _ => {
            let seq = u16::try_from(i).expect("small");
            (
                icmp_echo(&p, 7, seq, &fill(byte, 16)),
                vec![icmp_echo(&s, 7, seq, &fill(byte, 16))],
            )
        }
    }
}

/// The primary's frames and the secondary's for steps `range`.
fn stream(range: std::ops::Range<u32>) -> (Vec<Frame>, Vec<Frame>) {
    let mut ps = Vec::new();
    let mut ss = Vec::new();
    for i in range {
        let (p, s) = pair(i);
        ps.push(p);
        ss.extend(s);
    }
    (ps, ss)
}

async fn send(peer: &mut colo_tests::peer::Peer, frames: &[Frame]) {
    peer.send_all(frames).await;
}

/// Reads `expected.len()` frames from the primary host's world side and checks them against
/// `expected`, byte for byte and in order.
async fn expect_world(site: &mut Site, expected: &[Frame], what: &str) {
    let got = site.primary.world.recv_n(expected.len(), WAIT).await;
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(
            g,
            e,
            "[{}] {what}: frame {i} out of the primary host differs:\n  got      {}\n  expected {}",
            site.wiring,
            colo_tests::frames::describe(g),
            colo_tests::frames::describe(e)
        );
    }
}

/// Matching traffic from both guests comes out of the primary host, the primary's bytes,
/// in order; nothing comes out of the secondary host, no checkpoint is requested.
async fn matching_traffic(name: String, wiring: Wiring) {
    let Some(bin) = binary::require(&name) else {
        return;
    };
    let mut site = Site::start(&bin, wiring).await;
    let (ps, ss) = stream(0..40);
    send(&mut site.primary.guest, &ps).await;
    send(&mut site.secondary.guest, &ss).await;
    expect_world(&mut site, &ps, "matching traffic").await;
    site.primary.world.expect_silence(QUIET).await;
    site.secondary.world.expect_silence(BUFFERED).await;
    site.controller.expect_silence(BUFFERED).await;
    let c = site.counters();
    assert_eq!(
        released(&c, "matched"),
        40,
        "every primary frame compared equal"
    );
    assert_eq!(c.checkpoints_total(), 0);
    assert_eq!(c.held[0], 0);
    site.shutdown(GRACE).await;
}

/// A divergence in the middle of a TCP stream: what came before is released, a
/// DO_CHECKPOINT is requested, and nothing behind it leaves until the controller answers
/// COLO_CHECKPOINT; then the held primary segments come out in order and traffic flows again.
async fn divergence(name: String, wiring: Wiring) {
    let Some(bin) = binary::require(&name) else {
        return;
    };
    let mut site = Site::start(&bin, wiring).await;
    let net = Net::default();
    let seg = |seq, byte| tcp(&net, &Tcp::data(seq, 5000, fill(byte, 100)));
    let p = [seg(1000, b'1'), seg(1100, b'A'), seg(1200, b'3')];
    let s = [seg(1000, b'1'), seg(1100, b'B'), seg(1200, b'3')];
    send(&mut site.primary.guest, &p).await;
    site.wait_until("holding the primary", |c| c.received[0] == 3)
        .await;
    send(&mut site.secondary.guest, &s).await;
    expect_world(&mut site, &p[..1], "before the divergence").await;
    let c = site
        .wait_until("all compared", |c| c.received == [3, 3])
        .await;
    assert_eq!(
        c.held[0], 2,
        "the differing segment and the one behind it are held"
    );
    // One request for the mismatch, and one more when the next secondary segment finds the
    // connection still blocked by it (Q19).
    assert_eq!(checkpoints(&c, "mismatch"), 2);
    for _ in 0..2 {
        let request = site.controller.recv(WAIT).await.expect("DO_CHECKPOINT");
        assert_eq!(&request.data[..], DO_CHECKPOINT);
    }
    site.primary.world.expect_silence(QUIET).await;
    site.controller.send_message(COLO_CHECKPOINT).await;
    expect_world(&mut site, &p[1..], "flushed by the checkpoint").await;
    let after = [seg(1300, b'4')];
    send(&mut site.primary.guest, &after).await;
    send(&mut site.secondary.guest, &after).await;
    expect_world(&mut site, &after, "after the checkpoint").await;
    let c = site.counters();
    assert_eq!(released(&c, "checkpoint-flush"), 2);
    assert_eq!(released(&c, "matched"), 2);
    site.primary.world.expect_silence(QUIET).await;
    site.controller.expect_silence(BUFFERED).await;
    site.shutdown(GRACE).await;
}

/// The primary host's QEMU dies while colo-compare holds its packets; the secondary's
/// matching packets arrive meanwhile, so colo-compare releases them with nobody to take
/// them. The restarted QEMU gets every one of them, in order, and traffic goes on.
async fn primary_restart(name: String, wiring: Wiring) {
    let Some(bin) = binary::require(&name) else {
        return;
    };
    let mut site = Site::start(&bin, wiring).await;
    let (p1, s1) = stream(0..4);
    send(&mut site.primary.guest, &p1).await;
    send(&mut site.secondary.guest, &s1).await;
    expect_world(&mut site, &p1, "before the restart").await;
    let (p2, s2) = stream(4..12);
    send(&mut site.primary.guest, &p2).await;
    site.wait_until("holding the primary", |c| c.received[0] == 12)
        .await;
    site.primary.kill();
    site.wait_output("disconnected", |o| !o.connected).await;
    send(&mut site.secondary.guest, &s2).await;
    site.wait_until("released while the primary is down", |c| {
        released(c, "matched") == 12
    })
    .await;
    site.primary.revive().await;
    expect_world(&mut site, &p2, "released while the primary was down").await;
    let (p3, s3) = stream(12..16);
    send(&mut site.primary.guest, &p3).await;
    send(&mut site.secondary.guest, &s3).await;
    expect_world(&mut site, &p3, "after the restart").await;
    site.primary.world.expect_silence(QUIET).await;
    assert_eq!(site.counters().checkpoints_total(), 0);
    site.shutdown(GRACE).await;
}

/// The secondary host's QEMU dies after sending some packets: they still match the primary's
/// that come later, and the restarted secondary's packets are compared as before.
async fn secondary_restart(name: String, wiring: Wiring) {
    let Some(bin) = binary::require(&name) else {
        return;
    };
    let mut site = Site::start(&bin, wiring).await;
    let (p1, s1) = stream(0..4);
    send(&mut site.primary.guest, &p1).await;
    send(&mut site.secondary.guest, &s1).await;
    expect_world(&mut site, &p1, "before the restart").await;
    let (p2, s2) = stream(4..8);
    send(&mut site.secondary.guest, &s2).await;
    let sent = s1.len() + s2.len();
    site.wait_until("holding the secondary", |c| c.received[1] as usize == sent)
        .await;
    site.secondary.kill();
    send(&mut site.primary.guest, &p2).await;
    expect_world(&mut site, &p2, "matched by the dead secondary's packets").await;
    site.secondary.revive().await;
    let (p3, s3) = stream(8..12);
    send(&mut site.primary.guest, &p3).await;
    send(&mut site.secondary.guest, &s3).await;
    expect_world(&mut site, &p3, "after the restart").await;
    site.primary.world.expect_silence(QUIET).await;
    assert_eq!(site.counters().checkpoints_total(), 0);
    site.shutdown(GRACE).await;
}

/// One `#[test]` per wiring for an `async fn scenario(name: String, wiring: Wiring)`.
macro_rules! wirings {
    ($scenario:ident: $($test:ident => $transport:ident, $role:ident, $vnet:expr);+ $(;)?) => {
        mod $scenario {
            use super::*;
            $(
                #[test]
                fn $test() {
                    let wiring = Wiring::new(Transport::$transport, QemuRole::$role, $vnet);
                    let name = format!("{}-{}", stringify!($scenario), wiring);
                    colo_tests::rig::run(super::$scenario(name, wiring));
                }
            )+
        }
    };
    ($scenario:ident: all) => {
        wirings!($scenario:
            tcp_qemu_dials => Tcp, Dials, false;
            tcp_qemu_dials_vnet => Tcp, Dials, true;
            tcp_qemu_listens => Tcp, Listens, false;
            tcp_qemu_listens_vnet => Tcp, Listens, true;
            unix_qemu_dials => Unix, Dials, false;
            unix_qemu_dials_vnet => Unix, Dials, true;
            unix_qemu_listens => Unix, Listens, false;
            unix_qemu_listens_vnet => Unix, Listens, true;
        );
    };
}

wirings!(matching_traffic: all);
wirings!(divergence: all);
wirings!(primary_restart: all);
wirings!(secondary_restart:
    tcp_qemu_dials => Tcp, Dials, false;
    unix_qemu_listens_vnet => Unix, Listens, true;
);
