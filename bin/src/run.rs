//! `colo-compare run`: load the configuration, start the daemon, serve the metrics endpoint
//! and the control socket when configured, and serve until SIGTERM, SIGINT or the control
//! socket's `shutdown`, which drain every pipeline (D-LOSS-1) before exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_std::net::TcpListener;
use async_std::os::unix::net::UnixListener;
use colo_actors::{BeaconConfig, Daemon, PipelineConfig};
use colo_core::{Counters, Side};
use futures::channel::mpsc;
use futures::future::{Either, select};
use futures::lock::Mutex;
use futures::{FutureExt, StreamExt};
use log::{error, info, warn};

use crate::cli::{PipelineArgs, RunArgs};
use crate::config::{self, DaemonConfig, LoadError};
use crate::control::protocol::{Drained, ShutdownDone};
use crate::control::server::{self as control, Context, ReloadSource, ShutdownRequest};
use crate::http;
use crate::logging::{self, LogHandle, SetupError};
use crate::metrics;
use crate::signals::{Request, SignalListener};

/// How long the shutdown drain waits for an absent output peer before giving up on what it
/// could not write (and saying how much).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long exit waits for the control socket to send `shutdown`'s answer.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

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
    if let (Some(primary_in), Some(secondary_in), Some(outdev)) = (
        &a.beacon_primary_in,
        &a.beacon_secondary_in,
        &a.beacon_outdev,
    ) {
        p.beacon = Some(BeaconConfig {
            primary_in: primary_in.clone(),
            secondary_in: secondary_in.clone(),
            outdev: outdev.clone(),
            qmp: a.beacon_qmp.clone(),
        });
    }
    Some(p)
}

/// Runs the daemon to completion; the exit code says how it ended.
pub fn run(args: &RunArgs) -> ExitCode {
    let (mut config, origin) = match resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.observe {
        for p in &mut config.pipelines {
            p.observe = true;
        }
    }
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
    for p in config.pipelines.iter().filter(|p| p.observe) {
        info!(
            "pipeline {}: observe mode: every primary packet is released at once and no \
             checkpoint is requested; would-be checkpoints are counted and logged",
            p.name
        );
    }
    let signals = match SignalListener::start() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let service = Service {
        file: args.config.clone(),
        log: Arc::new(log),
        log_args: args.log.clone(),
        observe: args.observe,
    };
    async_std::task::block_on(serve(config, signals, service))
}

/// What serving needs besides the configuration.
struct Service {
    /// The configuration file, for `reload`.
    file: Option<PathBuf>,
    log: Arc<LogHandle>,
    log_args: crate::cli::LogArgs,
    /// `--observe` was given.
    observe: bool,
}

/// The operator interfaces' listeners, bound before the daemon starts so that a taken port
/// or path is a start error like any other.
struct Listeners {
    metrics: Option<TcpListener>,
    control: Option<(UnixListener, PathBuf)>,
}

async fn listeners(config: &DaemonConfig) -> Result<Listeners, String> {
    let metrics = match &config.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr.as_str())
                .await
                .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let control = match &config.control_socket {
        Some(path) => Some((
            colo_actors::bind_unix(path)
                .await
                .map_err(|e| format!("cannot open the control socket {}: {e}", path.display()))?,
            path.clone(),
        )),
        None => None,
    };
    Ok(Listeners { metrics, control })
}

/// Removes the control socket's file when serving ends, however it ends.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Why the serving loop ended.
enum Stop {
    Signal(&'static str),
    Control(ShutdownRequest),
    ListenerGone,
}

async fn serve(config: DaemonConfig, mut signals: SignalListener, service: Service) -> ExitCode {
    let count = config.pipelines.len();
    let listeners = match listeners(&config).await {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(1);
        }
    };
    let _remove = RemoveOnDrop(listeners.control.as_ref().map(|(_, p)| p.clone()));
    let daemon = match Daemon::start(config.pipelines.clone()).await {
        Ok(d) => d,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel::<ShutdownRequest>(1);
    if let Some(listener) = listeners.metrics {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let handle = daemon.handle();
        let render: http::Render = Arc::new(move || metrics::render(&handle.snapshot()));
        async_std::task::spawn(http::serve(listener, render));
        info!("metrics: serving http://{addr}/metrics");
    }
    if let Some((listener, path)) = listeners.control {
        let reload = service.file.as_ref().map(|file| ReloadSource {
            path: file.clone(),
            current: Mutex::new(config.clone()),
            log: Arc::clone(&service.log),
            log_args: service.log_args.clone(),
            observe: service.observe,
        });
        let context = Arc::new(Context {
            handle: daemon.handle(),
            shutdown: shutdown_tx.clone(),
            reload,
        });
        async_std::task::spawn(control::serve(listener, context));
        info!(
            "control_socket {}: serving `colo-compare ctl` (mode 0600)",
            show(&path)
        );
    }
    for (pipeline, role, addr) in daemon.local_addrs() {
        info!("pipeline {pipeline}: {role} listening on {addr}");
    }
    info!(
        "colo-compare {} running {count} pipeline(s); SIGTERM or SIGINT releases every held \
         packet and exits, SIGHUP reopens the log file",
        env!("CARGO_PKG_VERSION")
    );
    let stop = loop {
        let signal = Box::pin(signals.next());
        match select(signal, shutdown_rx.next()).await {
            Either::Left((Some(Request::ReopenLog), _)) => service.log.reopen(),
            Either::Left((Some(Request::Shutdown(signal)), _)) => break Stop::Signal(signal),
            Either::Left((None, _)) => break Stop::ListenerGone,
            Either::Right((Some(request), _)) => break Stop::Control(request),
            // The loop holds a sender: the channel never ends.
            Either::Right((None, _)) => {}
        }
    };
    drop(shutdown_tx);
    match &stop {
        Stop::Signal(signal) => {
            info!("{signal}: shutting down, releasing every held primary packet")
        }
        Stop::Control(_) => {
            info!("control socket: shutting down, releasing every held primary packet")
        }
        Stop::ListenerGone => warn!("the signal listener stopped; shutting down"),
    }
    let report = daemon.shutdown(SHUTDOWN_GRACE).await;
    if let Stop::Control(request) = stop {
        let done = ShutdownDone {
            pipelines: report
                .pipelines
                .iter()
                .map(|p| Drained {
                    name: p.name.clone(),
                    released_at_shutdown: p.released_at_shutdown,
                    unwritten: p.unwritten,
                })
                .collect(),
        };
        if request.reply.send(done).is_ok() {
            let written = request.written.map(|_| ());
            let _ = async_std::future::timeout(ANSWER_GRACE, written).await;
        }
    }
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

fn show(path: &Path) -> String {
    path.display().to_string()
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
