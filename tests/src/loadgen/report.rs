//! What one load-generator run measured, as a human summary and as one machine-readable line
//! (`RESULT key=value ...`) that the benchmark script turns into its table.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::loadgen::procstat::Usage;

/// How the process under test fared during the measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerUsage {
    /// CPU time used during the measurement, as a fraction of one core (1.0 = 100 %).
    pub cpu: f64,
    /// Largest resident set of the process, KiB, read after the run.
    pub peak_rss_kib: u64,
}

impl PeerUsage {
    /// The usage between two readings taken `elapsed` apart.
    pub fn between(start: &Usage, end: &Usage, elapsed: Duration) -> Self {
        let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64() / elapsed.as_secs_f64();
        PeerUsage {
            cpu: if cpu.is_finite() { cpu } else { 0.0 },
            peak_rss_kib: end.peak_rss_kib,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Length of the measurement window.
    pub measured: Duration,
    /// Distinct primary frames released inside the window.
    pub frames: u64,
    /// Their Ethernet bytes.
    pub bytes: u64,
    /// Held time (send to release) of those frames, nanoseconds.
    pub held: Histogram<u64>,
    /// Primary frames sent over the whole run.
    pub sent: u64,
    /// Units (pairs) sent, and how many of them were made to mismatch.
    pub units: u64,
    /// Units whose secondary differed.
    pub mismatched: u64,
    /// Distinct primary frames released over the whole run.
    pub released: u64,
    /// Primary frames sent that never came out before the run ended.
    pub lost: u64,
    /// Primary frames that came out more than once (extra copies).
    pub duplicated: u64,
    /// Frames that came out but were never sent.
    pub unknown: u64,
    /// Primary frames released after a frame of their flow that was sent later.
    pub reordered: u64,
    /// `DO_CHECKPOINT` messages received from the peer's notify channel.
    pub checkpoint_requests: u64,
    /// `COLO_CHECKPOINT` messages sent back.
    pub checkpoints: u64,
    /// Percentage of the measured time with more than half the window out: near 100 the
    /// comparator was the bottleneck, near 0 the generator ([`crate::loadgen::backlog`]).
    pub backlog_pct: f64,
    /// The watched process's usage, when one was watched.
    pub peer: Option<PeerUsage>,
}

impl Report {
    /// Released primary frames per second inside the window.
    pub fn frames_per_sec(&self) -> f64 {
        rate(self.frames as f64, self.measured)
    }

    /// Released Ethernet bits per second inside the window, in Mbit/s.
    pub fn mbit_per_sec(&self) -> f64 {
        rate(self.bytes as f64 * 8.0, self.measured) / 1e6
    }

    /// The held time at quantile `q`, in microseconds (0 when nothing was measured).
    pub fn held_us(&self, q: f64) -> f64 {
        if self.held.is_empty() {
            return 0.0;
        }
        self.held.value_at_quantile(q) as f64 / 1000.0
    }

    /// The longest held time measured, in microseconds.
    pub fn held_max_us(&self) -> f64 {
        self.held.max() as f64 / 1000.0
    }

    /// Whether every primary frame came out exactly once and nothing else came out.
    pub fn exact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unknown == 0 && self.reordered == 0
    }

    /// The machine-readable line.
    pub fn result_line(&self) -> String {
        let mut s = format!(
            "RESULT frames_per_s={:.0} mbit_per_s={:.1} p50_us={:.1} p99_us={:.1} p999_us={:.1} \
             max_us={:.1} measured_s={:.3} sent={} released={} lost={} duplicated={} unknown={} \
             reordered={} units={} mismatched={} checkpoint_requests={} checkpoints={} \
             backlog_pct={:.1}",
            self.frames_per_sec(),
            self.mbit_per_sec(),
            self.held_us(0.5),
            self.held_us(0.99),
            self.held_us(0.999),
            self.held_max_us(),
            self.measured.as_secs_f64(),
            self.sent,
            self.released,
            self.lost,
            self.duplicated,
            self.unknown,
            self.reordered,
            self.units,
            self.mismatched,
            self.checkpoint_requests,
            self.checkpoints,
            self.backlog_pct,
        );
        if let Some(p) = self.peer {
            let _ = write!(
                s,
                " cpu_pct={:.1} peak_rss_kib={}",
                p.cpu * 100.0,
                p.peak_rss_kib
            );
        }
        s
    }

    /// A few readable lines.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "released {:.0} frames/s ({:.1} Mbit/s) over {:.2} s; held p50 {:.1} us, p99 {:.1} us, \
             p99.9 {:.1} us, max {:.1} us\n",
            self.frames_per_sec(),
            self.mbit_per_sec(),
            self.measured.as_secs_f64(),
            self.held_us(0.5),
            self.held_us(0.99),
            self.held_us(0.999),
            self.held_max_us()
        );
        let _ = writeln!(
            s,
            "sent {} primary frames ({} pairs, {} mismatching); released {} exactly once, {} lost, \
             {} duplicated, {} unknown, {} out of their flow's order",
            self.sent,
            self.units,
            self.mismatched,
            self.released,
            self.lost,
            self.duplicated,
            self.unknown,
            self.reordered
        );
        let _ = writeln!(
            s,
            "more than half the window out {:.1} % of the measured time",
            self.backlog_pct
        );
        if self.checkpoint_requests > 0 || self.checkpoints > 0 {
            let _ = writeln!(
                s,
                "controller: {} DO_CHECKPOINT received, {} COLO_CHECKPOINT sent",
                self.checkpoint_requests, self.checkpoints
            );
        }
        if let Some(p) = self.peer {
            let _ = writeln!(
                s,
                "peer: {:.1} % of a core, peak RSS {} KiB",
                p.cpu * 100.0,
                p.peak_rss_kib
            );
        }
        s
    }
}

