//! `colo-compare replay`: captures made by the test, and a pair captured from real traffic
//! (two runs of dnsmasq, one per network namespace; see tests/data/make-pcaps.sh), replayed
//! through the real program with the report read back as JSON and as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use colo_core::{Timestamp, pcap};
use etherparse::PacketBuilder;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_colo-compare");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

fn replay(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("replay")
        .args(args)
        .output()
        .expect("colo-compare runs")
}

fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn real_dns_traffic_from_two_hosts_replays_to_its_one_divergence() {
    let (p, s) = (data("dns-primary.pcap"), data("dns-secondary.pcap"));
    let r = report(&replay(&[path(&p), path(&s), "--align-start", "--json"]));
    assert_eq!(r["frames"]["primary"], 12);
    assert_eq!(r["frames"]["secondary"], 12);
    // Ten answers agree; the TXT record the two servers hold differently is asked twice.
    assert_eq!(r["released"]["matched"], 10);
    assert_eq!(r["released"]["checkpoint-flush"], 2);
    assert_eq!(r["flushed_at_end"], 0);
    let cps = r["checkpoints"].as_array().expect("a list");
    assert_eq!(cps.len(), 2);
    for cp in cps {
        assert_eq!(cp["reason"], "mismatch");
        assert_eq!(cp["comparator"], "dns");
        assert_eq!(cp["field"], "dns answer record");
        assert_eq!(cp["flow"], "udp 10.77.0.2:53 > 10.77.0.1:40053");
        assert_eq!(cp["would_be"], false);
    }
    assert!(
        r["held_ms"]["p50"].as_f64().is_some_and(|ms| ms > 0.0),
        "{r}"
    );

    // The runs were seconds apart: unaligned, the primary's answers time out instead.
    let r = report(&replay(&[path(&p), path(&s), "--json"]));
    assert_eq!(r["checkpoints"][0]["reason"], "timeout");
    assert!(r["released"].get("matched").is_none(), "{r}");

    let text = replay(&[path(&p), path(&s), "--align-start"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("frames          primary 12, secondary 12"),
        "{text}"
    );
    assert!(
        text.contains("released        12 (checkpoint-flush 2, matched 10)"),
        "{text}"
    );
    assert!(
        text.contains(
            "mismatch on udp 10.77.0.2:53 > 10.77.0.1:40053 (dns comparator): first \
             difference at byte 80 (dns answer record)"
        ),
        "{text}"
    );
}

fn udp(src_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(src_port, 7000)
        .write(&mut out, payload)
        .expect("builds");
    out
}

/// A classic pcap of `frames`, each at its time in ms after an epoch second.
fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut file = pcap::file_header().to_vec();
    for (ms, frame) in frames {
        pcap::write_record(
            &mut file,
            Timestamp::from_millis(1_700_000_000_000 + ms),
            frame,
        );
    }
    std::fs::write(path, file).expect("write the capture");
}

/// A match, a mismatch (answered at once) and a frame the secondary never sent.
fn captures(dir: &Path) -> (PathBuf, PathBuf) {
    let (p, s) = (dir.join("p.pcap"), dir.join("s.pcap"));
    write_pcap(
        &p,
        &[
            (0, udp(1, b"same")),
            (10, udp(2, b"primary")),
            (20, udp(3, b"never answered")),
        ],
    );
    write_pcap(&s, &[(2, udp(1, b"same")), (12, udp(2, b"second"))]);
    (p, s)
}

#[test]
fn captures_made_here_report_every_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, s) = captures(dir.path());
    let r = report(&replay(&[path(&p), path(&s), "--json"]));
    assert_eq!(r["frames"]["primary"], 3);
    assert_eq!(r["released"]["matched"], 1);
    assert_eq!(r["released"]["checkpoint-flush"], 1);
    assert_eq!(r["flushed_at_end"], 1);
    assert_eq!(r["dropped"]["secondary"]["matched"], 1);
    let cp = &r["checkpoints"][0];
    assert_eq!(cp["reason"], "mismatch");
    assert_eq!(cp["time_ms"], 12.0);
    assert_eq!(cp["comparator"], "udp");
    assert_eq!(cp["field"], "udp length");
    assert_eq!(r["held_ms"]["max"], 2.0);

    // Unanswered requests: the mismatching pair stays held to the end.
    let r = report(&replay(&[path(&p), path(&s), "--no-flush", "--json"]));
    assert!(r["released"].get("checkpoint-flush").is_none(), "{r}");
    assert_eq!(r["flushed_at_end"], 2);
}

#[test]
fn a_pipeline_of_a_configuration_file_is_replayed_with_its_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, s) = captures(dir.path());
    let config = dir.path().join("c.ron");
    let pipeline = |name: &str, n: u32, extra: &str| {
        format!(
            r#"(name: "{name}", primary_in: "unix-listen:/tmp/{n}p", secondary_in: "unix-listen:/tmp/{n}s",
               outdev: "unix-listen:/tmp/{n}o", {extra})"#
        )
    };
    std::fs::write(
        &config,
        format!(
            "(pipelines: [{}, {}])",
            pipeline("strict", 1, ""),
            pipeline(
                "calibrating",
                2,
                r#"observe: true, comparators: (disabled: ["udp"])"#
            )
        ),
    )
    .expect("write");
    let out = replay(&[path(&p), path(&s), "--config", path(&config)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("choose one with --pipeline (strict, calibrating)"),
        "{err}"
    );

    let r = report(&replay(&[
        path(&p),
        path(&s),
        "--config",
        path(&config),
        "--pipeline",
        "calibrating",
        "--json",
    ]));
    // Observe mode: everything out on arrival, the mismatch a would-be request; without the
    // udp comparator the IP fallback compares.
    assert_eq!(r["released"]["observed"], 3);
    assert_eq!(r["would_release"]["matched"], 1);
    let cp = &r["checkpoints"][0];
    assert_eq!(
        (cp["would_be"].clone(), cp["comparator"].clone()),
        (Value::Bool(true), Value::from("ip"))
    );
}

#[test]
fn unreadable_captures_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, _) = captures(dir.path());
    let missing = dir.path().join("missing.pcap");
    let out = replay(&[path(&p), path(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}: cannot read", missing.display())),
        "{err}"
    );
    let ng = dir.path().join("ng.pcapng");
    std::fs::write(&ng, [0x0a, 0x0d, 0x0d, 0x0a].repeat(8)).expect("write");
    let out = replay(&[path(&p), path(&ng)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pcapng is not supported"));
}
