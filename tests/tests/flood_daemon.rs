//! Floods over real sockets against the daemon (in this process): many distinct flows, one
//! flow with 100 000 packets and no secondary, maximum-size frames as fast as a peer can send
//! them, and garbage bytes on every input. Memory stays within the configured budget plus a
//! stated constant, primary packets are dropped only past the budget (counted, each drop
//! logged), the counters add up, and the daemon keeps working afterwards.
//!
//! The constant (besides the budget `max_held_bytes`): the output buffer (`output_buffer`,
//! set small here), the connection table up to `max_connections` (under [`FLOW_OVERHEAD`]
//! bytes a connection), and [`SLACK`] for the channels between the actors (16 batches per
//! queue), the socket reads in flight, the test's own peers and allocator rounding. The peak
//! resident set size of this process (one test per process under nextest) is reset after the
//! daemon has started. Log lines are counted by a logger that keeps none of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use colo_actors::Role;
use colo_core::frame::encode;
use colo_core::tracker::FLOW_OVERHEAD;
use colo_core::{Frame, NET_BUFSIZE, Side};
use colo_protocols as _;
use colo_tests::frames::{Net, Udp, udp};
use colo_tests::memory::{MIB, count_lines, install_counting_logger, peak, reset_peak, rss};
use colo_tests::peer::Peer;
use colo_tests::rig::{Rig, Setup, UNIX_LISTEN, dropped, released, run, summary};

/// Channels between the actors, reads in flight, the test's peers, allocator rounding and
/// the memory the allocator keeps in its per-thread arenas after frees. Measured: up to 36 MiB
/// with both cores busy with other tests; 48 MiB leaves room without hiding a leak, which grows
/// with the flood (hundreds of MiB here).
const SLACK: u64 = 48 * MIB;
/// The output buffer the floods run with.
const OUTPUT_BUFFER: u64 = 4 * MIB;
/// How long a flood may take to be taken in.
const FLOOD_WAIT: Duration = Duration::from_secs(60);

/// Starts a daemon with the counting logger in place (so nothing keeps the flood's log lines).
async fn start(name: &str, setup: Setup, budget: u64) -> Rig {
    assert!(
        install_counting_logger(),
        "another logger was installed first"
    );
    Rig::start_with(name, setup, move |c| {
        c.max_held_bytes = budget;
        c.output_buffer = OUTPUT_BUFFER;
    })
    .await
}

