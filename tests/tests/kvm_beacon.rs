//! Beacon mode against QEMU's standalone comparator (`-M none`, no KVM needed), set up from the
//! README's "KVM COLO" blocks. The test flushes the beacon with `COLO_CHECKPOINT` on a
//! test-only `notify_dev`, which runs the same flush function as a KVM checkpoint: the parked
//! frame comes out, and colo-compare must flush then, not before. With that `notify_dev` set, a
//! poke shows as `DO_CHECKPOINT` there instead of starting a checkpoint.

use std::time::{Duration, Instant};

use colo_actors::notify::{COLO_CHECKPOINT, DO_CHECKPOINT};
use colo_actors::{BeaconStatus, Endpoint, PipelineSnapshot, RequestPath, Role};
use colo_core::{Frame, Side};
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::kvm::recipe::BeaconRecipe;
use colo_tests::kvm::standalone::StandaloneBeacon;
use colo_tests::logcap;
use colo_tests::peer::Peer;
use colo_tests::qemu::binary;
use colo_tests::rig::{Rig, UNIX_LISTEN, WAIT, dropped, released, run};
use serde_json::json;

const GRACE: Duration = Duration::from_secs(1);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(200);

fn snapshot(rig: &Rig) -> PipelineSnapshot {
    rig.daemon()
        .handle()
        .snapshot()
        .into_iter()
        .next()
        .expect("one pipeline")
}

async fn wait_beacon(rig: &Rig, what: &str, done: impl Fn(&BeaconStatus) -> bool) -> BeaconStatus {
    let start = Instant::now();
    loop {
        let b = snapshot(rig)
            .beacon
            .expect("a beacon pipeline publishes its beacon");
        if done(&b) {
            return b;
        }
        assert!(
            start.elapsed() < WAIT,
            "beacon not {what} within {WAIT:?}: {b:?}"
        );
        async_std::task::sleep(Duration::from_millis(2)).await;
    }
}

fn datagram(port: u16, payload: String) -> Frame {
    udp(
        &Net::default(),
        &Udp {
            src_port: port,
            dst_port: 7000,
            payload: payload.into_bytes(),
        },
    )
}

/// A beacon pipeline from the README's blocks, with the standalone beacon QEMU; `change`
/// edits the recipe's pipeline before the daemon starts.
struct Setup {
    rig: Rig,
    qemu: StandaloneBeacon,
    primary: Peer,
    secondary: Peer,
    output: Peer,
    _dir: tempfile::TempDir,
}

async fn setup(
    name: &str,
    bin: &binary::QemuBinary,
    change: impl FnOnce(&mut BeaconRecipe),
) -> Setup {
    logcap::install();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut recipe = BeaconRecipe::load(dir.path());
    change(&mut recipe);
    let mut qemu = StandaloneBeacon::start(bin, dir.path(), &recipe).await;
    let beacon = recipe.beacon();
    let rig = Rig::start_with(name, UNIX_LISTEN, move |c| {
        c.notify_dev = None;
        c.beacon = Some(beacon);
    })
    .await;
    let connected = recipe.clone();
    qemu.wait_connected(&only_connected(connected)).await;
    let primary = rig.connect(Role::PrimaryIn).await;
    let secondary = rig.connect(Role::SecondaryIn).await;
    let output = rig.connect(Role::Outdev).await;
    Setup {
        rig,
        qemu,
        primary,
        secondary,
        output,
        _dir: dir,
    }
}

/// The recipe's chardevs the daemon dials (all but those a test pointed elsewhere).
fn only_connected(mut r: BeaconRecipe) -> BeaconRecipe {
    let beacon = r.beacon();
    let dialled: Vec<String> = beacon
        .endpoints()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Endpoint::UnixConnect(p) => Some(format!("path={}", p.display())),
            _ => None,
        })
        .collect();
    r.qemu
        .retain(|a| !a.starts_with("socket,") || dialled.iter().any(|d| a.contains(d.as_str())));
    r
}

