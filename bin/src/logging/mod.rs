//! Logging through the `log` facade: fern filters records per module, stamps each line with
//! the UTC time, level and module, and hands it to a [`Sink`] (stderr or a reopenable file).
//!
//! The levels live behind a lock the filter reads, so the control socket's `reload` can change
//! them in a running daemon; `log`'s global maximum follows, so a disabled `debug!` stays one
//! atomic load on the hot path.

pub mod filter;
pub mod level;
pub mod sink;
pub mod timestamp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use thiserror::Error;

use filter::Filter;
use sink::Sink;
use timestamp::rfc3339_utc;

/// Why logging could not be set up.
#[derive(Debug, Error)]
pub enum LoggingError {
    /// The log file could not be opened for appending.
    #[error("cannot open log file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Something installed a logger first.
    #[error("a logger is already installed")]
    AlreadyInstalled,
}

/// The installed logger's destination and levels, kept to reopen its file on SIGHUP and to
/// change its levels on `reload`.
pub struct LogHandle {
    sink: Arc<Sink>,
    filter: Arc<RwLock<Filter>>,
}

impl LogHandle {
    /// Reopens the log file (logrotate moved it) and says so in the new file.
    pub fn reopen(&self) {
        match self.sink.reopen() {
            Ok(Some(path)) => log::info!("reopened log file {}", path.display()),
            Ok(None) => log::debug!("SIGHUP: logging to stderr, nothing to reopen"),
            Err(e) => log::warn!("cannot reopen the log file, still writing to the old one: {e}"),
        }
    }

    /// Puts new levels in force.
    pub fn set_filter(&self, filter: Filter) {
        let max = filter.max();
        if let Ok(mut f) = self.filter.write() {
            *f = filter;
        }
        log::set_max_level(max);
    }
}

/// Installs the process-wide logger.
pub fn install(filter: &Filter, file: Option<&Path>) -> Result<LogHandle, LoggingError> {
    let sink = Arc::new(match file {
        Some(path) => Sink::file(path).map_err(|source| LoggingError::Open {
            path: path.to_path_buf(),
            source,
        })?,
        None => Sink::stderr(),
    });
    let out = Arc::clone(&sink);
    let max = filter.max();
    let levels = Arc::new(RwLock::new(filter.clone()));
    let read = Arc::clone(&levels);
    fern::Dispatch::new()
        .format(|line, message, record| {
            line.finish(format_args!(
                "{} {:<5} {}: {}",
                rfc3339_utc(SystemTime::now()),
                record.level(),
                record.target(),
                message
            ))
        })
        .filter(move |meta| {
            read.read()
                .is_ok_and(|f| meta.level() <= f.level_for(meta.target()))
        })
        .chain(fern::Output::call(move |record| {
            out.write_line(&record.args().to_string())
        }))
        .apply()
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    log::set_max_level(max);
    Ok(LogHandle {
        sink,
        filter: levels,
    })
}

/// Why the logging options could not be applied.
#[derive(Debug, Error)]
pub enum SetupError {
    /// `COLO_LOG` is malformed: a configuration mistake (exit 2).
    #[error(transparent)]
    Directive(#[from] filter::DirectiveError),
    /// The logger could not be installed (exit 1).
    #[error(transparent)]
    Install(#[from] LoggingError),
}

/// Installs the logger with the levels of the configuration file, then `--log-level` or `-v`,
/// then `COLO_LOG`, each overriding the one before.
pub fn setup(
    config: &crate::config::LogConfig,
    args: &crate::cli::LogArgs,
) -> Result<LogHandle, SetupError> {
    let filter = layered(config, args)?;
    Ok(install(&filter, config.file.as_deref())?)
}

/// The levels of the configuration file, then `--log-level` or `-v`, then `COLO_LOG`, each
/// overriding the one before.
pub fn layered(
    config: &crate::config::LogConfig,
    args: &crate::cli::LogArgs,
) -> Result<Filter, filter::DirectiveError> {
    let mut filter = Filter::from_config(config);
    if let Some(level) = args.log_level {
        filter.set_default(level.0);
    }
    match args.verbose {
        0 => {}
        1 => filter.set_default(log::LevelFilter::Debug),
        _ => filter.set_default(log::LevelFilter::Trace),
    }
    if let Some(spec) = std::env::var_os("COLO_LOG") {
        filter.apply_directives(&spec.to_string_lossy())?;
    }
    Ok(filter)
}
