//! `colo-compare replay PRIMARY.pcap SECONDARY.pcap`: the engine run over two captures, in
//! timestamp order with the captures' clock, with a pipeline's settings and comparators, and a
//! report of what it decided: how an operator reproduces a checkpoint storm from `tcpdump`
//! captures taken on the two hosts.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use colo_core::pcap::Reader;
use colo_core::registry::{ComparatorsConfig, Registry};
use colo_core::replay::{ReplayOptions, ReplayReport, replay as run_replay};
use colo_core::{Frame, Timestamp, TrackerConfig};

use crate::cli::ReplayArgs;
use crate::config;
use crate::counts::counts;

/// Frames of one capture, with their capture times.
type Capture = Vec<(Timestamp, Frame)>;

/// Runs the replay and prints the report; exit 0 after a replay, 1 when a capture cannot be
/// read, 2 for a configuration mistake.
pub fn replay(args: &ReplayArgs) -> ExitCode {
    let (pipeline, tracker, comparators) = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let registry = match Registry::build(&comparators) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("{pipeline}: {e}");
            return ExitCode::from(2);
        }
    };
    let (primary, secondary) = match (read(&args.primary), read(&args.secondary)) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let options = ReplayOptions {
        align_start: args.align_start,
        flush_on_request: !args.no_flush,
    };
    let observe = tracker.observe;
    let report = run_replay(primary, secondary, tracker, registry, options);
    if args.json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        let heading = format!(
            "replay of {} (primary) and {} (secondary) with {pipeline}{}{}{}",
            args.primary.display(),
            args.secondary.display(),
            if observe { ", observe mode" } else { "" },
            if args.align_start {
                ", secondary aligned to the primary's start"
            } else {
                ""
            },
            if args.no_flush {
                ", checkpoint requests not answered"
            } else {
                ", every checkpoint request answered at once"
            },
        );
        print!("{}", text(&heading, &report));
    }
    ExitCode::SUCCESS
}

/// The chosen pipeline's name (for messages), engine settings and comparators.
fn settings(args: &ReplayArgs) -> Result<(String, TrackerConfig, ComparatorsConfig), String> {
    let Some(file) = &args.config else {
        if let Some(name) = &args.pipeline {
            return Err(format!("--pipeline {name} needs --config FILE"));
        }
        return Ok((
            "the default settings".into(),
            TrackerConfig::default(),
            ComparatorsConfig::default(),
        ));
    };
    let c = config::load(file).map_err(|e| e.to_string())?;
    let names: Vec<&str> = c.pipelines.iter().map(|p| p.name.as_str()).collect();
    let chosen = match &args.pipeline {
        Some(name) => c
            .pipelines
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| {
                format!(
                    "{}: no pipeline named \"{name}\" (pipelines: {})",
                    file.display(),
                    names.join(", ")
                )
            })?,
        None if c.pipelines.len() == 1 => &c.pipelines[0],
        None => {
            return Err(format!(
                "{} has {} pipelines: choose one with --pipeline ({})",
                file.display(),
                names.len(),
                names.join(", ")
            ));
        }
    };
    Ok((
        format!("pipeline {} of {}", chosen.name, file.display()),
        chosen.tracker_config(),
        chosen.comparators.clone(),
    ))
}

/// The frames of a classic pcap file. A truncated last record (a capture cut short) is
/// warned about and the frames before it are used.
fn read(path: &Path) -> Result<Capture, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let reader = Reader::new(&bytes).map_err(|e| format!("{shown}: {e}"))?;
    let mut frames = Vec::new();
    let mut cut = 0u64;
    for record in reader {
        match record {
            Ok(r) => {
                if (r.data.len() as u64) < u64::from(r.orig_len) {
                    cut += 1;
                }
                frames.push((r.ts, Frame::new(r.data.to_vec())));
            }
            Err(e) => {
                eprintln!(
                    "warning: {shown}: {e}; replaying the {} frames before it",
                    frames.len()
                );
                break;
            }
        }
    }
    if cut > 0 {
        eprintln!(
            "warning: {shown}: {cut} frames were cut by the capture's snap length and are \
             compared as captured (capture with -s 0 to keep whole frames)"
        );
    }
    Ok(frames)
}

/// The human report.
pub fn text(heading: &str, r: &ReplayReport) -> String {
    let mut out = format!("{heading}\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15} {v}\n"));
    line(
        "frames",
        format!(
            "primary {}, secondary {}",
            r.frames.primary, r.frames.secondary
        ),
    );
    line("released", counts(&r.released));
    if !r.would_release.is_empty() {
        line("would release", counts(&r.would_release));
    }
    for (side, m) in &r.dropped {
        line(&format!("dropped {side}"), counts(m));
    }
    let requested = r.checkpoints.iter().filter(|c| !c.would_be).count();
    let would = r.checkpoints.len() - requested;
    let mut summary = format!("{requested} requested");
    if would > 0 {
        summary.push_str(&format!(", {would} would-be (observe mode)"));
    }
    line("checkpoints", summary);
    let h = &r.held_ms;
    line(
        "held time",
        format!(
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            h.p50, h.p90, h.p99, h.max
        ),
    );
    line(
        "flushed at end",
        format!(
            "{} primary frames were still held when the captures ended",
            r.flushed_at_end
        ),
    );
    for c in &r.checkpoints {
        out.push_str(&format!(
            "  {:>12.3} ms  {}{}\n",
            c.time_ms,
            if c.would_be { "(would be) " } else { "" },
            c.detail
        ));
    }
    out
}
