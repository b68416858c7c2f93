//! What the demo prints: a live line per second and the final report, computed from the
//! daemon's counters, the output peer's ledger and the controller's log.

use std::time::Duration;

use colo_core::{CheckpointReason, Counters, ReleaseReason, Side};

/// The nearest-rank `p`-th percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: u32) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `total (name n, name n)` for the non-zero entries of a per-reason array.
fn by_reason(counts: &[u64], names: &[&str]) -> String {
    let total: u64 = counts.iter().sum();
    let parts: Vec<String> = counts
        .iter()
        .zip(names)
        .filter(|(n, _)| **n > 0)
        .map(|(n, name)| format!("{name} {n}"))
        .collect();
    if parts.is_empty() {
        total.to_string()
    } else {
        format!("{total} ({})", parts.join(", "))
    }
}

/// One line of the live summary.
pub fn live_line(elapsed: Duration, c: &Counters, answered: u64) -> String {
    format!(
        "[{:>4.1}s] received primary {}, secondary {} | released {} | held primary {}, secondary {} | checkpoints requested {}, answered {}",
        elapsed.as_secs_f64(),
        c.received[Side::Primary.index()],
        c.received[Side::Secondary.index()],
        c.released_total(),
        c.held[Side::Primary.index()],
        c.held[Side::Secondary.index()],
        c.checkpoints_total(),
        answered,
    )
}

/// Everything the final report says.
pub struct Report {
    /// Frames the primary guest sent.
    pub primary_sent: usize,
    /// Frames the secondary guest sent.
    pub secondary_sent: usize,
    /// The daemon's counters after shutdown.
    pub counters: Counters,
    /// Held packets the shutdown drain released.
    pub released_at_shutdown: u64,
    /// Released frames the daemon could not write.
    pub unwritten: u64,
    /// Primary frames sent that never reached the output peer.
    pub missing: usize,
    /// Frames the output peer got that were never sent, or got twice.
    pub unexpected: u64,
    /// `DO_CHECKPOINT` requests the controller answered.
    pub answered: u64,
    /// Whether the `COLO_USERSPACE_PROXY_INIT` greeting was answered.
    pub handshake: bool,
    /// The planted divergences.
    pub divergences: Vec<&'static str>,
    /// Send-to-output time of every frame the output peer received.
    pub held: Vec<Duration>,
    /// How long the demo ran.
    pub elapsed: Duration,
}

impl Report {
    /// Ways the run fell short of "every primary frame released exactly once".
    pub fn problems(&self) -> Vec<String> {
        let c = &self.counters;
        let mut problems = Vec::new();
        if c.received[Side::Primary.index()] != self.primary_sent as u64 {
            problems.push(format!(
                "the daemon received {} primary frames, the guest sent {}",
                c.received[Side::Primary.index()],
                self.primary_sent
            ));
        }
        if c.released_total() != self.primary_sent as u64 {
            problems.push(format!(
                "released {} of {} primary frames",
                c.released_total(),
                self.primary_sent
            ));
        }
        if self.missing > 0 {
            problems.push(format!(
                "{} frames never reached the output peer",
                self.missing
            ));
        }
        if self.unexpected > 0 {
            problems.push(format!(
                "the output peer got {} frames that were not sent or came twice",
                self.unexpected
            ));
        }
        if let Err(e) = c.check() {
            problems.push(format!("counters do not add up: {e}"));
        }
        if c.checkpoints_total() == 0 {
            problems.push("no checkpoint was requested for the planted divergences".into());
        }
        problems
    }

    /// The report, line by line.
    pub fn lines(&self) -> Vec<String> {
        let c = &self.counters;
        let mut sorted = self.held.clone();
        sorted.sort();
        let held = match (
            percentile(&sorted, 50),
            percentile(&sorted, 90),
            percentile(&sorted, 99),
            sorted.last(),
        ) {
            (Some(p50), Some(p90), Some(p99), Some(max)) => format!(
                "p50 {}, p90 {}, p99 {}, max {} (over {} frames)",
                ms(p50),
                ms(p90),
                ms(p99),
                ms(*max),
                sorted.len()
            ),
            _ => "no frame reached the output".into(),
        };
        let mut lines = vec![
            "colo-compare demo report".to_string(),
            format!("  primary frames sent:    {}", self.primary_sent),
            format!("  secondary frames sent:  {}", self.secondary_sent),
            format!(
                "  frames received:        primary {}, secondary {}",
                c.received[Side::Primary.index()],
                c.received[Side::Secondary.index()]
            ),
            format!(
                "  released:               {}",
                by_reason(&c.released, &ReleaseReason::NAMES)
            ),
            format!(
                "  released at shutdown:   {} (unwritten: {})",
                self.released_at_shutdown, self.unwritten
            ),
            format!(
                "  dropped:                primary {}, secondary {}",
                c.dropped_total(Side::Primary),
                c.dropped_total(Side::Secondary)
            ),
            format!(
                "  output peer received:   {}",
                sorted.len() as u64 + self.unexpected
            ),
            format!(
                "  checkpoint requests:    {}",
                by_reason(&c.checkpoints, &CheckpointReason::NAMES)
            ),
            format!(
                "  controller:             answered {} DO_CHECKPOINT with COLO_CHECKPOINT; greeting {}",
                self.answered,
                if self.handshake {
                    "answered"
                } else {
                    "not answered"
                }
            ),
            format!("  injected divergences:   {}", self.divergences.len()),
        ];
        lines.extend(self.divergences.iter().map(|d| format!("    - {d}")));
        lines.push(format!("  held time (sent→out):   {held}"));
        lines.push(format!(
            "  duration:               {:.1} s",
            self.elapsed.as_secs_f64()
        ));
        let problems = self.problems();
        if problems.is_empty() {
            lines.push(
                "  result:                 OK: every primary frame was released exactly once"
                    .into(),
            );
        } else {
            lines.push(format!(
                "  result:                 FAILED: {}",
                problems.join("; ")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 50), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&d, 99), Some(Duration::from_millis(198)));
        assert_eq!(percentile(&d, 100), Some(Duration::from_millis(200)));
        assert_eq!(percentile(&d[..1], 90), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn a_lost_frame_fails_the_report() {
        let mut counters = Counters {
            received: [3, 3],
            held: [1, 0],
            ..Counters::default()
        };
        counters.released[ReleaseReason::Matched.index()] = 2;
        counters.dropped[Side::Secondary.index()][0] = 3;
        counters.checkpoints[0] = 1;
        let report = Report {
            primary_sent: 3,
            secondary_sent: 3,
            counters,
            released_at_shutdown: 0,
            unwritten: 0,
            missing: 1,
            unexpected: 0,
            answered: 1,
            handshake: true,
            divergences: vec!["x"],
            held: vec![Duration::from_millis(1); 2],
            elapsed: Duration::from_secs(1),
        };
        let problems = report.problems();
        assert_eq!(
            problems,
            vec![
                "released 2 of 3 primary frames".to_string(),
                "1 frames never reached the output peer".to_string()
            ]
        );
        let lines = report.lines();
        assert!(lines.contains(&"  released:               2 (matched 2)".to_string()));
        assert!(lines.iter().any(|l| l.contains("FAILED")));
    }
}
