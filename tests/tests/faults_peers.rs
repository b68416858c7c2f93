//! Fault injection over real sockets, under steady load: every peer (primary, secondary,
//! output, controller) is cut off mid-frame and comes back, repeatedly, while both inputs keep
//! sending; the output peer stalls for seconds; the controller is gone while checkpoints are
//! requested. After each: the daemon is up, the counters add up at every moment
//! (`received = released + dropped + held`), every primary frame comes out exactly once and
//! per TCP flow in order, and no primary packet is dropped (no drop reason but the budget's
//! exists for the primary, and the budget is far away here).
//!
//! The single-event versions (one reconnect mid-frame, the output away once, T31/T32/T48) are
//! in `daemon_robustness.rs`, `daemon_output.rs` and `daemon_notify.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use colo_actors::Role;
use colo_core::frame::encode_parts;
use colo_core::{Counters, Side};
use colo_protocols as _;
use colo_tests::logcap;
use colo_tests::rig::{Rig, Setup, dropped, released, summary};
use colo_tests::setup_tests;
use colo_tests::steady::{
    Label, Output, Pace, Received, Traffic, check_connection, check_exactly_once, collect,
    last_segments, send, watch_identity,
};

const GRACE: Duration = Duration::from_secs(2);
/// How long a test waits for all of its traffic to come out.
const DRAIN: Duration = Duration::from_secs(15);

/// No primary packet was dropped, and the secondary lost nothing to the budget.
fn assert_nothing_lost(c: &Counters) {
    assert_eq!(
        c.dropped_total(Side::Primary),
        0,
        "primary drops: {}",
        summary(c)
    );
    assert_eq!(
        dropped(c, Side::Secondary, "over-budget"),
        0,
        "{}",
        summary(c)
    );
    if let Err(e) = c.check() {
        panic!("counters do not add up: {e}; {}", summary(c));
    }
}

/// Runs both senders, the output reader and the identity watch together; returns what the
/// output carried and how many connections each sender used.
async fn run_load(
    rig: &Rig,
    traffic: &Traffic,
    primary: &Pace,
    secondary: &Pace,
    output_kills: &[usize],
    done: impl Fn(&Received) -> bool,
) -> (Received, [u32; 2]) {
    let stop = AtomicBool::new(false);
    let work = async {
        let (p, s, got) = futures::join!(
            send(rig, Side::Primary, traffic, primary),
            send(rig, Side::Secondary, traffic, secondary),
            collect(rig, output_kills, DRAIN, done),
        );
        stop.store(true, Ordering::Relaxed);
        (got, [p, s])
    };
    let (result, checked) = futures::join!(work, watch_identity(rig, &stop));
    assert!(
        checked > 10,
        "the identity was checked only {checked} times"
    );
    result
}

/// One input peer is cut off mid-frame (in the header, then in the data, alternately) five
/// times while both sides send 2500 matching segments over four flows at 2500 frames/s.
async fn input_cut(name: String, setup: Setup, side: Side) {
    const TOTAL: u32 = 2500;
    let rig = Rig::start(&name, setup).await;
    let traffic = Traffic::new(setup, 4, 120);
    let steady = Pace::steady(TOTAL, 2500);
    let cut = steady.clone().cut(5);
    let (p, s) = match side {
        Side::Primary => (&cut, &steady),
        Side::Secondary => (&steady, &cut),
    };
    let (got, connections) =
        run_load(&rig, &traffic, p, s, &[], |r| r.count() >= TOTAL as usize).await;
    assert_eq!(connections[side.index()], 6, "five cuts, six connections");
    if let Err(e) = check_exactly_once(&traffic, &got, TOTAL) {
        panic!("{e}; {}", summary(&rig.counters()));
    }
    let c = rig
        .wait_until("everything matched", |c| c.held == [0, 0])
        .await;
    assert_eq!(c.received, [u64::from(TOTAL); 2]);
    assert_eq!(released(&c, "matched"), u64::from(TOTAL), "{}", summary(&c));
    assert_eq!(c.checkpoints_total(), 0, "{}", summary(&c));
    assert_nothing_lost(&c);
    let role = Role::input(side).name();
    let cut_lines = logcap::lines(&[&name, role, "mid-frame"]).len();
    assert_eq!(cut_lines, 5, "every cut is logged as mid-frame");
    rig.shutdown(GRACE).await;
}