fn millis(d: &[Duration]) -> String {
    let ms: Vec<String> = d
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
        .collect();
    ms.join(" ")
}

/// Each cycle: a held primary packet, a mismatch whose checkpoint request is one poke (seen as
/// one `DO_CHECKPOINT`, a second mismatch merged), silence on the output until the beacon is
/// flushed, then both held packets at once; exactly one flush per beacon flush.
#[test]
fn colo_compare_flushes_when_the_beacon_does_and_requests_with_one_poke() {
    const TEST: &str =
        "kvm_beacon::colo_compare_flushes_when_the_beacon_does_and_requests_with_one_poke";
    let Some(bin) = binary::require(TEST) else {
        return;
    };
    run(async {
        let mut t = setup("beacon-flush", &bin, |_| {}).await;
        wait_beacon(&t.rig, "armed with QMP up", |b| {
            b.armed && b.secondary_in && b.qmp
        })
        .await;
        let mut pokes = Vec::new();
        let mut flushes = Vec::new();
        const CYCLES: u64 = 5;
        for cycle in 1..=CYCLES {
            let held = datagram(6000, format!("held {cycle}"));
            let differs = datagram(6001, format!("primary {cycle}"));
            t.primary.send_all(&[held.clone(), differs.clone()]).await;
            t.rig
                .wait_until("holding both", |c| c.held[Side::Primary.index()] == 2)
                .await;
            let asked = Instant::now();
            t.secondary
                .send(&datagram(6001, format!("second  {cycle}")))
                .await;
            let request = t.qemu.notify.recv(WAIT).await.unwrap_or_else(|| {
                panic!(
                    "cycle {cycle}: no DO_CHECKPOINT from the beacon\n{}",
                    t.qemu.diagnostics()
                )
            });
            pokes.push(asked.elapsed());
            assert_eq!(request.data, DO_CHECKPOINT, "cycle {cycle}");
            if cycle == 1 {
                // A second mismatch before the flush is merged into the request sent.
                let other = datagram(6002, "primary x".into());
                t.primary.send(&other).await;
                t.secondary.send(&datagram(6002, "second x".into())).await;
                t.rig
                    .wait_until("second mismatch", |c| c.checkpoints_total() == 2)
                    .await;
                t.qemu.notify.expect_silence(QUIET).await;
                assert_eq!(snapshot(&t.rig).requests.get(RequestPath::Merged), 1);
            }
            // Nothing is released before QEMU flushes the beacon.
            t.output.expect_silence(QUIET).await;
            let b = wait_beacon(&t.rig, "unchanged", |_| true).await;
            assert_eq!(b.counters.flushes, cycle - 1);
            let flushed = Instant::now();
            t.qemu.notify.send_message(COLO_CHECKPOINT).await;
            let out = t.output.recv_n(if cycle == 1 { 3 } else { 2 }, WAIT).await;
            flushes.push(flushed.elapsed());
            assert_eq!(out[..2], [held, differs], "cycle {cycle}: in arrival order");
            let b = wait_beacon(&t.rig, "flushed and re-armed", |b| {
                b.counters.flushes == cycle && b.armed
            })
            .await;
            assert_eq!(b.epoch, cycle);
        }
        let s = snapshot(&t.rig);
        let b = s.beacon.expect("beacon");
        assert_eq!(
            (
                b.counters.flushes,
                b.counters.missed,
                b.counters.stale,
                b.counters.foreign
            ),
            (CYCLES, 0, 0, 0)
        );
        assert_eq!(b.counters.arms, CYCLES + 1);
        assert_eq!(s.counters.flushes, CYCLES);
        assert_eq!(s.requests.get(RequestPath::Poke), CYCLES);
        assert_eq!(s.requests.get(RequestPath::Qmp), 0);
        assert_eq!(released(&s.counters, "checkpoint-flush"), 2 * CYCLES + 1);
        assert_eq!(
            dropped(&s.counters, Side::Secondary, "checkpoint-flush"),
            CYCLES + 1
        );
        t.qemu.notify.expect_silence(QUIET).await;
        assert_eq!(
            logcap::lines(&[
                "[beacon-flush]",
                "checkpoint flush, epoch 5 (beacon): 2 held"
            ])
            .len(),
            1
        );
        println!(
            "beacon (QEMU -M none): mismatch -> DO_CHECKPOINT ms: {}; COLO_CHECKPOINT -> held \
             packets out ms: {}",
            millis(&pokes),
            millis(&flushes)
        );
        t.rig.shutdown(GRACE).await;
    });
}

