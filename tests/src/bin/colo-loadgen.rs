//! colo-loadgen: drives a COLO comparator (colo-compare or QEMU's) with primary and secondary
//! traffic and measures what it releases; `null-peer` stands in for a comparator that does
//! nothing, to show the ceiling of the sockets. See `tests/bench/run.sh` for the benchmark.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use colo_tests::loadgen::driver::{self, Length, Peers, RunSpec};
use colo_tests::loadgen::null_peer::{NullPeer, NullPeerSpec};
use colo_tests::loadgen::socket::Addr;
use colo_tests::loadgen::workload::{Proto, Resegment, WorkloadSpec};

/// Load generator and null peer for COLO comparator benchmarks.
#[derive(Debug, Parser)]
#[command(name = "colo-loadgen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Play primary and secondary against a comparator, read its output, print the results
    /// (a summary and one `RESULT key=value ...` line). A repeated option overrides the earlier.
    #[command(args_override_self = true)]
    Run(RunArgs),
    /// Listen like a comparator, discard the secondary stream and copy the primary stream to
    /// the output unchanged: the ceiling of the loopback path.
    NullPeer {
        /// Where the primary stream arrives (ADDR: HOST:PORT, tcp:HOST:PORT or unix:PATH).
        #[arg(long, value_name = "ADDR")]
        primary_in: Addr,
        /// Where the secondary stream arrives.
        #[arg(long, value_name = "ADDR")]
        secondary_in: Addr,
        /// Where the copy of the primary stream goes.
        #[arg(long, value_name = "ADDR")]
        outdev: Addr,
        /// A controller channel accepted and never written to.
        #[arg(long, value_name = "ADDR")]
        notify_dev: Option<Addr>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The comparator's primary_in (ADDR: HOST:PORT, tcp:HOST:PORT or unix:PATH).
    #[arg(long, value_name = "ADDR")]
    primary: Addr,
    /// The comparator's secondary_in.
    #[arg(long, value_name = "ADDR")]
    secondary: Addr,
    /// The comparator's outdev.
    #[arg(long, value_name = "ADDR")]
    output: Addr,
    /// The comparator's notify_dev: act as COLO controller, answering every DO_CHECKPOINT
    /// with COLO_CHECKPOINT (needed for mismatching traffic to be released).
    #[arg(long, value_name = "ADDR")]
    notify: Option<Addr>,
    /// Protocol mix: udp, tcp or mixed (alternating).
    #[arg(long, default_value = "udp")]
    proto: Proto,
    /// Ethernet length of each primary frame, bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Flows (UDP port pairs / TCP connections) per protocol, used round-robin.
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    /// How the secondary cuts TCP segments: none, split (each in two) or merge (two in one).
    #[arg(long, default_value = "none")]
    resegment: Resegment,
    /// Fraction of pairs whose secondary differs (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    mismatch: f64,
    /// Primary frames in flight (sent, not yet released) at most.
    #[arg(long, default_value_t = 4096)]
    window: u64,
    /// Pairs per write.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 5.0, conflicts_with = "count")]
    duration: f64,
    /// Seconds of unmeasured traffic first.
    #[arg(long, default_value_t = 1.0, conflicts_with = "count")]
    warmup: f64,
    /// Send exactly this many pairs instead (measured from first send to last release).
    #[arg(long)]
    count: Option<u64>,
    /// Offered load in pairs per second (default: as fast as the window allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to wait for frames still out after sending stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Milliseconds between connecting and the first frame.
    #[arg(long, default_value_t = 100)]
    settle_ms: u64,
    /// Re-arm TCP_QUICKACK after every read (QEMU's chardevs need it: Nagle + delayed ACK).
    #[arg(long)]
    quickack: bool,
    /// Report CPU and peak RSS of this process (the comparator under test).
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,
    /// Exit 1 unless every primary frame came out exactly once, each flow in order.
    #[arg(long)]
    exact: bool,
    /// Connect the secondary but send nothing on it, so that every primary frame is held
    /// (for measuring the comparator's memory).
    #[arg(long)]
    primary_only: bool,
}

fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("--{what} {s}: {e}"))
}

fn run(a: RunArgs) -> Result<bool, String> {
    let length = match a.count {
        Some(n) => Length::Count(n),
        None => Length::Timed {
            warmup: seconds("warmup", a.warmup)?,
            measure: seconds("duration", a.duration)?,
        },
    };
    let spec = RunSpec {
        window: a.window,
        batch: a.batch,
        length,
        rate: a.rate,
        drain: seconds("drain", a.drain)?,
        settle: Duration::from_millis(a.settle_ms),
        quickack: a.quickack,
        watch: a.watch_pid,
        primary_only: a.primary_only,
        ..RunSpec::default()
    };
    let peers = Peers {
        primary: a.primary,
        secondary: a.secondary,
        output: a.output,
        notify: a.notify,
    };
    let workload = WorkloadSpec {
        proto: a.proto,
        size: a.size,
        flows: a.flows,
        resegment: a.resegment,
        mismatch: a.mismatch,
    };
    let report = driver::run(&peers, workload, &spec).map_err(|e| e.to_string())?;
    print!("{}", report.summary());
    println!("{}", report.result_line());
    Ok(!a.exact || report.exact())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => run(a),
        Command::NullPeer {
            primary_in,
            secondary_in,
            outdev,
            notify_dev,
        } => NullPeer::bind(&NullPeerSpec {
            primary_in,
            secondary_in,
            outdev,
            notify_dev,
        })
        .and_then(|p| p.serve())
        .map(|()| true)
        .map_err(|e| format!("null peer: {e}")),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("colo-loadgen: not every primary frame came out exactly once");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("colo-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
