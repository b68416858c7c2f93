//! `colo-compare demo`, the first command of the README: it finishes by itself, releases every
//! primary frame exactly once and requests checkpoints for its planted divergences.

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_colo-compare");

/// The number after `label` on the report line that starts with it.
fn number(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{report}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// The count of one reason on the checkpoint requests line: `3 (mismatch 2, timeout 1)`.
fn reason(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find(|l| l.trim_start().starts_with("checkpoint requests:"))
        .and_then(|l| {
            l.split(['(', ',', ')'])
                .map(str::trim)
                .find_map(|part| part.strip_prefix(name)?.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn the_demo_releases_every_primary_frame_and_checkpoints_its_divergences() {
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("demo")
        .env_remove("COLO_LOG")
        .output()
        .expect("colo-compare demo runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    let sent = number(&report, "primary frames sent:");
    assert!(sent > 100, "{report}");
    assert!(number(&report, "secondary frames sent:") > sent);
    assert_eq!(number(&report, "released:"), sent, "{report}");
    assert_eq!(number(&report, "output peer received:"), sent, "{report}");
    assert!(
        report.contains("dropped:                primary 0,"),
        "no primary frame dropped:\n{report}"
    );
    let checkpoints = number(&report, "checkpoint requests:");
    assert!(checkpoints >= 3, "one per planted divergence:\n{report}");
    // A loaded machine may add timeouts; the planted ones are always there.
    assert!(reason(&report, "mismatch") >= 2, "{report}");
    assert!(reason(&report, "timeout") >= 1, "{report}");
    assert_eq!(number(&report, "injected divergences:"), 3);
    for line in [
        "colo-compare demo report",
        "frames received:",
        "checkpoint-flush",
        "controller:             answered",
        "held time (sent→out):   p50 ",
        "result:                 OK",
    ] {
        assert!(
            report.contains(line),
            "the report lacks {line:?}:\n{report}"
        );
    }
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("[ 1.0s] received primary ")),
        "no live summary line:\n{report}"
    );
}
