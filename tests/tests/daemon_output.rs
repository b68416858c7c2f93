//! The output side end to end: nothing released is lost and order is kept (D-LOSS-1,
//! D-LOSS-2). Spec §11 T43 (shutdown releases held packets), T44 (output peer away, then
//! back), T45 (2000 segments while the output reader stalls), back-pressure on the inputs
//! while the output is away, and the shutdown grace period.

use std::time::{Duration, Instant};

use colo_actors::Role;
use colo_core::Frame;
use colo_protocols as _;
use colo_tests::frames::{Net, Tcp, Udp, icmp_echo, tcp, udp};
use colo_tests::logcap;
use colo_tests::rig::{Mode, PipeSpec, Rig, Setup, WAIT, released};
use colo_tests::setup_tests;

const GRACE: Duration = Duration::from_secs(1);

/// T43 (stance): packets held at shutdown are all released to the output, in flow creation
/// order, counted; then the output is closed.
async fn t43(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let other = Net {
        addrs: colo_tests::frames::Addrs::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 3],
        },
        ..net.clone()
    };
    let held = [
        udp(&net, &Udp::payload(*b"a1")),
        tcp(&net, &Tcp::data(1000, 5000, *b"segment")),
        udp(&net.with_id(2), &Udp::payload(*b"a2")),
        icmp_echo(&other, 1, 1, b"ping"),
    ];
    p.send_all(&held).await;
    rig.wait_until("holding four", |c| c.held[0] == 4).await;
    let report = rig.shutdown(GRACE).await;
    let r = &report.pipelines[0];
    assert_eq!((r.released_at_shutdown, r.unwritten), (4, 0));
    assert_eq!(released(&r.counters, "shutdown-flush"), 4);
    assert_eq!(r.counters.held, [0, 0]);
    let got = out.recv_n(4, WAIT).await;
    // Flows in creation order (UDP flow, TCP flow, ICMP flow), each queue oldest first.
    assert_eq!(
        got,
        [
            held[0].clone(),
            held[2].clone(),
            held[1].clone(),
            held[3].clone()
        ]
    );
    out.expect_closed(WAIT).await;
    logcap::wait_for(
        &[&name, "4 held primary packets released at shutdown"],
        WAIT,
    )
    .await;
}
setup_tests!(t43:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

fn pair(net: &Net, i: u16) -> (Frame, Frame) {
    let payload = format!("pair {i}").into_bytes();
    (
        udp(&net.with_id(i), &Udp::payload(payload.clone())),
        udp(&net.with_id(1000 + i), &Udp::payload(payload)),
    )
}

/// T44 (stance): the output peer goes away; a matching pair is released meanwhile and kept;
/// when the peer is back it gets that packet first, then the next one.
async fn t44(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    rig.wait_until("started", |_| true).await;
    drop(out);
    logcap::wait_for(&[&name, "outdev", "peer disconnected"], WAIT).await;
    let (p1, s1) = pair(&net, 1);
    p.send(&p1).await;
    s.send(&s1).await;
    rig.wait_until("pair 1 released", |c| released(c, "matched") == 1)
        .await;
    if setup.mode == Mode::DaemonListens {
        let o = rig
            .wait_output("holding pair 1", |o| o.buffered_frames == 1)
            .await;
        assert!(!o.connected);
    }
    let mut out = rig.connect(Role::Outdev).await;
    assert_eq!(out.recv(WAIT).await.expect("pair 1 after the return"), p1);
    let (p2, s2) = pair(&net, 2);
    p.send(&p2).await;
    s.send(&s2).await;
    assert_eq!(out.recv(WAIT).await.expect("pair 2"), p2);
    let report = rig.shutdown(GRACE).await;
    assert_eq!(report.pipelines[0].unwritten, 0);
}
setup_tests!(t44:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// T45 (stance): 2000 matched TCP segments while the output reader stalls for 1.5 s: all of
/// them come out, in order, with a small output buffer forcing back-pressure.
async fn t45(name: String, setup: Setup) {
    const N: u32 = 2000;
    const CHUNK: usize = 100;
    // The two inputs are independent sockets, so the primary may run ahead of the secondary
    // by more than the default queue cap; this scenario is about the output path.
    let rig = Rig::start_with(&name, setup, |c| {
        c.output_buffer = 256 * 1024;
        c.max_queue_size = 4 * N;
    })
    .await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut s = rig.connect(Role::SecondaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let net = setup.net();
    let segs: Vec<(Frame, Frame)> = (0..N)
        .map(|i| {
            let seg = Tcp::data(1000 + i * 1000, 5000, vec![(i % 251) as u8; 1000]);
            let id = u16::try_from(i).expect("small");
            (
                tcp(&net.with_id(id), &seg),
                tcp(&net.with_id(id ^ 0x8000), &seg),
            )
        })
        .collect();
    let primaries: Vec<Frame> = segs.iter().map(|(pf, _)| pf.clone()).collect();
    let sender = async_std::task::spawn(async move {
        for chunk in segs.chunks(CHUNK) {
            let (ps, ss): (Vec<Frame>, Vec<Frame>) = chunk.iter().cloned().unzip();
            p.send_all(&ps).await;
            s.send_all(&ss).await;
        }
        (p, s)
    });
    async_std::task::sleep(Duration::from_millis(1500)).await;
    let got = out.recv_n(N as usize, WAIT).await;
    let _peers = sender.await;
    let first_wrong = got.iter().zip(&primaries).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "output order differs from release order");
    let c = rig
        .wait_until("done", |c| released(c, "matched") == u64::from(N))
        .await;
    assert_eq!(
        (c.held, c.checkpoints_total()),
        ([0, 0], 0),
        "{}",
        colo_tests::rig::summary(&c)
    );
    rig.shutdown(GRACE).await;
}
setup_tests!(t45:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// A non-IP frame of `len` bytes carrying the number `i`: released at once, uncompared.
fn numbered(setup: Setup, i: u32, len: usize) -> Frame {
    let mut eth = vec![0xff; 12];
    eth.extend(0x88b5u16.to_be_bytes());
    eth.extend(i.to_be_bytes());
    eth.resize(len, 0x5a);
    setup.frame(&eth)
}

/// D-LOSS-2: while the output peer is away and the output buffer is full, the daemon stops
/// reading its inputs instead of dropping; when the peer connects, everything comes out in
/// order.
async fn back_pressure(name: String, setup: Setup) {
    assert_eq!(setup.mode, Mode::DaemonListens, "the output must stay away");
    const N: u32 = 4000;
    const LIMIT: u64 = 16 * 1024;
    let rig = Rig::start_with(&name, setup, |c| c.output_buffer = LIMIT).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let frames: Vec<Frame> = (0..N).map(|i| numbered(setup, i, 1000)).collect();
    let to_send = frames.clone();
    let sender = async_std::task::spawn(async move {
        for chunk in to_send.chunks(50) {
            p.send_all(chunk).await;
        }
        p
    });
    // Wait until the daemon stops taking input.
    let mut last = 0;
    let mut since = Instant::now();
    let plateau = loop {
        let got = rig.counters().received[0];
        if got != last {
            last = got;
            since = Instant::now();
        } else if got > 0 && since.elapsed() > Duration::from_millis(200) {
            break got;
        }
        assert!(
            got < u64::from(N),
            "every frame was taken: no back-pressure"
        );
        async_std::task::sleep(Duration::from_millis(5)).await;
    };
    let o = rig.output();
    assert!(!o.connected);
    assert!(
        o.buffered_bytes < LIMIT + 70 * 1024,
        "buffer bounded: {o:?}"
    );
    logcap::wait_for(&[&name, "output buffer full", "inputs paused"], WAIT).await;
    assert!(plateau < u64::from(N));
    let mut out = rig.connect(Role::Outdev).await;
    let got = out.recv_n(N as usize, Duration::from_secs(3)).await;
    let _p = sender.await;
    let first_wrong = got.iter().zip(&frames).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "output order differs from arrival order");
    let c = rig.counters();
    assert_eq!(released(&c, "uncompared"), u64::from(N));
    rig.shutdown(GRACE).await;
}
setup_tests!(back_pressure:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);

/// D-LOSS-1 limits: the output peer never comes back, so shutdown gives up after the grace
/// period and reports (and logs) the frames it could not write.
async fn unwritten_at_shutdown(name: String, setup: Setup) {
    let rig = Rig::start(&name, setup).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let frames: Vec<Frame> = (0..3).map(|i| numbered(setup, i, 64)).collect();
    p.send_all(&frames).await;
    rig.wait_until("released", |c| released(c, "uncompared") == 3)
        .await;
    let start = Instant::now();
    let report = rig.shutdown(Duration::from_millis(200)).await;
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(report.pipelines[0].unwritten, 3);
    logcap::wait_for(&[&name, "did not take 3 released frames"], WAIT).await;
}
setup_tests!(unwritten_at_shutdown:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);

/// Shutdown waits for an output peer that comes back within the grace period.
async fn output_returns_during_grace(name: String, setup: Setup) {
    let rig = Rig::start_many(vec![PipeSpec::new(&name, setup)]).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let frames: Vec<Frame> = (0..3).map(|i| numbered(setup, i, 64)).collect();
    p.send_all(&frames).await;
    rig.wait_until("released", |c| released(c, "uncompared") == 3)
        .await;
    let mut out = rig.connect(Role::Outdev).await;
    let shutdown = async_std::task::spawn(async move { rig.shutdown(GRACE).await });
    assert_eq!(out.recv_n(3, WAIT).await, frames);
    let report = shutdown.await;
    assert_eq!(report.pipelines[0].unwritten, 0);
}
setup_tests!(output_returns_during_grace:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_listen => colo_tests::rig::UNIX_LISTEN,
);

/// The number carried by a frame made by [`numbered`].
fn number(frame: &Frame) -> u32 {
    let eth = frame.ethernet();
    u32::from_be_bytes(eth[14..18].try_into().expect("a numbered frame"))
}

/// The output peer vanishes after reading half a frame while released frames are flowing.
/// The next peer's stream starts at a frame boundary and carries every later frame, in
/// order, without a gap, through the last one released. (Frames the kernel had already
/// taken for the old peer went with it: the daemon cannot know they were never read.)
async fn output_reconnects_mid_frame(name: String, setup: Setup) {
    const N: u32 = 3000;
    let rig = Rig::start_with(&name, setup, |c| c.output_buffer = 64 * 1024).await;
    let mut p = rig.connect(Role::PrimaryIn).await;
    let mut out = rig.connect(Role::Outdev).await;
    let frames: Vec<Frame> = (0..N).map(|i| numbered(setup, i, 1000)).collect();
    let to_send = frames.clone();
    let sender = async_std::task::spawn(async move {
        for chunk in to_send.chunks(50) {
            p.send_all(chunk).await;
        }
        p
    });
    out.recv_raw(1500, WAIT).await;
    drop(out);
    logcap::wait_for(&[&name, "outdev", "released frames are buffered"], WAIT).await;
    let mut out = rig.connect(Role::Outdev).await;
    let first = out.recv(WAIT).await.expect("frames after the return");
    // A write cut short by the disconnect is repeated whole, so the new peer may get again
    // some frames the old one had read; it never gets a partial frame or a gap.
    let start = number(&first);
    let rest = out
        .recv_n((N - 1 - start) as usize, Duration::from_secs(3))
        .await;
    let _p = sender.await;
    assert_eq!(first, frames[start as usize]);
    let first_wrong = rest
        .iter()
        .zip(&frames[start as usize + 1..])
        .position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "a gap or reordering after the reconnect");
    out.expect_silence(Duration::from_millis(50)).await;
    let c = rig.counters();
    assert_eq!(released(&c, "uncompared"), u64::from(N));
    rig.shutdown(GRACE).await;
}
setup_tests!(output_reconnects_mid_frame:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    tcp_connect_vnet => colo_tests::rig::TCP_CONNECT_VNET,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);