/// Waits until the daemon has taken `n` frames from each side (`[primary, secondary]`).
async fn wait_received(rig: &Rig, n: [u64; 2]) {
    let start = Instant::now();
    loop {
        let c = rig.counters();
        if c.received[0] + c.empty_frames[0] >= n[0] && c.received[1] + c.empty_frames[1] >= n[1] {
            return;
        }
        assert!(
            start.elapsed() < FLOOD_WAIT,
            "the daemon took {:?} of {n:?} frames within {FLOOD_WAIT:?}: {}",
            c.received,
            summary(&c)
        );
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads the output until `done(frames read so far)` or `within` passes; returns the count
/// and the first frame that broke `in_order` (given the previous and the next frame).
async fn drain_output(
    out: &mut Peer,
    within: Duration,
    done: impl Fn(u64) -> bool,
    in_order: impl Fn(&Frame, &Frame) -> bool,
) -> (u64, Option<Frame>) {
    let deadline = Instant::now() + within;
    let mut got = 0;
    let mut last: Option<Frame> = None;
    let mut broken = None;
    while !done(got) && Instant::now() < deadline {
        let Some(f) = out.recv(Duration::from_millis(20)).await else {
            continue;
        };
        if broken.is_none() && last.as_ref().is_some_and(|l| !in_order(l, &f)) {
            broken = Some(f.clone());
        }
        last = Some(f);
        got += 1;
    }
    (got, broken)
}

/// Done once everything sent was taken in and everything released was read.
fn all_out(rig: &Rig, sent: [u64; 2], sending: &AtomicBool) -> impl Fn(u64) -> bool {
    move |got| {
        if sending.load(Ordering::Relaxed) {
            return false;
        }
        let c = rig.counters();
        c.received[0] + c.empty_frames[0] >= sent[0]
            && c.received[1] + c.empty_frames[1] >= sent[1]
            && got >= c.released_total()
    }
}

fn wire(frames: &[Frame], vnet: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        encode(f, vnet, &mut out);
    }
    out
}

/// A UDP frame of flow `flow` (its source address), 47 bytes.
fn flow_frame(template: &[u8], flow: u32) -> Frame {
    let mut d = template.to_vec();
    d[27..30].copy_from_slice(&flow.to_be_bytes()[1..]);
    Frame::new(d)
}

/// 200 000 distinct flows through the sockets as fast as the peers can write: every fourth
/// answered by the secondary, the others held until the budget is full and dropped from there
/// on. The output carries the matched ones.
#[test]
fn many_flows() {
    run(async {
        const FLOWS: u32 = 200_000;
        const BUDGET: u64 = 16 * MIB;
        let name = "flood-many-flows";
        let drops = count_lines("intentional drop of a");
        let rig = start(name, UNIX_LISTEN, BUDGET).await;
        let table = u64::from(colo_core::TrackerConfig::default().max_connections) * FLOW_OVERHEAD;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let mut out = rig.connect(Role::Outdev).await;
        let template = udp(&Net::default(), &Udp::payload(*b"flood")).data.to_vec();
        reset_peak();
        let before = rss();
        let started = Instant::now();
        let sending = AtomicBool::new(true);
        let send = async {
            for chunk in (0..FLOWS).collect::<Vec<_>>().chunks(2000) {
                let frames: Vec<Frame> = chunk.iter().map(|&i| flow_frame(&template, i)).collect();
                let answered: Vec<Frame> = frames.iter().step_by(4).cloned().collect();
                p.send_raw(&wire(&frames, false)).await;
                s.send_raw(&wire(&answered, false)).await;
            }
            sending.store(false, Ordering::Relaxed);
        };
        let sent = [u64::from(FLOWS), u64::from(FLOWS / 4)];
        let (_, (got, _)) = futures::join!(
            send,
            drain_output(
                &mut out,
                FLOOD_WAIT,
                all_out(&rig, sent, &sending),
                |_, _| true
            )
        );
        wait_received(&rig, sent).await;
        let took = started.elapsed();
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "{FLOWS} flows over UNIX sockets in {took:?}: peak RSS grew {} MiB (budget {} MiB); \
             {got} out; {}; flows {}, evicted {}",
            grew / MIB,
            BUDGET / MIB,
            summary(&c),
            c.flows,
            c.flows_evicted
        );
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + table + SLACK,
            "peak RSS grew {grew} bytes"
        );
        assert_eq!(
            c.dropped_total(Side::Primary),
            dropped(&c, Side::Primary, "over-budget")
        );
        assert!(
            dropped(&c, Side::Primary, "over-budget") > 0,
            "{}",
            summary(&c)
        );
        assert!(c.flows_evicted > 0, "{}", summary(&c));
        // Log lines are written after the counters are published: let them catch up.
        let t = Instant::now();
        while drops.count() < c.dropped_total(Side::Primary) && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            drops.count(),
            c.dropped_total(Side::Primary),
            "every primary drop is logged"
        );
        assert_eq!(
            got,
            released(&c, "matched"),
            "every matched packet came out"
        );
        finish(rig, out).await;
    });
}

/// Shuts the daemon down (the rig checks the counters) while reading what the shutdown
/// releases, so the drain is not held up by an output peer that stopped reading.
async fn finish(rig: Rig, mut out: Peer) {
    let read = async {
        let mut n = 0u64;
        while out.recv(Duration::from_secs(5)).await.is_some() {
            n += 1;
        }
        n
    };
    let (report, _) = futures::join!(rig.shutdown(Duration::from_secs(5)), read);
    for p in &report.pipelines {
        assert_eq!(
            p.unwritten, 0,
            "{}: frames left unwritten at shutdown",
            p.name
        );
    }
}