fn rate(amount: f64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

#[cfg(test)]
mod test {
    use super::*;

    fn report() -> Report {
        let mut held = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("bounds");
        for us in 1..=100u64 {
            held.record(us * 1000).expect("in range");
        }
        Report {
            measured: Duration::from_secs(2),
            frames: 100,
            bytes: 6400,
            held,
            sent: 100,
            units: 100,
            mismatched: 0,
            released: 100,
            lost: 0,
            duplicated: 0,
            unknown: 0,
            reordered: 0,
            checkpoint_requests: 0,
            checkpoints: 0,
            backlog_pct: 12.5,
            peer: Some(PeerUsage {
                cpu: 0.5,
                peak_rss_kib: 2048,
            }),
        }
    }

    #[test]
    fn rates_and_percentiles() {
        let r = report();
        assert_eq!(r.frames_per_sec(), 50.0);
        assert!((r.mbit_per_sec() - 0.0256).abs() < 1e-9);
        assert!((r.held_us(0.5) - 50.0).abs() < 0.1);
        assert!((r.held_us(0.99) - 99.0).abs() < 0.1);
        assert!(r.exact());
        let line = r.result_line();
        assert!(line.starts_with("RESULT frames_per_s=50 "), "{line}");
        assert!(
            line.ends_with(" backlog_pct=12.5 cpu_pct=50.0 peak_rss_kib=2048"),
            "{line}"
        );
    }

    #[test]
    fn usage_between_two_readings() {
        let a = Usage {
            cpu: Duration::from_millis(100),
            rss_kib: 10,
            peak_rss_kib: 10,
        };
        let b = Usage {
            cpu: Duration::from_millis(400),
            rss_kib: 10,
            peak_rss_kib: 30,
        };
        let u = PeerUsage::between(&a, &b, Duration::from_millis(600));
        assert!((u.cpu - 0.5).abs() < 1e-9);
        assert_eq!(u.peak_rss_kib, 30);
    }
}