/// The primary's QMP: a RESUME with no beacon frame since the STOP is a missed flush, made at
/// RESUME (not at STOP); a STOP with the beacon flushing before RESUME is a normal checkpoint,
/// whose delay after STOP is measured.
#[test]
fn a_resume_without_a_beacon_since_stop_is_a_late_flush() {
    const TEST: &str = "kvm_beacon::a_resume_without_a_beacon_since_stop_is_a_late_flush";
    let Some(bin) = binary::require(TEST) else {
        return;
    };
    run(async {
        let mut t = setup("beacon-missed", &bin, |_| {}).await;
        wait_beacon(&t.rig, "armed with QMP up", |b| b.armed && b.qmp).await;
        // A first flush shows that the primary is in COLO (no migration runs here).
        t.qemu.notify.send_message(COLO_CHECKPOINT).await;
        wait_beacon(&t.rig, "in COLO", |b| b.colo && b.counters.flushes == 1).await;
        // The beacon counts a flush when it asks for it; the tracker makes it once the primary
        // reader has passed on what was readable then. Until it has, the datagram below would
        // be taken into this flush, as it should.
        t.rig.wait_until("flushed", |c| c.flushes == 1).await;
        let first = datagram(6000, "before a missed beacon".into());
        t.primary.send(&first).await;
        t.rig
            .wait_until("holding", |c| c.held[Side::Primary.index()] == 1)
            .await;
        t.qemu.qmp.execute("stop", json!({})).await.expect("stop");
        wait_beacon(&t.rig, "stopped", |b| b.counters.stops == 1).await;
        t.output.expect_silence(QUIET).await;
        t.qemu.qmp.execute("cont", json!({})).await.expect("cont");
        let out = t.output.recv(WAIT).await.expect("flushed at RESUME");
        assert_eq!(out, first);
        let b = wait_beacon(&t.rig, "missed", |b| b.counters.missed == 1).await;
        assert_eq!((b.counters.flushes, b.epoch), (1, 2));
        logcap::wait_for(&["[beacon-missed]", "flushing at RESUME, late"], WAIT).await;
        // A checkpoint as KVM makes it: STOP, the beacon's flush, RESUME.
        let second = datagram(6000, "a normal checkpoint".into());
        t.primary.send(&second).await;
        t.rig
            .wait_until("holding", |c| c.held[Side::Primary.index()] == 1)
            .await;
        t.qemu.qmp.execute("stop", json!({})).await.expect("stop");
        wait_beacon(&t.rig, "stopped", |b| b.counters.stops == 2).await;
        t.qemu.notify.send_message(COLO_CHECKPOINT).await;
        assert_eq!(t.output.recv(WAIT).await, Some(second));
        t.qemu.qmp.execute("cont", json!({})).await.expect("cont");
        let b = wait_beacon(&t.rig, "resumed", |b| b.counters.resumes == 2).await;
        assert_eq!((b.counters.flushes, b.counters.missed, b.epoch), (2, 1, 3));
        assert_eq!(b.counters.delay_after_stop.count(), 1);
        t.output.expect_silence(QUIET).await;
        assert_eq!(snapshot(&t.rig).counters.flushes, 3);
        t.rig.shutdown(GRACE).await;
    });
}