/// The number a flood frame carries in its IP identification (and payload).
fn numbered(net: &Net, i: u32, payload: usize) -> Frame {
    let mut body = i.to_be_bytes().to_vec();
    body.resize(payload, b'.');
    udp(&net.with_id(i as u16), &Udp::payload(body))
}

fn number(f: &Frame) -> Option<u32> {
    let eth = f.ethernet();
    // Ethernet 14 + IPv4 20 + UDP 8: the payload starts with the number.
    eth.get(42..46)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One flow, 100 000 packets from the primary as fast as it can write, no secondary: past
/// the queue size each packet asks for a checkpoint and is still held; past the budget each is
/// dropped, counted, logged and asks for a checkpoint. A checkpoint then releases what was
/// held, in arrival order.
#[test]
fn one_flow_with_100k_packets_and_no_secondary() {
    run(async {
        const PACKETS: u32 = 100_000;
        const BUDGET: u64 = 16 * MIB;
        let name = "flood-one-flow";
        let drops = count_lines("intentional drop of a");
        let queue_full = count_lines("checkpoint requested: queue-full");
        let rig = start(name, UNIX_LISTEN, BUDGET).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut out = rig.connect(Role::Outdev).await;
        let net = Net::default();
        reset_peak();
        let before = rss();
        for chunk in (0..PACKETS).collect::<Vec<_>>().chunks(1000) {
            let frames: Vec<Frame> = chunk.iter().map(|&i| numbered(&net, i, 64)).collect();
            p.send_raw(&wire(&frames, false)).await;
        }
        wait_received(&rig, [u64::from(PACKETS), 0]).await;
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "one flow, {PACKETS} packets: peak RSS grew {} MiB (budget {} MiB); {}",
            grew / MIB,
            BUDGET / MIB,
            summary(&c)
        );
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + SLACK,
            "peak RSS grew {grew} bytes"
        );
        let held = c.held[0];
        let over = dropped(&c, Side::Primary, "over-budget");
        assert!(held > 1025 && over > 0, "{}", summary(&c));
        assert_eq!(held + over, u64::from(PACKETS));
        assert_eq!(c.dropped_total(Side::Primary), over);
        // Log lines are written after the counters are published: let them catch up.
        let t = Instant::now();
        while drops.count() < over && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            drops.count(),
            over,
            "every drop is logged, as {:?}",
            drops.first()
        );
        while queue_full.count() < held - 1025 && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            queue_full.count(),
            held - 1025,
            "every packet held past the queue size asked for a checkpoint"
        );
        rig.daemon()
            .checkpoint(name)
            .await
            .expect("the pipeline exists");
        let (got, broken) = drain_output(
            &mut out,
            FLOOD_WAIT,
            |n| n >= held,
            |a, b| number(b) == number(a).map(|n| n + 1),
        )
        .await;
        assert_eq!(got, held, "the flush released everything held");
        assert_eq!(
            broken.map(|f| number(&f)),
            None,
            "the flush is not in arrival order"
        );
        finish(rig, out).await;
    });
}

