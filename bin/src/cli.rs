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

  colo-compare run --primary-in unix-listen:/run/colo/primary_in.sock \\
                   --secondary-in tcp-listen:192.0.2.1:9002 --outdev unix-listen:/run/colo/outdev.sock \\
                   --beacon-primary-in unix-connect:/run/colo/beacon_pri.sock \\
                   --beacon-secondary-in unix-connect:/run/colo/beacon_sec.sock \\
                   --beacon-outdev unix-connect:/run/colo/beacon_out.sock \\
                   --beacon-qmp unix-connect:/run/colo/primary-qmp.sock
      KVM COLO: the primary QEMU's beacon object marks each checkpoint's flush point and takes
      checkpoint requests (README, section KVM COLO).

  colo-compare run --config /etc/colo-compare.ron -v
      Several pipelines and every setting from a file, with debug logging.

  colo-compare check-config /etc/colo-compare.ron
      Validate a file before deploying it.

  colo-compare run --config /etc/colo-compare.ron --observe
      Compare and report everything but release at once and request no checkpoint:
      calibrate a new workload before turning protection on.

  colo-compare ctl --config /etc/colo-compare.ron stats
      Ask the running daemon (its control_socket) for its counters; also flows, checkpoint,
      failover, shutdown and reload.

  colo-compare replay primary.pcap secondary.pcap --config /etc/colo-compare.ron --align-start
      Replay captures taken with tcpdump on the two hosts and see every checkpoint request.

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
    Run(Box<RunArgs>),
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
    /// Talk to a running daemon's control socket: stats, flows, checkpoint, failover, shutdown
    /// or reload.
    Ctl(CtlArgs),
    /// Run the engine over two pcap captures (the primary's and the secondary's output, in
    /// timestamp order, time taken from the captures) and report every decision: frames per
    /// side, releases by reason, every checkpoint request with its reason, flow and first
    /// differing byte, held-time percentiles, and what was still held at the end.
    Replay(ReplayArgs),
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
    /// Observe mode for every pipeline: compare and report everything, but release primary
    /// packets at once and never request a checkpoint (would-be checkpoints are counted and
    /// logged). For calibrating a new workload before turning protection on.
    #[arg(long)]
    pub observe: bool,
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
    /// KVM COLO beacon mode: the `primary_in` chardev of the primary QEMU's beacon
    /// colo-compare object (the parked frame goes there). Requires --beacon-secondary-in and
    /// --beacon-outdev; takes the place of --notify-dev. See the README's "KVM COLO".
    #[arg(
        long,
        value_name = "EP",
        requires_all = ["primary_in", "beacon_secondary_in", "beacon_outdev"],
        conflicts_with = "notify_dev"
    )]
    pub beacon_primary_in: Option<Endpoint>,
    /// The beacon's `secondary_in` chardev: checkpoint requests ("pokes") go there.
    #[arg(long, value_name = "EP", requires = "beacon_primary_in")]
    pub beacon_secondary_in: Option<Endpoint>,
    /// The beacon's `outdev` chardev: the parked frame comes out there at each checkpoint's
    /// flush point, and colo-compare flushes then.
    #[arg(long, value_name = "EP", requires = "beacon_primary_in")]
    pub beacon_outdev: Option<Endpoint>,
    /// A QMP monitor of the primary QEMU (beacon mode, optional): checkpoint requests while
    /// the beacon is not connected, a late flush at RESUME when a beacon was missed, and
    /// failover on COLO_EXIT.
    #[arg(long, value_name = "EP", requires = "beacon_primary_in")]
    pub beacon_qmp: Option<Endpoint>,
}

/// Options of `colo-compare ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The control socket.
    #[arg(long, short = 's', value_name = "PATH", conflicts_with = "config")]
    pub socket: Option<PathBuf>,
    /// Find the control socket in the daemon's configuration file (`control_socket`).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the daemon's JSON response line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The control socket's commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Counters of every pipeline: received, released and dropped by reason, held, checkpoint
    /// requests by reason, held-time percentiles, comparators, output and capture.
    Stats,
    /// The tracked connections with their queue depths and the age of their oldest held
    /// packet, the oldest-waiting first.
    Flows {
        /// Only this pipeline's.
        #[arg(long, short = 'p', value_name = "NAME")]
        pipeline: Option<String>,
        /// Only connections whose description contains this (an address, a port, "tcp").
        #[arg(long = "match", short = 'm', value_name = "TEXT")]
        matching: Option<String>,
        /// Only connections holding at least this many packets.
        #[arg(long, value_name = "N", default_value_t = 0)]
        min_held: u64,
        /// Show at most this many.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Checkpoint flush, as COLO_CHECKPOINT: release every held primary packet.
    Checkpoint {
        /// Only this pipeline (default: every pipeline).
        #[arg(long, short = 'p', value_name = "NAME")]
        pipeline: Option<String>,
    },
    /// Failover: release every held primary packet, then pass the primary straight through
    /// (the secondary is gone). Cannot be undone without a restart.
    Failover {
        /// Only this pipeline (default: every pipeline).
        #[arg(long, short = 'p', value_name = "NAME")]
        pipeline: Option<String>,
    },
    /// Orderly shutdown: release every held packet, then the daemon exits 0 (as SIGTERM).
    Shutdown,
    /// Re-read the configuration file and apply timers, limits, passthrough rules, capture
    /// and log levels without losing a packet; a change of anything else is refused, naming
    /// the field, and nothing changes.
    Reload,
}

/// Options of `colo-compare replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The primary's output, a classic pcap file of Ethernet frames (tcpdump -w).
    #[arg(value_name = "PRIMARY.pcap")]
    pub primary: PathBuf,
    /// The secondary's output, likewise.
    #[arg(value_name = "SECONDARY.pcap")]
    pub secondary: PathBuf,
    /// Settings and comparators of a pipeline of this configuration file (default: defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The pipeline of --config to use (needed when it has several).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Shift the secondary capture so its first frame coincides with the primary's first
    /// (captures from two hosts rarely start together).
    #[arg(long)]
    pub align_start: bool,
    /// Do not answer checkpoint requests (by default each is answered at once with a flush,
    /// as a responsive COLO controller would).
    #[arg(long)]
    pub no_flush: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Logging options, shared by `run` and `demo`.
#[derive(Clone, Debug, Args)]
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
