//! The command line: subcommands and options, each documented where it is declared so that
//! `--help` teaches the program. Pipeline options mirror QEMU's `colo-compare` properties.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use colo_actors::Endpoint;

use crate::logging::level::Level;

const EXAMPLES: &str = "\
Examples:
  colo-compare demo
      Watch a primary and a secondary guest being compared on loopback, with a few injected
      divergences, and read the report. Takes a few seconds.

  colo-compare run --primary-in tcp-listen:127.0.0.1:9001 --secondary-in tcp-listen:127.0.0.1:9002 \\
                   --outdev tcp-listen:127.0.0.1:9003 --notify-dev tcp-listen:127.0.0.1:9004
      One pipeline, QEMU-style: the primary and secondary QEMUs' filter-redirectors connect to
      9001 and 9002, the primary's filter-redirector indev to 9003, the COLO controller to 9004.

  colo-compare run --config /etc/colo-compare.ron -v
      Several pipelines and every setting from a file, with debug logging.

  colo-compare check-config /etc/colo-compare.ron
      Validate a file before deploying it.

  COLO_LOG=info,colo_core=debug colo-compare run --config /etc/colo-compare.ron
      Per-module log levels from the environment (overrides the file, -v and --log-level).

Endpoints are written like socat addresses: tcp-listen:HOST:PORT, tcp-connect:HOST:PORT,
unix-listen:PATH, unix-connect:PATH. A listening endpoint serves one peer at a time and waits
for the next one when it leaves; a connecting one redials with backoff.

Signals: SIGTERM and SIGINT release every held primary packet to outdev, then exit 0.
SIGHUP reopens the log file (for logrotate).
Exit codes: 0 success, 1 runtime failure (for example a port in use), 2 invalid
configuration or command line.";

/// colo-compare: QEMU's COLO network comparator as a standalone daemon.
///
/// It receives the packets of a primary and a secondary VM (in the framing of QEMU's
/// filter-mirror and filter-redirector), compares them per protocol, releases the primary's
/// packets when the secondary produced the same, and asks the COLO controller for a checkpoint
/// when they differ or wait too long.
#[derive(Debug, Parser)]
#[command(name = "colo-compare", version, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: from a configuration file, from pipeline options, or (with neither) from
    /// the embedded default of one pipeline listening on 127.0.0.1 ports 9001-9004.
    #[command(after_help = EXAMPLES)]
    Run(RunArgs),
    /// Validate a configuration file: print one summary line per pipeline and exit 0, or print
    /// the first mistake as FILE:LINE:COLUMN: FIELD: PROBLEM and exit 2.
    CheckConfig {
        /// The RON configuration file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the comparators linked into this program: name, the packets each claims, what it
    /// does, and whether it is enabled.
    Comparators {
        /// Show enabled/disabled per pipeline of this configuration file instead of the
        /// defaults.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run a self-contained demonstration on loopback: the real daemon, two synthetic guests
    /// with a few injected divergences, a COLO controller and an output peer; prints a live
    /// summary each second and a final report. Finishes by itself in a few seconds.
    Demo {
        /// Log settings (the demo logs warnings only unless asked).
        #[command(flatten)]
        log: LogArgs,
    },
}

/// Options of `colo-compare run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Read pipelines and global settings from this RON file (see colo-compare.example.ron).
    /// Cannot be combined with the pipeline options.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A single pipeline given on the command line.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Log settings.
    #[command(flatten)]
    pub log: LogArgs,
}

/// One pipeline's settings, named after QEMU's colo-compare properties.
#[derive(Debug, Args)]
#[group(id = "pipeline", multiple = true, conflicts_with = "config")]
pub struct PipelineArgs {
    /// QEMU `primary_in`: where the primary QEMU's filter-redirector delivers the primary
    /// guest's packets. Required with --secondary-in and --outdev.
    #[arg(long, value_name = "EP", requires_all = ["secondary_in", "outdev"])]
    pub primary_in: Option<Endpoint>,
    /// QEMU `secondary_in`: where the secondary QEMU's filter-redirector delivers the secondary
    /// guest's packets.
    #[arg(long, value_name = "EP", requires_all = ["primary_in", "outdev"])]
    pub secondary_in: Option<Endpoint>,
    /// QEMU `outdev`: where released primary packets go (the primary QEMU's filter-redirector
    /// indev).
    #[arg(long, value_name = "EP", requires_all = ["primary_in", "secondary_in"])]
    pub outdev: Option<Endpoint>,
    /// QEMU `notify_dev`: the COLO controller's channel (DO_CHECKPOINT out, COLO_CHECKPOINT
    /// in). Without it checkpoint requests are only logged and counted.
    #[arg(long, value_name = "EP", requires = "primary_in")]
    pub notify_dev: Option<Endpoint>,
    /// QEMU `compare_timeout`: how long a packet may wait for its counterpart before a
    /// checkpoint is requested, in milliseconds [default: 3000].
    #[arg(long, value_name = "MS", requires = "primary_in")]
    pub compare_timeout: Option<u64>,
    /// QEMU `expired_scan_cycle`: how often waiting packets are checked against
    /// --compare-timeout, in milliseconds [default: 1000].
    #[arg(long, value_name = "MS", requires = "primary_in")]
    pub expired_scan_cycle: Option<u64>,
    /// QEMU `max_queue_size`: packets held per connection and side before a checkpoint is
    /// requested (nothing is dropped) [default: 1024].
    #[arg(long, value_name = "N", requires = "primary_in")]
    pub max_queue_size: Option<u32>,
    /// QEMU `vnet_hdr_support`: frames on primary_in, secondary_in, outdev (and incoming
    /// notify_dev frames) carry the VNET_LEN field. Must match the filters' setting.
    #[arg(long, requires = "primary_in")]
    pub vnet_hdr_support: bool,
}

/// Logging options, shared by `run` and `demo`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// More log output: -v for debug (one line per decision), -vv for trace. Overrides the
    /// configuration file's log level.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "log_level")]
    pub verbose: u8,
    /// Log level of every module: off, error, warn, info, debug or trace. Overrides the
    /// configuration file's level; the COLO_LOG environment variable (for example
    /// "info,colo_core=debug") overrides both, per module.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<Level>,
}
