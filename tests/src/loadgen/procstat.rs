//! CPU time and memory of the process under test, read from `/proc`, for the benchmark table.
//!
//! CPU is `utime + stime` of `/proc/PID/stat` (every thread of the process), peak memory is
//! `VmHWM` of `/proc/PID/status`: the largest resident set the process ever had.

use std::io;
use std::time::Duration;

/// One reading of a process's usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time since the process started.
    pub cpu: Duration,
    /// Resident set now, KiB.
    pub rss_kib: u64,
    /// Largest resident set so far, KiB.
    pub peak_rss_kib: u64,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Parses the CPU ticks out of a `/proc/PID/stat` line.
fn cpu_ticks(stat: &str) -> io::Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| bad("no ')' in /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are utime and stime; `rest` starts at field 3.
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("short /proc/PID/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// The value in KiB of a `Name:   N kB` line of `/proc/PID/status`.
fn status_kib(status: &str, name: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| bad(name))
}

/// Reads the usage of process `pid`.
pub fn usage(pid: u32) -> io::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ticks = cpu_ticks(&stat)?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Usage {
        cpu: Duration::from_micros(ticks.saturating_mul(1_000_000) / hz),
        rss_kib: status_kib(&status, "VmRSS")?,
        peak_rss_kib: status_kib(&status, "VmHWM")?,
    })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_spacey_name() {
        let line = "42 (colo compare) S 1 42 42 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 5 0";
        assert_eq!(cpu_ticks(line).expect("valid"), 267);
        assert!(cpu_ticks("42 colo").is_err());
    }

    #[test]
    fn reads_this_process() {
        let me = usage(std::process::id()).expect("own /proc entry");
        assert!(me.peak_rss_kib >= me.rss_kib);
        assert!(me.rss_kib > 0);
        let status = "Name:\tx\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_kib(status, "VmHWM").expect("present"), 1234);
        assert!(status_kib(status, "VmSwap").is_err());
    }
}
