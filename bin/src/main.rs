//! The colo-compare program: command line, configuration, logging, signals and the demo
//! around the daemon that `colo_actors` runs.

mod check_config;
mod cli;
mod comparators;
mod config;
mod demo;
mod logging;
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
        Command::Demo { log } => demo::demo(log),
    }
}
