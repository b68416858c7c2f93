//! Captures the daemon's log lines in memory so tests can assert what it said.
//!
//! Tests of one binary share a process (and so the logger); each test uses its own pipeline
//! name, which every daemon log line carries, to find its own lines. Set `COLO_TEST_LOG=1` to
//! also print every line to stderr.

use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture {
    echo: bool,
}

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Debug
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        if self.echo {
            eprintln!("{line}");
        }
        if let Ok(mut lines) = LINES.lock() {
            lines.push(line);
        }
    }

    fn flush(&self) {}
}

/// Installs the capturing logger (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let echo = std::env::var_os("COLO_TEST_LOG").is_some();
        let logger: &'static Capture = Box::leak(Box::new(Capture { echo }));
        if log::set_logger(logger).is_ok() {
            log::set_max_level(LevelFilter::Debug);
        }
    });
}

/// Every captured line containing all of `parts`.
pub fn lines(parts: &[&str]) -> Vec<String> {
    LINES
        .lock()
        .map(|lines| {
            lines
                .iter()
                .filter(|l| parts.iter().all(|p| l.contains(p)))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until a line containing all of `parts` has been logged; panics after `within`.
pub async fn wait_for(parts: &[&str], within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Some(line) = lines(parts).into_iter().next() {
            return line;
        }
        assert!(
            start.elapsed() < within,
            "no log line containing {parts:?} within {within:?}"
        );
        async_std::task::sleep(Duration::from_millis(5)).await;
    }
}
