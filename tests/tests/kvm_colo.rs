//! colo-compare as the comparator and beacon of a real KVM COLO pair: two QEMU processes on
//! this host (`-accel kvm`, idle guest, no disk), the primary with the README's beacon options,
//! colo-compare with the README's beacon pipeline; the test plays both filter-redirectors and
//! the output's reader, and checks every flush against the primary's COLO trace lines.
//!
//! Needs `/dev/kvm` and a QEMU whose KVM COLO works (Debian bookworm's 7.2 does, 10.0.0 to
//! 10.0.6 do not). Without `/dev/kvm` it prints `SKIPPED: ...` and passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use colo_actors::{BeaconStatus, PipelineSnapshot, RequestPath, Role};
use colo_core::{Frame, Side};
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::kvm::host::require_kvm;
use colo_tests::kvm::pair::ColoPair;
use colo_tests::kvm::recipe::BeaconRecipe;
use colo_tests::kvm::trace::{Checkpoint, now_us};
use colo_tests::logcap;
use colo_tests::peer::Peer;
use colo_tests::rig::{Rig, UNIX_LISTEN, WAIT, released, run};
use serde_json::json;

const TEST: &str = "kvm_colo::colo_compare_is_the_comparator_of_a_kvm_colo_pair";
/// The checkpoint period while held packets are sent.
const PERIOD_MS: u64 = 200;
/// How long held packets are sent.
const PERIODIC: Duration = Duration::from_secs(3);
/// Pause between two held packets.
const PACE: Duration = Duration::from_millis(20);
/// A checkpoint period long enough that only requests start checkpoints.
const NO_PERIOD_MS: u64 = 60_000;
/// "Within a few milliseconds": the median time from the mismatch written to the checkpoint
/// started (measured: 0.4 to 0.9 ms with this test alone on a 2-core host, 5.4 ms with the
/// whole suite running beside it).
const REQUEST_TYPICAL_US: u64 = 10_000;
/// The longest any one round may take for it, with the host busy (tests run in parallel).
const REQUEST_WITHIN_US: u64 = 100_000;
/// Mismatch rounds.
const ROUNDS: u32 = 5;
/// No checkpoint for this long: the pair is quiet.
const QUIET: Duration = Duration::from_millis(250);
/// Offset of the UDP payload in the test's frames (Ethernet, IPv4 without options, UDP).
const PAYLOAD_AT: usize = 14 + 20 + 8;

fn frame(port: u16, id: u32, text: &str) -> Frame {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    udp(
        &Net::default(),
        &Udp {
            src_port: port,
            dst_port: 7000,
            payload,
        },
    )
}