async fn primary_cut(name: String, setup: Setup) {
    input_cut(name, setup, Side::Primary).await;
}
setup_tests!(primary_cut:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

async fn secondary_cut(name: String, setup: Setup) {
    input_cut(name, setup, Side::Secondary).await;
}
setup_tests!(secondary_cut:
    tcp_connect => colo_tests::rig::TCP_CONNECT,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);

/// The output peer vanishes four times mid-stream (after reading 400 frames on each
/// connection, with more in flight) while matching traffic flows. Every connection carries
/// each flow's segments consecutively, and the last one carries every flow through its last
/// segment. (Frames the kernel had taken for a vanished peer go with it: the daemon counts them
/// written; see `daemon_output.rs`.)
async fn output_cut(name: String, setup: Setup) {
    const TOTAL: u32 = 3000;
    let rig = Rig::start_with(&name, setup, |c| c.output_buffer = 128 * 1024).await;
    let traffic = Traffic::new(setup, 4, 120);
    let pace = Pace::steady(TOTAL, 3000);
    let last = last_segments(&traffic, TOTAL);
    let finished = |r: &Received| {
        let Some(frames) = r.connections.last() else {
            return false;
        };
        let mut seen = last.clone();
        for f in frames {
            if let Some(Label::Segment { flow, seg }) = traffic.identify(f) {
                if seen.get(&flow) == Some(&seg) {
                    seen.remove(&flow);
                }
            }
        }
        seen.is_empty()
    };
    let (got, _) = run_load(
        &rig,
        &traffic,
        &pace,
        &pace,
        &[400, 400, 400, 400],
        finished,
    )
    .await;
    assert_eq!(got.connections.len(), 5, "four cuts, five connections");
    for (i, frames) in got.connections.iter().enumerate() {
        if let Err(e) = check_connection(&traffic, frames) {
            panic!("output connection {i}: {e}");
        }
    }
    assert!(
        finished(&got),
        "the last connection did not get every flow's end"
    );
    let c = rig.wait_until("all released", |c| c.held == [0, 0]).await;
    assert_eq!(released(&c, "matched"), u64::from(TOTAL), "{}", summary(&c));
    assert_eq!(c.checkpoints_total(), 0, "{}", summary(&c));
    assert_nothing_lost(&c);
    let o = rig.wait_output("written", |o| o.buffered_frames == 0).await;
    assert!(o.written_frames >= u64::from(TOTAL), "{o:?}");
    rig.shutdown(GRACE).await;
}
setup_tests!(output_cut:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// The output peer stops reading for 2.5 s while both inputs keep sending: the output buffer
/// fills, the daemon stops reading its inputs (back-pressure, D-LOSS-2) instead of dropping,
/// and when the peer reads again every frame comes out once, in order. The compare timeout is
/// raised above the stall so that the held packets' age (which grows while nothing is read)
/// does not turn into checkpoint requests; the point here is the output path. Over UNIX
/// sockets only: over loopback TCP the kernel alone buffers tens of megabytes (tcp_rmem grows
/// to 32 MiB), more than a short test sends, so nothing would ever wait in the daemon.
async fn output_stall(name: String, setup: Setup) {
    const TOTAL: u32 = 4000;
    const STALL: Duration = Duration::from_millis(2500);
    let rig = Rig::start_with(&name, setup, |c| {
        c.output_buffer = 256 * 1024;
        c.compare_timeout = 10_000;
    })
    .await;
    let traffic = Traffic::new(setup, 4, 200);
    let pace = Pace::steady(TOTAL, 4000);
    let stop = AtomicBool::new(false);
    let reader = async {
        let mut out = Output::connect(&rig).await;
        assert!(out.read_until(DRAIN, |r| r.count() >= 300).await);
        // Stalled: the connection stays open and nothing is read. Once the socket buffers
        // and the output buffer are full, what the daemon receives must stop growing.
        let stalled = Instant::now();
        let mut samples = Vec::new();
        while stalled.elapsed() < STALL {
            async_std::task::sleep(Duration::from_millis(250)).await;
            samples.push(rig.counters().received[0]);
        }
        let paused = rig.output();
        out.read_until(DRAIN, |r| r.count() >= TOTAL as usize).await;
        stop.store(true, Ordering::Relaxed);
        (out.received, samples, paused)
    };
    let (_, _, (got, samples, paused), checked) = futures::join!(
        send(&rig, Side::Primary, &traffic, &pace),
        send(&rig, Side::Secondary, &traffic, &pace),
        reader,
        watch_identity(&rig, &stop),
    );
    assert!(checked > 10, "identity checked {checked} times");
    assert!(
        paused.buffered_bytes >= 256 * 1024,
        "the output buffer was not full: {paused:?}"
    );
    logcap::wait_for(
        &[&name, "outdev", "output buffer full", "inputs paused"],
        DRAIN,
    )
    .await;
    let tail = &samples[samples.len() - 4..];
    assert!(
        tail.iter().all(|&n| n == tail[0]) && tail[0] < u64::from(TOTAL),
        "inputs were not paused during the stall: received {samples:?}"
    );
    if let Err(e) = check_exactly_once(&traffic, &got, TOTAL) {
        panic!("{e}; {}", summary(&rig.counters()));
    }
    let c = rig.wait_until("all matched", |c| c.held == [0, 0]).await;
    assert_eq!(released(&c, "matched"), u64::from(TOTAL), "{}", summary(&c));
    assert_eq!(c.checkpoints_total(), 0, "{}", summary(&c));
    assert_nothing_lost(&c);
    rig.shutdown(GRACE).await;
}
setup_tests!(output_stall:
    unix_listen => colo_tests::rig::UNIX_LISTEN,
    unix_connect_vnet => colo_tests::rig::UNIX_CONNECT_VNET,
);

/// Plays the COLO controller until `stop`: answers every DO_CHECKPOINT with COLO_CHECKPOINT,
/// except that on every `cut_every`-th request (while `cuts` remain) it writes half of the
/// answer and vanishes, then connects again. Returns (requests seen, connections used).
async fn controller(
    rig: &Rig,
    setup: Setup,
    stop: &AtomicBool,
    cut_every: u32,
    mut cuts: u32,
) -> (u32, u32) {
    let mut peer = rig.connect(Role::NotifyDev).await;
    let (mut requests, mut connections) = (0, 1);
    while !stop.load(Ordering::Relaxed) {
        let Some(f) = peer.recv(Duration::from_millis(20)).await else {
            continue;
        };
        assert_eq!(
            &f.data[..],
            b"DO_CHECKPOINT",
            "the daemon sent something else"
        );
        requests += 1;
        if cuts > 0 && requests % cut_every == 0 {
            cuts -= 1;
            let mut answer = Vec::new();
            encode_parts(b"COLO_CHECKPOINT", setup.vnet.then_some(0), &mut answer);
            peer.send_raw(&answer[..answer.len() / 2]).await;
            drop(peer);
            peer = rig.connect(Role::NotifyDev).await;
            connections += 1;
        } else {
            peer.send_message(b"COLO_CHECKPOINT").await;
        }
    }
    (requests, connections)
}

/// Settings that turn an unanswered request into another one soon (a timeout request every
/// 100 ms for a packet held over 300 ms).
fn quick_timeouts(c: &mut colo_actors::PipelineConfig) {
    c.compare_timeout = 300;
    c.expired_scan_cycle = 100;
}

/// The controller is cut off mid-message four times while every 25th frame is a mismatch, so
/// checkpoint requests and flushes keep coming. Requests raised while it is away are raised
/// again by the timeout scan; every primary frame comes out once, each flow in order.
async fn controller_cut(name: String, setup: Setup) {
    const TOTAL: u32 = 2500;
    let rig = Rig::start_with(&name, setup, quick_timeouts).await;
    let traffic = Traffic::new(setup, 4, 120).with_mismatches(25);
    let pace = Pace::steady(TOTAL, 2500);
    let stop = AtomicBool::new(false);
    let work = async {
        let got = run_load(&rig, &traffic, &pace, &pace, &[], |r| {
            r.count() >= TOTAL as usize
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        got
    };
    let ((got, _), (requests, connections)) =
        futures::join!(work, controller(&rig, setup, &stop, 5, 4));
    assert_eq!(connections, 5, "four cuts, five controller connections");
    if let Err(e) = check_exactly_once(&traffic, &got, TOTAL) {
        panic!("{e}; {}", summary(&rig.counters()));
    }
    let c = rig.wait_until("all released", |c| c.held[0] == 0).await;
    assert!(
        c.checkpoints_total() >= u64::from(requests) && c.flushes > 0,
        "{requests} requests seen; {}",
        summary(&c)
    );
    assert!(
        released(&c, "checkpoint-flush") >= u64::from(TOTAL / 25),
        "{}",
        summary(&c)
    );
    assert_nothing_lost(&c);
    // Over TCP a cut may reach the daemon as a reset instead (when a DO_CHECKPOINT was still
    // unread), which ends the connection as a failed read.
    let ends = logcap::lines(&[&name, "notify_dev", "mid-frame"]).len()
        + logcap::lines(&[&name, "notify_dev", "read failed"]).len();
    assert_eq!(ends, 4, "every cut is logged");
    rig.shutdown(GRACE).await;
}
setup_tests!(controller_cut:
    tcp_listen_vnet => colo_tests::rig::TCP_LISTEN_VNET,
    unix_connect => colo_tests::rig::UNIX_CONNECT,
);

/// No controller is connected for the first second while mismatches raise checkpoint
/// requests: each is logged as not sent, the matching traffic keeps flowing, and once a
/// controller connects the next requests reach it and its flushes release everything held.
async fn no_controller(name: String, setup: Setup) {
    const TOTAL: u32 = 2000;
    let rig = Rig::start_with(&name, setup, quick_timeouts).await;
    let traffic = Traffic::new(setup, 4, 120).with_mismatches(20);
    let pace = Pace::steady(TOTAL, 2000);
    let stop = AtomicBool::new(false);
    let away = async {
        async_std::task::sleep(Duration::from_secs(1)).await;
        let before = rig.counters();
        let answered = controller(&rig, setup, &stop, u32::MAX, 0).await;
        (before, answered)
    };
    let work = async {
        let got = run_load(&rig, &traffic, &pace, &pace, &[], |r| {
            r.count() >= TOTAL as usize
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        got
    };
    let ((got, _), (before, (requests, _))) = futures::join!(work, away);
    assert!(
        before.checkpoints_total() > 0 && before.flushes == 0,
        "requests were raised, none answered: {}",
        summary(&before)
    );
    assert!(
        released(&before, "matched") > 0,
        "matching traffic flowed meanwhile: {}",
        summary(&before)
    );
    logcap::wait_for(
        &[
            &name,
            "notify_dev",
            "no controller connected; DO_CHECKPOINT not sent",
        ],
        DRAIN,
    )
    .await;
    assert!(
        requests > 0,
        "the controller got no request after connecting"
    );
    if let Err(e) = check_exactly_once(&traffic, &got, TOTAL) {
        panic!("{e}; {}", summary(&rig.counters()));
    }
    let c = rig.wait_until("all released", |c| c.held[0] == 0).await;
    assert!(c.flushes > 0, "{}", summary(&c));
    assert_nothing_lost(&c);
    rig.shutdown(GRACE).await;
}
setup_tests!(no_controller:
    tcp_listen => colo_tests::rig::TCP_LISTEN,
    unix_listen_vnet => colo_tests::rig::UNIX_LISTEN_VNET,
);