/// Reads of matching traffic, each carrying one small frame of a flow the secondary never
/// answers. The frames of one read share its buffer, so each unanswered frame would keep a
/// whole read (~64 KiB) in memory while the budget counts ~100 bytes for it; the tracker
/// copies frames held past `COMPACT_AFTER` out of their read, so memory stays near the budget.
/// Measured: peak RSS grew 110 MiB without that copy, 16 MiB with it.
#[test]
fn an_unanswered_frame_in_every_read_does_not_keep_the_read_in_memory() {
    run(async {
        const READS: u32 = 2000;
        const MATCHING: u32 = 60;
        const BUDGET: u64 = 16 * MIB;
        let name = "flood-pinned-reads";
        let rig = start(name, UNIX_LISTEN, BUDGET).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let mut out = rig.connect(Role::Outdev).await;
        let net = Net::default();
        let unanswered = |i: u32| {
            let mut d = Udp::payload(i.to_be_bytes().to_vec());
            d.src_port = 7;
            udp(&net.with_id(i as u16), &d)
        };
        reset_peak();
        let before = rss();
        let sending = AtomicBool::new(true);
        let send = async {
            for r in 0..READS {
                let matching: Vec<Frame> = (0..MATCHING)
                    .map(|k| numbered(&net, r * MATCHING + k, 1000))
                    .collect();
                let mut read = vec![unanswered(r)];
                read.extend(matching.iter().cloned());
                s.send_raw(&wire(&matching, false)).await;
                p.send_raw(&wire(&read, false)).await;
            }
            sending.store(false, Ordering::Relaxed);
        };
        let matched = u64::from(READS * MATCHING);
        let read = drain_output(
            &mut out,
            FLOOD_WAIT,
            |got| !sending.load(Ordering::Relaxed) && got >= matched,
            |a, b| number(b) > number(a),
        );
        let ((), (got, broken)) = futures::join!(send, read);
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "{READS} reads with one unanswered frame each: peak RSS grew {} MiB (budget {} MiB); \
             {got} out, {} compacted; {}",
            grew / MIB,
            BUDGET / MIB,
            c.compacted,
            summary(&c)
        );
        assert_eq!(got, matched, "every matching frame came out");
        assert_eq!(broken.map(|f| number(&f)), None, "released out of order");
        assert_eq!(
            c.held[0],
            u64::from(READS),
            "the unanswered frames are held"
        );
        assert_eq!(c.dropped_total(Side::Primary), 0, "{}", summary(&c));
        assert!(c.compacted > 0, "nothing was compacted: {}", summary(&c));
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + SLACK,
            "peak RSS grew {grew} bytes"
        );
        finish(rig, out).await;
    });
}

/// A UDP frame padded to the largest LEN a peer may send (69 632 bytes), numbered.
fn max_size(net: &Net, i: u32) -> Frame {
    let mut f = numbered(net, i, 65_000);
    let mut data = f.data.to_vec();
    data.resize(NET_BUFSIZE as usize, 0);
    f.data = data.into();
    f
}

/// Plays the COLO controller on `peer` until `stop` is set: answers every DO_CHECKPOINT with
/// COLO_CHECKPOINT. Returns the number of requests answered.
async fn controller(mut peer: Peer, stop: &AtomicBool) -> u64 {
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        if peer.recv(Duration::from_millis(20)).await.is_some() {
            peer.send_message(b"COLO_CHECKPOINT").await;
            answered += 1;
        }
    }
    answered
}