fn id_of(f: &Frame) -> u32 {
    let b = f
        .data
        .get(PAYLOAD_AT..PAYLOAD_AT + 4)
        .expect("a frame of the test");
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn snapshot(rig: &Rig) -> PipelineSnapshot {
    rig.daemon()
        .handle()
        .snapshot()
        .into_iter()
        .next()
        .expect("one pipeline")
}

fn beacon(rig: &Rig) -> BeaconStatus {
    snapshot(rig).beacon.expect("a beacon pipeline")
}

/// Held packets sent (id → wall µs before the write) and released (id → wall µs read).
#[derive(Default)]
struct Ledger {
    sent: BTreeMap<u32, u64>,
    out: BTreeMap<u32, u64>,
}

impl Ledger {
    /// Reads what comes out within `quiet` of silence.
    async fn collect(&mut self, output: &mut Peer, quiet: Duration) {
        while let Some(f) = output.recv(quiet).await {
            let at = now_us();
            let id = id_of(&f);
            assert!(
                self.out.insert(id, at).is_none(),
                "packet {id} released twice"
            );
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn stats(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(a), Some(m), Some(z)) => format!(
            "n={} min {:.3} median {:.3} max {:.3} ms",
            v.len(),
            ms(*a),
            ms(*m),
            ms(*z)
        ),
        _ => "none".into(),
    }
}

/// Every checkpoint of the pair gives exactly one flush, and no held primary packet is released
/// before the primary's `vmstate-received` of the checkpoint that releases it; a mismatch
/// injected on the streams starts a checkpoint within a few milliseconds (one poke, one
/// checkpoint), and its packet is released at that checkpoint's flush; `COLO_EXIT` fails over.
#[test]
fn colo_compare_is_the_comparator_of_a_kvm_colo_pair() {
    let Some(bin) = require_kvm(TEST) else {
        return;
    };
    run(async {
        logcap::install();
        let dir = tempfile::tempdir().expect("temporary directory");
        let recipe = BeaconRecipe::load(dir.path());
        let mut pair = ColoPair::start(&bin, dir.path(), &recipe.qemu).await;
        let beacon_config = recipe.beacon();
        let rig = Rig::start_with("kvm-colo", UNIX_LISTEN, move |c| {
            c.notify_dev = None;
            c.beacon = Some(beacon_config);
            // Held packets wait for checkpoints here, never for the timeout.
            c.compare_timeout = 600_000;
        })
        .await;
        let mut primary = rig.connect(Role::PrimaryIn).await;
        let mut secondary = rig.connect(Role::SecondaryIn).await;
        let mut output = rig.connect(Role::Outdev).await;
        let start = Instant::now();
        while !{
            let b = beacon(&rig);
            b.armed && b.secondary_in && b.qmp
        } {
            assert!(
                start.elapsed() < WAIT,
                "the beacon did not connect: {:?}\n{}",
                beacon(&rig),
                pair.diagnostics()
            );
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        pair.enter_colo(PERIOD_MS).await;

        // Periodic checkpoints while held packets arrive.
        let mut ledger = Ledger::default();
        let mut id = 0;
        let periodic = Instant::now();
        while periodic.elapsed() < PERIODIC {
            id += 1;
            let f = frame(6000, id, "held until a checkpoint");
            ledger.sent.insert(id, now_us());
            primary.send(&f).await;
            ledger.collect(&mut output, PACE).await;
        }
        // This checkpoint (setting the period starts one) releases the last of them.
        pair.set_checkpoint_delay(NO_PERIOD_MS).await;
        let draining = Instant::now();
        while ledger.out.len() < ledger.sent.len() && draining.elapsed() < WAIT {
            ledger.collect(&mut output, PACE).await;
        }
        let cps = settle(&pair, &rig, 0).await;
        assert!(
            cps.len() >= 8,
            "only {} checkpoints in {PERIODIC:?} at {PERIOD_MS} ms",
            cps.len()
        );
        let b = beacon(&rig);
        assert_eq!(
            (b.counters.flushes, b.counters.missed, b.counters.stale),
            (cps.len() as u64, 0, 0),
            "exactly one flush per checkpoint"
        );
        assert_eq!(
            ledger.out.len(),
            ledger.sent.len(),
            "every held packet released"
        );
        // Every held packet left by a flush; none before the vmstate-received of the checkpoint
        // in progress when it came out, and none later than the flush of the first checkpoint
        // started after it was sent.
        let counters = snapshot(&rig).counters;
        let sent = ledger.sent.len() as u64;
        assert_eq!(released(&counters, "checkpoint-flush"), sent);
        assert_eq!(counters.released_total(), sent);
        let mut after_received = Vec::new();
        for (id, &sent) in &ledger.sent {
            let out = ledger.out[id];
            let (k, c) = cps
                .iter()
                .enumerate()
                .rev()
                .find(|(_, c)| c.request < out)
                .unwrap_or_else(|| panic!("packet {id} released before any checkpoint: {cps:?}"));
            let received = c.received.expect("a finished checkpoint");
            assert!(
                out >= received,
                "packet {id} released {:.3} ms after checkpoint {k} started, before its \
                 vmstate-received ({:.3} ms later)",
                ms(out - c.request),
                ms(received - out)
            );
            // A packet sent while the last checkpoint was already under way has no checkpoint
            // started after it: that checkpoint's flush took it (it was readable by then), and
            // the check above is all there is to make.
            if let Some(first) = cps.iter().position(|c| c.request > sent) {
                assert!(
                    k <= first,
                    "packet {id} was held past the flush of checkpoint {first}"
                );
                if k == first {
                    after_received.push(out - received);
                }
            }
        }

        println!(
            "KVM COLO: {} checkpoints, {} beacon flushes; held packet out after \
             vmstate-received: {}",
            cps.len(),
            b.counters.flushes,
            stats(after_received.clone())
        );

        // Mismatches: one poke each, one checkpoint each, released at its flush.
        let mut to_request = Vec::new();
        let mut to_release = Vec::new();
        for round in 1..=ROUNDS {
            let before = quiet(&pair).await;
            let id = 1_000_000 + round;
            primary.send(&frame(6001, id, "primary says")).await;
            rig.wait_until("holding the primary", |c| {
                c.held[Side::Primary.index()] == 1
            })
            .await;
            let injected = now_us();
            secondary.send(&frame(6001, id, "second says")).await;
            let f = output.recv(WAIT).await.unwrap_or_else(|| {
                panic!("round {round}: nothing released\n{}", pair.diagnostics())
            });
            let out = now_us();
            assert_eq!(id_of(&f), id);
            let cps = settle(&pair, &rig, before + 1).await;
            let c = cps[before];
            assert!(
                c.request > injected && c.request - injected < REQUEST_WITHIN_US,
                "round {round}: the checkpoint started {:.3} ms after the mismatch\n{cps:?}",
                ms(c.request) - ms(injected)
            );
            let received = c.received.expect("a finished checkpoint");
            assert!(
                out >= received,
                "round {round}: released before vmstate-received"
            );
            to_request.push(c.request - injected);
            to_release.push(out - injected);
            assert_eq!(
                quiet(&pair).await,
                before + 1,
                "round {round}: one poke, one checkpoint"
            );
        }
        println!(
            "KVM COLO: mismatch -> checkpoint-request: {}; mismatch -> packet out: {}",
            stats(to_request.clone()),
            stats(to_release.clone())
        );
        let mut sorted = to_request.clone();
        sorted.sort_unstable();
        assert!(
            sorted[sorted.len() / 2] < REQUEST_TYPICAL_US,
            "mismatch to checkpoint: median {:.3} ms",
            ms(sorted[sorted.len() / 2])
        );
        let s = snapshot(&rig);
        assert_eq!(s.requests.get(RequestPath::Poke), u64::from(ROUNDS));
        assert_eq!(s.requests.get(RequestPath::Qmp), 0);
        let b = s.beacon.clone().expect("beacon");
        let total = pair.checkpoints().len() as u64;
        assert_eq!((b.counters.flushes, b.counters.missed), (total, 0));
        assert_eq!(s.counters.flushes, total);
        let delay = &b.counters.delay_after_stop;

        // Failover: COLO_EXIT releases what is held and the primary passes straight through.
        let held = frame(6002, 2_000_000, "held at failover");
        primary.send(&held).await;
        rig.wait_until("holding", |c| c.held[Side::Primary.index()] == 1)
            .await;
        pair.primary("x-colo-lost-heartbeat", json!({})).await;
        assert_eq!(output.recv(WAIT).await, Some(held));
        let through = frame(6002, 2_000_001, "after failover");
        primary.send(&through).await;
        assert_eq!(output.recv(WAIT).await, Some(through));
        let s = snapshot(&rig);
        assert!(s.failed_over);
        let exited = s.beacon.expect("beacon");
        assert!(exited.exited && exited.counters.colo_exits >= 1);
        // The held packet, released by the failover, and the one passed through after it.
        assert_eq!(released(&s.counters, "failover"), 2);
        let exit = logcap::wait_for(&["[kvm-colo]", "COLO_EXIT (reason "], WAIT).await;
        println!("{exit}");

        println!(
            "KVM COLO ({} checkpoints, {} beacon flushes, 0 missed): held packet out after \
             vmstate-received: {}; beacon read after primary STOP: n={} median {:?} max {:?}; \
             mismatch -> checkpoint-request: {}; mismatch -> packet out: {}",
            total,
            b.counters.flushes,
            stats(after_received),
            delay.count(),
            delay.percentile(0.5),
            delay.max(),
            stats(to_request),
            stats(to_release)
        );
        rig.shutdown(Duration::from_secs(1)).await;
        drop(pair);
    });
}

/// Waits until the primary has traced at least `at_least` checkpoints, the last one is over
/// and colo-compare has flushed once for each; returns them.
async fn settle(pair: &ColoPair, rig: &Rig, at_least: usize) -> Vec<Checkpoint> {
    let start = Instant::now();
    loop {
        let cps = pair.checkpoints();
        let flushes = beacon(rig).counters.flushes;
        let over = cps.last().is_some_and(|c| c.loaded.is_some());
        if cps.len() >= at_least && over && flushes == cps.len() as u64 {
            return cps;
        }
        assert!(
            start.elapsed() < WAIT,
            "checkpoints not settled: {} traced (last {:?}), {flushes} flushes\n{}",
            cps.len(),
            cps.last(),
            pair.diagnostics()
        );
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the primary has started no checkpoint for [`QUIET`] and the last one is over;
/// returns how many it traced.
async fn quiet(pair: &ColoPair) -> usize {
    let start = Instant::now();
    let mut seen = pair.checkpoints().len();
    let mut since = Instant::now();
    loop {
        async_std::task::sleep(Duration::from_millis(10)).await;
        let cps = pair.checkpoints();
        if cps.len() != seen || cps.last().is_some_and(|c| c.loaded.is_none()) {
            seen = cps.len();
            since = Instant::now();
        } else if since.elapsed() >= QUIET {
            return seen;
        }
        assert!(
            start.elapsed() < WAIT,
            "the pair keeps checkpointing: {} checkpoints\n{}",
            cps.len(),
            pair.diagnostics()
        );
    }
}
