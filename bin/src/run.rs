//! `colo-compare run`: load the configuration, start the daemon, and serve until SIGTERM or
//! SIGINT, which drain every pipeline (D-LOSS-1) before exit.

use std::process::ExitCode;
use std::time::Duration;

use colo_actors::{Daemon, PipelineConfig};
use colo_core::{Counters, Side};
use log::{error, info, warn};

use crate::cli::{PipelineArgs, RunArgs};
use crate::config::{self, DaemonConfig, LoadError};
use crate::logging::{self, LogHandle, SetupError};
use crate::signals::{Request, SignalListener};

/// How long the shutdown drain waits for an absent output peer before giving up on what it
/// could not write (and saying how much).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the configuration came from.
enum Origin {
    File,
    CommandLine,
    Embedded,
}

fn resolve(args: &RunArgs) -> Result<(DaemonConfig, Origin), LoadError> {
    if let Some(path) = &args.config {
        return Ok((config::load(path)?, Origin::File));
    }
    match pipeline_from_args(&args.pipeline) {
        Some(p) => Ok((config::from_command_line(p)?, Origin::CommandLine)),
        None => Ok((config::embedded_default()?, Origin::Embedded)),
    }
}

/// The pipeline the options describe; `None` without endpoints (clap requires all three
/// together, and every other pipeline option requires them).
fn pipeline_from_args(a: &PipelineArgs) -> Option<PipelineConfig> {
    let (Some(primary), Some(secondary), Some(outdev)) =
        (&a.primary_in, &a.secondary_in, &a.outdev)
    else {
        return None;
    };
    let mut p = PipelineConfig::new("nic0", primary.clone(), secondary.clone(), outdev.clone());
    p.notify_dev = a.notify_dev.clone();
    p.compare_timeout = a.compare_timeout.unwrap_or(p.compare_timeout);
    p.expired_scan_cycle = a.expired_scan_cycle.unwrap_or(p.expired_scan_cycle);
    p.max_queue_size = a.max_queue_size.unwrap_or(p.max_queue_size);
    p.vnet_hdr_support = a.vnet_hdr_support;
    Some(p)
}

/// Runs the daemon to completion; the exit code says how it ended.
pub fn run(args: &RunArgs) -> ExitCode {
    let (config, origin) = match resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let log = match logging::setup(&config.log, &args.log) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(match e {
                SetupError::Directive(_) => 2,
                SetupError::Install(_) => 1,
            });
        }
    };
    match origin {
        Origin::Embedded => info!(
            "no --config and no --primary-in/--secondary-in/--outdev given: using the embedded \
             default configuration (pipeline nic0: tcp-listen on 127.0.0.1 ports 9001 primary_in, \
             9002 secondary_in, 9003 outdev, 9004 notify_dev)"
        ),
        Origin::CommandLine => info!("one pipeline from the command line"),
        Origin::File => {}
    }
    if let Some(path) = &config.control_socket {
        info!(
            "control_socket {} is reserved for a later version and not served yet",
            path.display()
        );
    }
    let signals = match SignalListener::start() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    async_std::task::block_on(serve(config.pipelines, signals, log))
}

async fn serve(
    pipelines: Vec<PipelineConfig>,
    mut signals: SignalListener,
    log: LogHandle,
) -> ExitCode {
    let count = pipelines.len();
    let daemon = match Daemon::start(pipelines).await {
        Ok(d) => d,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    for (pipeline, role, addr) in daemon.local_addrs() {
        info!("pipeline {pipeline}: {role} listening on {addr}");
    }
    info!(
        "colo-compare {} running {count} pipeline(s); SIGTERM or SIGINT releases every held \
         packet and exits, SIGHUP reopens the log file",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match signals.next().await {
            Some(Request::ReopenLog) => log.reopen(),
            Some(Request::Shutdown(signal)) => {
                info!("{signal}: shutting down, releasing every held primary packet");
                break;
            }
            None => {
                warn!("the signal listener stopped; shutting down");
                break;
            }
        }
    }
    let report = daemon.shutdown(SHUTDOWN_GRACE).await;
    let mut total = Counters::default();
    let (mut released_at_shutdown, mut unwritten) = (0, 0);
    for p in &report.pipelines {
        released_at_shutdown += p.released_at_shutdown;
        unwritten += p.unwritten;
        add(&mut total, &p.counters);
    }
    let line = format!(
        "shutdown complete ({} pipeline(s)): released {released_at_shutdown} held packets at \
         shutdown, {unwritten} released frames unwritten; received primary {} secondary {}, \
         released {}, dropped primary {} secondary {}, checkpoint requests {}",
        report.pipelines.len(),
        total.received[Side::Primary.index()],
        total.received[Side::Secondary.index()],
        total.released_total(),
        total.dropped_total(Side::Primary),
        total.dropped_total(Side::Secondary),
        total.checkpoints_total(),
    );
    if unwritten > 0 {
        warn!("{line}");
    } else {
        info!("{line}");
    }
    ExitCode::SUCCESS
}

/// Adds the counts the summary line reports.
fn add(total: &mut Counters, c: &Counters) {
    for side in Side::BOTH {
        let i = side.index();
        total.received[i] += c.received[i];
        for (t, n) in total.dropped[i].iter_mut().zip(&c.dropped[i]) {
            *t += n;
        }
    }
    for (t, n) in total.released.iter_mut().zip(&c.released) {
        *t += n;
    }
    for (t, n) in total.checkpoints.iter_mut().zip(&c.checkpoints) {
        *t += n;
    }
}