/// Both inputs send maximum-size frames (69 632 bytes, the same on both sides) as fast as they
/// can, with a controller answering checkpoint requests. Neither side waits for the other, so
/// one may run ahead and fill the budget: from there packets are dropped, counted, logged,
/// and each drop asks for a checkpoint, whose flush makes room again. Once one side has lost
/// frames the two streams are out of step and may never match again, so what is asserted is
/// what must hold whatever the timing: every primary frame is released or dropped, the
/// released ones in order, and memory stays within the budget.
#[test]
fn maximum_size_frames_as_fast_as_possible() {
    run(async {
        const FRAMES: u32 = 1500;
        const BUDGET: u64 = 32 * MIB;
        let name = "flood-max-size";
        let drops = count_lines("intentional drop of a");
        let requests = count_lines("COLO_CHECKPOINT received");
        let rig = start(name, UNIX_LISTEN, BUDGET).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let mut s = rig.connect(Role::SecondaryIn).await;
        let mut out = rig.connect(Role::Outdev).await;
        let notify = rig.connect(Role::NotifyDev).await;
        let net = Net::default();
        let frame = |i: u32| max_size(&net, i);
        reset_peak();
        let before = rss();
        let started = Instant::now();
        let sending = AtomicBool::new(true);
        let finished = AtomicBool::new(false);
        let send = async {
            let primary = async {
                for i in 0..FRAMES {
                    p.send(&frame(i)).await;
                }
            };
            let secondary = async {
                for i in 0..FRAMES {
                    s.send(&frame(i)).await;
                }
            };
            futures::join!(primary, secondary);
            sending.store(false, Ordering::Relaxed);
        };
        let sent = [u64::from(FRAMES); 2];
        let read = async {
            let got = drain_output(
                &mut out,
                FLOOD_WAIT,
                all_out(&rig, sent, &sending),
                |a, b| number(b) > number(a),
            )
            .await;
            finished.store(true, Ordering::Relaxed);
            got
        };
        let (_, (got, broken), answered) =
            futures::join!(send, read, controller(notify, &finished));
        let took = started.elapsed();
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "{FRAMES} maximum-size frames each side in {took:?} ({} MiB/s per side): peak RSS \
             grew {} MiB (budget {} MiB); {got} out, {answered} checkpoints answered; {}",
            u64::from(FRAMES) * u64::from(NET_BUFSIZE) / MIB * 1000
                / (took.as_millis() as u64).max(1),
            grew / MIB,
            BUDGET / MIB,
            summary(&c)
        );
        let t = Instant::now();
        while requests.count() < answered && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            requests.count(),
            answered,
            "every answer was taken as a checkpoint"
        );
        assert_eq!(broken.map(|f| number(&f)), None, "released out of order");
        assert!(got > 0, "the flushes released nothing: {}", summary(&c));
        let over = dropped(&c, Side::Primary, "over-budget");
        assert_eq!(c.dropped_total(Side::Primary), over);
        assert_eq!(got + over + c.held[0], u64::from(FRAMES), "{}", summary(&c));
        // Log lines are written after the counters are published: let them catch up.
        let t = Instant::now();
        while drops.count() < over && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            drops.count(),
            over,
            "every drop is logged, as {:?}",
            drops.first()
        );
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + SLACK,
            "peak RSS grew {grew} bytes"
        );
        finish(rig, out).await;
    });
}

/// The primary sends maximum-size frames as fast as it can and no secondary answers: the
/// budget fills after a few hundred, every later frame is dropped, counted and logged, and
/// memory stays within the budget.
#[test]
fn maximum_size_frames_without_secondary_stay_within_budget() {
    run(async {
        const FRAMES: u32 = 1500;
        const BUDGET: u64 = 16 * MIB;
        let name = "flood-max-size-alone";
        let drops = count_lines("intentional drop of a");
        let rig = start(name, UNIX_LISTEN, BUDGET).await;
        let mut p = rig.connect(Role::PrimaryIn).await;
        let out = rig.connect(Role::Outdev).await;
        let net = Net::default();
        reset_peak();
        let before = rss();
        for i in 0..FRAMES {
            p.send(&max_size(&net, i)).await;
        }
        wait_received(&rig, [u64::from(FRAMES), 0]).await;
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "{FRAMES} maximum-size frames, no secondary: peak RSS grew {} MiB (budget {} MiB); {}",
            grew / MIB,
            BUDGET / MIB,
            summary(&c)
        );
        let over = dropped(&c, Side::Primary, "over-budget");
        let per_frame = u64::from(NET_BUFSIZE) + colo_core::tracker::PACKET_OVERHEAD;
        assert_eq!(
            c.held[0],
            BUDGET / per_frame,
            "held as many as the budget allows"
        );
        assert_eq!(c.held[0] + over, u64::from(FRAMES));
        // Log lines are written after the counters are published: let them catch up.
        let t = Instant::now();
        while drops.count() < over && t.elapsed() < FLOOD_WAIT {
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            drops.count(),
            over,
            "every drop is logged, as {:?}",
            drops.first()
        );
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + SLACK,
            "peak RSS grew {grew} bytes"
        );
        finish(rig, out).await;
    });
}