/// While the beacon's `secondary_in` is not connected, a checkpoint request goes over QMP as
/// `migrate-set-parameters` with the period QEMU has, which stays as it was.
#[test]
fn requests_go_over_qmp_while_the_beacon_is_not_connected() {
    const TEST: &str = "kvm_beacon::requests_go_over_qmp_while_the_beacon_is_not_connected";
    let Some(bin) = binary::require(TEST) else {
        return;
    };
    run(async {
        let mut t = setup("beacon-qmp", &bin, |r| {
            let nowhere = r
                .pipeline
                .beacon
                .as_ref()
                .map(|b| match &b.secondary_in {
                    Endpoint::UnixConnect(p) => p.with_file_name("nobody-listens.sock"),
                    other => panic!("the README's beacon dials UNIX sockets, not {other}"),
                })
                .expect("a beacon");
            if let Some(b) = r.pipeline.beacon.as_mut() {
                b.secondary_in = Endpoint::UnixConnect(nowhere);
            }
        })
        .await;
        t.qemu
            .qmp
            .execute(
                "migrate-set-parameters",
                json!({ "x-checkpoint-delay": 4321 }),
            )
            .await
            .expect("set the period");
        wait_beacon(&t.rig, "armed with QMP up", |b| {
            b.armed && b.qmp && !b.secondary_in
        })
        .await;
        t.primary.send(&datagram(6001, "primary".into())).await;
        t.secondary.send(&datagram(6001, "second!".into())).await;
        logcap::wait_for(
            &[
                "[beacon-qmp]",
                "checkpoint requested over QMP (x-checkpoint-delay 4321 ms, unchanged)",
            ],
            WAIT,
        )
        .await;
        let s = snapshot(&t.rig);
        assert_eq!(s.requests.get(RequestPath::Qmp), 1);
        assert_eq!(s.requests.get(RequestPath::Poke), 0);
        let params = t
            .qemu
            .qmp
            .execute("query-migrate-parameters", json!({}))
            .await
            .expect("parameters");
        assert_eq!(params["x-checkpoint-delay"], json!(4321));
        t.qemu.notify.expect_silence(QUIET).await;
        t.rig.shutdown(GRACE).await;
    });
}

/// colo-compare restarted: it connects to the same beacon again and parks a new frame; at the
/// next flush the previous run's frame comes out too and is recognised as stale, so there is
/// exactly one flush.
#[test]
fn a_restarted_colo_compare_finds_the_beacon_again() {
    const TEST: &str = "kvm_beacon::a_restarted_colo_compare_finds_the_beacon_again";
    let Some(bin) = binary::require(TEST) else {
        return;
    };
    run(async {
        let t = setup("beacon-first-run", &bin, |_| {}).await;
        wait_beacon(&t.rig, "armed", |b| b.armed).await;
        let Setup {
            rig,
            mut qemu,
            _dir: dir,
            ..
        } = t;
        let recipe = BeaconRecipe::load(dir.path());
        rig.shutdown(GRACE).await;
        let beacon = recipe.beacon();
        let rig = Rig::start_with("beacon-second-run", UNIX_LISTEN, move |c| {
            c.notify_dev = None;
            c.beacon = Some(beacon);
        })
        .await;
        qemu.wait_connected(&recipe).await;
        wait_beacon(&rig, "armed again", |b| b.armed && b.qmp).await;
        let mut primary = rig.connect(Role::PrimaryIn).await;
        let mut output = rig.connect(Role::Outdev).await;
        let held = datagram(6000, "held across a restart".into());
        primary.send(&held).await;
        rig.wait_until("holding", |c| c.held[Side::Primary.index()] == 1)
            .await;
        output.expect_silence(QUIET).await;
        qemu.notify.send_message(COLO_CHECKPOINT).await;
        assert_eq!(output.recv(WAIT).await, Some(held));
        let b = wait_beacon(&rig, "flushed once", |b| {
            b.counters.flushes == 1 && b.counters.stale == 1
        })
        .await;
        assert_eq!((b.epoch, b.counters.foreign), (1, 0));
        rig.shutdown(GRACE).await;
    });
}
