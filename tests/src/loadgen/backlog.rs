//! How much of a run the comparator held the generator back: the share of the measured time
//! during which more than half the window of primary frames was out.
//!
//! At full load one side is always the bottleneck. When it is the generator, few frames are
//! out at any time and the held time is the comparator's latency; when it is the comparator,
//! the window fills and every pair waits about `window / frames per second` (Little's law),
//! whatever the comparator's latency. Held-time figures at full load mean different things
//! in the two cases, and this tells which one a run was.

/// Time with more than half the window out, accumulated between observations.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    half: u64,
    from_ns: u64,
    until_ns: u64,
    last: Option<(u64, bool)>,
    backlogged_ns: u64,
}

impl Backlog {
    /// Measures between `from_ns` and `until_ns` for a window of `window` frames.
    pub fn new(window: u64, from_ns: u64, until_ns: u64) -> Self {
        Backlog {
            half: window / 2,
            from_ns,
            until_ns,
            ..Backlog::default()
        }
    }

    /// `outstanding` frames were out at `now_ns` (not before the previous observation). The
    /// count is taken to hold until the next observation.
    pub fn observe(&mut self, now_ns: u64, outstanding: u64) {
        if let Some((since, true)) = self.last {
            let start = since.max(self.from_ns);
            let end = now_ns.min(self.until_ns);
            self.backlogged_ns += end.saturating_sub(start);
        }
        self.last = Some((now_ns, outstanding > self.half));
    }

    /// Percentage of the measured time with more than half the window out, as far as
    /// observed.
    pub fn percent(&self) -> f64 {
        let span = self.until_ns.saturating_sub(self.from_ns);
        if span == 0 {
            return 0.0;
        }
        100.0 * self.backlogged_ns.min(span) as f64 / span as f64
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn counts_only_time_over_half_the_window_inside_the_measurement() {
        // Window 100, measured from 1000 to 2000 ns.
        let mut b = Backlog::new(100, 1000, 2000);
        b.observe(0, 80); // backlogged from 0, but measuring starts at 1000
        b.observe(1200, 10); // 200 ns counted
        b.observe(1500, 50); // exactly half: not backlogged
        b.observe(1600, 51); // backlogged from 1600
        b.observe(1700, 0); // 100 ns counted
        b.observe(1900, 99); // backlogged from 1900 past the end
        b.observe(2500, 0); // 100 ns counted, cut at 2000
        assert!((b.percent() - 40.0).abs() < 1e-9, "{}", b.percent());
    }

    #[test]
    fn nothing_observed_or_nothing_measured_is_zero() {
        assert_eq!(Backlog::new(100, 0, 1000).percent(), 0.0);
        let mut b = Backlog::new(100, 500, 500);
        b.observe(0, 100);
        b.observe(1000, 100);
        assert_eq!(b.percent(), 0.0);
    }

    #[test]
    fn always_full_is_all_of_the_time() {
        let mut b = Backlog::new(8, 0, 1000);
        for t in (0..=1000).step_by(100) {
            b.observe(t, 8);
        }
        assert!((b.percent() - 100.0).abs() < 1e-9);
    }
}