/// A deterministic stream of pseudo-random bytes.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Framed garbage: plausible lengths (zero, tiny, up to the limit) around random bytes,
    /// now and then a length past the limit, which ends the connection.
    fn framed(&mut self, vnet: bool, frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..frames {
            let len = match self.next() % 16 {
                0 => 0,
                1 => NET_BUFSIZE as usize,
                2..=9 => (self.next() % 128) as usize,
                _ => (self.next() % 4096) as usize,
            };
            let body = self.bytes(len);
            colo_core::frame::encode_parts(
                &body,
                vnet.then(|| (self.next() % 32) as u32),
                &mut out,
            );
        }
        if self.next() % 4 == 0 {
            out.extend_from_slice(&(NET_BUFSIZE + 1 + (self.next() % 1000) as u32).to_be_bytes());
        }
        out
    }
}

/// Garbage on every input, as fast as the peers write it: raw random bytes (an impossible
/// length at once), and framed garbage (random frames of every size, zero-length ones, now
/// and then an impossible length), 40 connections per socket. The daemon closes what cannot
/// be framed, takes what can, stays within its budget, and a matching pair afterwards is
/// compared and released as usual.
#[test]
fn garbage_bytes_on_every_input() {
    run(async {
        const BUDGET: u64 = 16 * MIB;
        let name = "flood-garbage";
        let setup = colo_tests::rig::UNIX_LISTEN_VNET;
        let unsupported = count_lines("unsupported instruction");
        let rig = start(name, setup, BUDGET).await;
        let mut out = rig.connect(Role::Outdev).await;
        let net = setup.net();
        let pair = udp(&net, &Udp::payload(*b"still here"));
        reset_peak();
        let before = rss();
        let send = async {
            let mut sent = 0usize;
            for role in [Role::PrimaryIn, Role::SecondaryIn, Role::NotifyDev] {
                let mut noise = Noise(0x2545_f491_4f6c_dd1d ^ role.name().len() as u64);
                for i in 0..40 {
                    let mut peer = rig.connect(role).await;
                    let bytes = if i % 5 == 0 {
                        noise.bytes(64 * 1024)
                    } else {
                        noise.framed(setup.vnet, 200)
                    };
                    sent += bytes.len();
                    // A write into a connection the daemon closed fails: that is the point.
                    let write = peer.try_send_raw(&bytes);
                    if async_std::future::timeout(FLOOD_WAIT, write).await.is_err() {
                        panic!("{role}: the daemon stopped reading garbage");
                    }
                }
            }
            // A valid pair after the garbage: it is compared and released as usual.
            let mut p = rig.connect(Role::PrimaryIn).await;
            let mut s = rig.connect(Role::SecondaryIn).await;
            p.send(&pair).await;
            s.send(&udp(&net.with_id(77), &Udp::payload(*b"still here")))
                .await;
            sent
        };
        // The garbage the primary sends is mostly released uncompared: read the output all the
        // while, or its buffer fills and the daemon (rightly) stops reading its inputs.
        let read = async {
            let deadline = Instant::now() + FLOOD_WAIT;
            while Instant::now() < deadline {
                if out.recv(Duration::from_millis(100)).await.as_ref() == Some(&pair) {
                    return true;
                }
            }
            false
        };
        let (sent, seen) = futures::join!(send, read);
        assert!(seen, "the valid pair was not released after the garbage");
        let grew = peak().saturating_sub(before);
        let c = rig.counters();
        eprintln!(
            "garbage: {} MiB sent over 120 connections: peak RSS grew {} MiB; {} unsupported              controller messages; {}",
            sent as u64 / MIB,
            grew / MIB,
            unsupported.count(),
            summary(&c)
        );
        assert!(c.received[0] > 0 && c.received[1] > 0 && c.empty_frames[0] > 0);
        assert!(unsupported.count() > 0);
        assert_eq!(
            c.dropped_total(Side::Primary),
            dropped(&c, Side::Primary, "over-budget")
        );
        assert!(
            grew <= BUDGET + OUTPUT_BUFFER + SLACK,
            "peak RSS grew {grew} bytes"
        );
        if let Err(e) = c.check() {
            panic!("{e}");
        }
        finish(rig, out).await;
    });
}
