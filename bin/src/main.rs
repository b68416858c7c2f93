//! The colo-compare program: command line, configuration, logging, signals and the demo
//! around the daemon that `colo_actors` runs.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod check_config;
mod cli;
mod comparators;
mod config;
mod control;
mod counts;
mod ctl;
mod demo;
mod http;
mod logging;
mod metrics;
mod replay;
mod run;
mod signals;
mod source_map;

use std::process::ExitCode;

use clap::Parser;

// Linking the comparator crates is what registers them (inventory).
#[cfg(feature = "dns")]
use colo_dns as _;
#[cfg(feature = "ntp")]
use colo_ntp as _;
use colo_protocols as _;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => run::run(args),
        Command::CheckConfig { file } => check_config::check_config(file),
        Command::Comparators { config } => comparators::list(config.as_deref()),
        Command::Ctl(args) => ctl::ctl(args),
        Command::Replay(args) => replay::replay(args),
        Command::Demo { log } => demo::demo(log),
    }
}
