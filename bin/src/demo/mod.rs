//! `colo-compare demo`: the real daemon on UNIX sockets in a temporary directory, two
//! synthetic guests, a COLO controller and an output peer, all in this process; a live line
//! per second and a final report. It shows on a laptop what the daemon does for a COLO pair.

mod ledger;
mod peers;
mod report;
mod traffic;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_std::future::timeout;
use async_std::task;
use colo_actors::{Daemon, Endpoint, PipelineConfig, StartError};
use colo_core::{Counters, Side};
use log::LevelFilter;
use thiserror::Error;

use crate::cli::LogArgs;
use crate::config::{self, DaemonConfig, LogConfig};
use crate::logging::level::Level;
use crate::logging::{self, SetupError};
use ledger::Ledger;
use peers::ControllerLog;
use report::{Report, live_line};

/// The secondary guest starts each phase this much after the primary, as a replica lags.
const SECONDARY_LAG: Duration = Duration::from_millis(15);
/// How long to wait for held frames to come out once the guests are done.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);
/// How long the shutdown drain may take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    /// No temporary directory for the sockets.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    /// The embedded pipeline is invalid (a bug).
    #[error("the demo configuration is invalid: {0}")]
    Config(String),
    /// The traffic could not be built (a bug).
    #[error(transparent)]
    Traffic(#[from] traffic::BuildError),
    /// The daemon did not start.
    #[error("the daemon did not start: {0}")]
    Start(#[from] StartError),
    /// A peer could not reach the daemon.
    #[error("the {role} cannot connect to the daemon: {source}")]
    Connect {
        /// Which peer.
        role: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A peer's connection failed.
    #[error("the {role}'s connection failed: {source}")]
    Io {
        /// Which peer.
        role: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The daemon sent a peer something that is not a frame stream.
    #[error("the {role} received a malformed stream: {problem}")]
    Framing {
        /// Which peer.
        role: &'static str,
        /// What the decoder said.
        problem: String,
    },
}

/// Runs the demo; exit 0 when every primary frame was released exactly once.
pub fn demo(log: &LogArgs) -> ExitCode {
    let quiet = LogConfig {
        level: Level(LevelFilter::Warn),
        ..LogConfig::default()
    };
    if let Err(e) = logging::setup(&quiet, log) {
        eprintln!("{e}");
        return ExitCode::from(match e {
            SetupError::Directive(_) => 2,
            SetupError::Install(_) => 1,
        });
    }
    match task::block_on(play()) {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            if report.problems().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("colo-compare demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// The counters of the demo's only pipeline.
fn only_pipeline(stats: Vec<(String, Counters)>) -> Counters {
    stats.into_iter().next().map(|(_, c)| c).unwrap_or_default()
}

async fn play() -> Result<Report, DemoError> {
    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let path = |name: &str| dir.path().join(name);
    let mut pipeline = PipelineConfig::new(
        "demo",
        Endpoint::UnixListen(path("primary_in.sock")),
        Endpoint::UnixListen(path("secondary_in.sock")),
        Endpoint::UnixListen(path("outdev.sock")),
    );
    pipeline.notify_dev = Some(Endpoint::UnixListen(path("notify_dev.sock")));
    pipeline.compare_timeout = 500;
    pipeline.expired_scan_cycle = 100;
    let demo_config = DaemonConfig {
        log: LogConfig::default(),
        control_socket: None,
        metrics: None,
        metrics_allow_remote: false,
        pipelines: vec![pipeline.clone()],
    };
    config::check(&demo_config)
        .map_err(|p| DemoError::Config(format!("{}: {}", p.path, p.problem)))?;

    let script = Arc::new(traffic::script()?);
    println!(
        "colo-compare demo: one pipeline on UNIX sockets in {}",
        dir.path().display()
    );
    println!(
        "  compare_timeout {} ms, expired_scan_cycle {} ms; the primary guest sends {} frames, \
         the secondary {} (same data, own IP IDs, TCP timestamps and segmentation)",
        pipeline.compare_timeout,
        pipeline.expired_scan_cycle,
        script.primary_frames(),
        script.secondary_frames()
    );
    for (i, phase) in script.phases.iter().enumerate() {
        let ending = phase.divergence.as_ref().map_or(String::new(), |d| {
            format!(", then differs in {}", d.description)
        });
        println!("  phase {}: {}{ending}", i + 1, phase.name);
    }

    let daemon = Daemon::start(vec![pipeline]).await?;
    let started = Instant::now();
    let output = peers::connect(&path("outdev.sock"), "output peer").await?;
    let notify = peers::connect(&path("notify_dev.sock"), "COLO controller").await?;
    let primary = peers::connect(&path("primary_in.sock"), "primary guest").await?;
    let secondary = peers::connect(&path("secondary_in.sock"), "secondary guest").await?;

    let ledger = Arc::new(Ledger::default());
    let controller_log = Arc::new(ControllerLog::default());
    let output_task = task::spawn(peers::output(output, Arc::clone(&ledger)));
    let controller_task = task::spawn(peers::controller(notify, Arc::clone(&controller_log)));
    let primary_task = task::spawn(peers::guest(
        Side::Primary,
        primary,
        Arc::clone(&script),
        Arc::clone(&ledger),
        Duration::ZERO,
    ));
    let secondary_task = task::spawn(peers::guest(
        Side::Secondary,
        secondary,
        Arc::clone(&script),
        Arc::clone(&ledger),
        SECONDARY_LAG,
    ));

    let answered = || controller_log.requests.load(Ordering::Relaxed);
    let mut guests = Box::pin(async { (primary_task.await, secondary_task.await) });
    let mut next_line = started + Duration::from_secs(1);
    let (p, s) = loop {
        let wait = next_line.saturating_duration_since(Instant::now());
        match timeout(wait, &mut guests).await {
            Ok(done) => break done,
            Err(_) => {
                println!(
                    "{}",
                    live_line(
                        started.elapsed(),
                        &only_pipeline(daemon.stats()),
                        answered()
                    )
                );
                next_line += Duration::from_secs(1);
            }
        }
    };
    p?;
    s?;
    let settle_until = Instant::now() + SETTLE_LIMIT;
    while ledger.pending() > 0 && Instant::now() < settle_until {
        task::sleep(Duration::from_millis(10)).await;
        if Instant::now() >= next_line {
            println!(
                "{}",
                live_line(
                    started.elapsed(),
                    &only_pipeline(daemon.stats()),
                    answered()
                )
            );
            next_line += Duration::from_secs(1);
        }
    }

    let shutdown = daemon.shutdown(SHUTDOWN_GRACE).await;
    let output_until = Instant::now() + SHUTDOWN_GRACE;
    while ledger.pending() > 0 && Instant::now() < output_until {
        task::sleep(Duration::from_millis(10)).await;
    }
    // The daemon has closed its side; whatever the peers still do no longer matters.
    drop(output_task.cancel().await);
    drop(controller_task.cancel().await);
    let (released_at_shutdown, unwritten, counters) = shutdown
        .pipelines
        .into_iter()
        .next()
        .map(|p| (p.released_at_shutdown, p.unwritten, p.counters))
        .unwrap_or_default();
    Ok(Report {
        primary_sent: script.primary_frames(),
        secondary_sent: script.secondary_frames(),
        counters,
        released_at_shutdown,
        unwritten,
        missing: ledger.pending(),
        unexpected: ledger.unexpected(),
        answered: answered(),
        handshake: controller_log.handshake.load(Ordering::Relaxed) > 0,
        divergences: script.divergences().map(|d| d.description).collect(),
        held: ledger.held_times(),
        elapsed: started.elapsed(),
    })
}
