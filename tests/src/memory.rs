//! Memory and log accounting for flood tests: the peak resident set size of this process, and a
//! logger that counts lines instead of keeping them.
//!
//! A flood test asserts that memory stays within the configured budget plus a stated constant,
//! so the measurement must see the daemon's memory and little else: the peak is reset right
//! before the flood (`/proc/self/clear_refs`), and the flood's millions of log lines are
//! counted by pattern, never stored (the capturing logger of [`crate::logcap`] would hold them
//! all and measure itself).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use log::{LevelFilter, Log, Metadata, Record};

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

fn status_kib(field: &str) -> u64 {
    let path = "/proc/self/status";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{path} has no {field}"))
}

/// Resident set size of this process now, in bytes.
pub fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident set size of this process since start or the last [`reset_peak`], in bytes.
pub fn peak() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// Resets this process's peak resident set size to the current one (Linux `clear_refs` 5).
pub fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS via clear_refs");
}

/// Log lines (info and above) containing a pattern: how many, and the first one.
#[derive(Debug, Default)]
pub struct LineCount {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl LineCount {
    /// Lines counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first line counted, if any.
    pub fn first(&self) -> Option<String> {
        self.first.lock().ok().and_then(|f| f.clone())
    }
}

struct Counter {
    patterns: Mutex<Vec<(String, &'static LineCount)>>,
}

impl Log for Counter {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(patterns) = self.patterns.lock() else {
            return;
        };
        if patterns.is_empty() {
            return;
        }
        let line = record.args().to_string();
        for (p, n) in patterns.iter() {
            if line.contains(p.as_str()) && n.count.fetch_add(1, Ordering::Relaxed) == 0 {
                if let Ok(mut first) = n.first.lock() {
                    *first = Some(line.clone());
                }
            }
        }
    }

    fn flush(&self) {}
}

static COUNTER: Counter = Counter {
    patterns: Mutex::new(Vec::new()),
};
static INSTALL: Once = Once::new();
static OURS: AtomicBool = AtomicBool::new(false);

/// Installs the counting logger (at info) unless another logger came first; true when it is
/// the process's logger. Install it before starting a rig, whose capturing logger then stays
/// out.
pub fn install_counting_logger() -> bool {
    INSTALL.call_once(|| {
        if log::set_logger(&COUNTER).is_ok() {
            log::set_max_level(LevelFilter::Info);
            OURS.store(true, Ordering::Relaxed);
        }
    });
    OURS.load(Ordering::Relaxed)
}

/// Counts log lines (info and above) containing `pattern`, from now on.
pub fn count_lines(pattern: &str) -> &'static LineCount {
    let n: &'static LineCount = Box::leak(Box::default());
    if let Ok(mut patterns) = COUNTER.patterns.lock() {
        patterns.push((pattern.to_string(), n));
    }
    n
}
