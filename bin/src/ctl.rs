//! `colo-compare ctl`: the control socket's client, for operators (friendly text) and scripts
//! (`--json`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{CtlArgs, CtlCommand};
use crate::config;
use crate::control::protocol::{
    Done, FlowFilter, Flows, PipelineStats, Reloaded, Request, Response, ShutdownDone, Stats,
};
use crate::counts::counts;

/// How long to wait for an answer; a shutdown drain may wait for an absent output peer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the command, prints the answer; exit 0 when carried out, 1 when not, 2 for usage.
pub fn ctl(args: &CtlArgs) -> ExitCode {
    let socket = match socket_path(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let request = request(&args.command);
    let response = match exchange(&socket, &request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", socket.display());
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string(&response) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("cannot print the response: {e}"),
        }
    } else if let Some(result) = response.result.clone() {
        if let Err(e) = print(&args.command, result) {
            eprintln!("unexpected response: {e}");
            return ExitCode::from(1);
        }
    }
    match (response.ok, response.error) {
        (true, _) => ExitCode::SUCCESS,
        (false, error) => {
            if !args.json {
                eprintln!("{}", error.as_deref().unwrap_or("the daemon refused"));
            }
            ExitCode::from(1)
        }
    }
}

fn socket_path(args: &CtlArgs) -> Result<PathBuf, String> {
    if let Some(p) = &args.socket {
        return Ok(p.clone());
    }
    let Some(file) = &args.config else {
        return Err(
            "ctl: give the control socket with --socket PATH, or the daemon's \
                    configuration file with --config FILE"
                .into(),
        );
    };
    let c = config::load(file).map_err(|e| e.to_string())?;
    c.control_socket
        .ok_or_else(|| format!("{}: no control_socket is configured", file.display()))
}

fn request(command: &CtlCommand) -> Request {
    match command {
        CtlCommand::Stats => Request::Stats,
        CtlCommand::Flows {
            pipeline,
            matching,
            min_held,
            limit,
        } => Request::Flows(FlowFilter {
            pipeline: pipeline.clone(),
            matching: matching.clone(),
            min_held: *min_held,
            limit: *limit,
        }),
        CtlCommand::Checkpoint { pipeline } => Request::Checkpoint {
            pipeline: pipeline.clone(),
        },
        CtlCommand::Failover { pipeline } => Request::Failover {
            pipeline: pipeline.clone(),
        },
        CtlCommand::Shutdown => Request::Shutdown,
        CtlCommand::Reload => Request::Reload,
    }
}

fn exchange(socket: &PathBuf, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::other("the daemon closed the connection"));
    }
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

fn print(command: &CtlCommand, result: serde_json::Value) -> Result<(), serde_json::Error> {
    match command {
        CtlCommand::Stats => {
            let stats: Stats = serde_json::from_value(result)?;
            for p in &stats.pipelines {
                print!("{}", stats_text(p));
            }
        }
        CtlCommand::Flows { .. } => print!("{}", flows_text(&serde_json::from_value(result)?)),
        CtlCommand::Checkpoint { .. } => {
            let done: Done = serde_json::from_value(result)?;
            println!(
                "checkpoint flush done: {} (every held primary packet released)",
                done.pipelines.join(", ")
            );
        }
        CtlCommand::Failover { .. } => {
            let done: Done = serde_json::from_value(result)?;
            println!(
                "failover done: {}: held packets released; the primary now passes straight through",
                done.pipelines.join(", ")
            );
        }
        CtlCommand::Shutdown => {
            let done: ShutdownDone = serde_json::from_value(result)?;
            for p in &done.pipelines {
                println!(
                    "{}: drained, {} held primary packets released at shutdown, {} unwritten",
                    p.name, p.released_at_shutdown, p.unwritten
                );
            }
            println!("the daemon is exiting");
        }
        CtlCommand::Reload => {
            let r: Reloaded = serde_json::from_value(result)?;
            if r.changes.is_empty() {
                println!("reloaded: the file changes nothing");
            }
            for c in &r.changes {
                println!("reloaded: {c}");
            }
        }
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// One pipeline's `stats`, as a block of aligned lines.
pub fn stats_text(p: &PipelineStats) -> String {
    let mut mode = String::new();
    if p.observe {
        mode.push_str(" (observe mode: primary released at once, no checkpoint requested)");
    }
    if p.failed_over {
        mode.push_str(" (failed over: the primary passes straight through)");
    }
    let mut out = format!("pipeline {}{mode}\n", p.name);
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<12} {v}\n"));
    line(
        "received",
        format!(
            "primary {}, secondary {}",
            p.received.primary, p.received.secondary
        ),
    );
    line("released", counts(&p.released));
    let dropped: Vec<String> = p
        .dropped
        .iter()
        .map(|(side, m)| format!("{side} {}", counts(m)))
        .collect();
    line(
        "dropped",
        if dropped.is_empty() {
            "0".into()
        } else {
            dropped.join("; ")
        },
    );
    line(
        "held now",
        format!(
            "primary {}, secondary {}, {} in {} connections",
            p.held.primary,
            p.held.secondary,
            bytes(p.held_bytes),
            p.connections
        ),
    );
    line("checkpoints", counts(&p.checkpoints));
    if p.observe {
        line(
            "would-be",
            format!("checkpoints {}", counts(&p.would_checkpoints)),
        );
        line("would-be", format!("releases {}", counts(&p.would_release)));
    }
    line("flushes", p.flushes.to_string());
    let h = &p.held_ms;
    line(
        "held time",
        format!(
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} releases)",
            h.p50, h.p90, h.p99, h.max, h.count
        ),
    );
    for c in &p.comparators {
        line(
            "comparator",
            format!(
                "{}: matched {}, mismatched {}, {} connections",
                c.name, c.matched, c.mismatched, c.connections
            ),
        );
    }
    let o = &p.output;
    line(
        "output",
        format!(
            "{}, {} frames ({}) buffered, {} written",
            if o.connected {
                "connected"
            } else {
                "not connected"
            },
            o.buffered_frames,
            bytes(o.buffered_bytes),
            o.written_frames
        ),
    );
    if let Some(c) = &p.capture {
        line(
            "capture",
            format!(
                "{}: {} mismatches written, {} skipped, {}",
                c.path,
                c.written,
                c.skipped,
                bytes(c.bytes)
            ),
        );
    }
    out
}

/// The `flows` table.
pub fn flows_text(f: &Flows) -> String {
    if f.flows.is_empty() {
        return format!("no tracked connection matches ({} in all)\n", f.total);
    }
    let rows: Vec<[String; 6]> = f
        .flows
        .iter()
        .map(|e| {
            [
                e.pipeline.clone(),
                e.flow.clone(),
                e.comparator.clone(),
                format!("{}/{}", e.held.primary, e.held.secondary),
                bytes(e.held_bytes),
                e.oldest_age_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms")),
            ]
        })
        .collect();
    let titles = [
        "PIPELINE",
        "FLOW",
        "COMPARATOR",
        "HELD P/S",
        "BYTES",
        "OLDEST",
    ];
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(titles[i].len())
        })
        .collect();
    let mut out = String::new();
    let mut row = |cells: &[String]| {
        let mut line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        if let Some(last) = line.last_mut() {
            *last = last.trim_end().to_string();
        }
        out.push_str(&line.join("  "));
        out.push('\n');
    };
    row(&titles.map(String::from));
    for r in &rows {
        row(r);
    }
    if f.total > f.flows.len() {
        out.push_str(&format!("({} of {} shown)\n", f.flows.len(), f.total));
    }
    out
}
