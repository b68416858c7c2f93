//! A fixed-size log-linear histogram of durations, for the time COLO holds primary packets.
//!
//! Held time is the latency colo-compare adds to every response, so it is recorded for every
//! release, by the engine itself: the daemon's metrics, the demo and `replay` all read the same
//! numbers. Values are microseconds; each power of two is split into 16 buckets, so a
//! percentile is exact below 16 µs and within 1/16 (6.25 %) above, with no allocation per value.

use std::time::Duration;

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Counts of durations in log-linear buckets.
#[derive(Debug, PartialEq, Eq)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

/// Copies are made often (the daemon publishes its counters after every batch), so a copy
/// moves only the buckets up to the largest value instead of all of them: every bucket above
/// that one is empty.
impl Clone for Histogram {
    fn clone(&self) -> Self {
        let mut h = Histogram::default();
        h.clone_from(self);
        h
    }

    fn clone_from(&mut self, source: &Self) {
        let used = |h: &Histogram| if h.count == 0 { 0 } else { index(h.max_us) + 1 };
        let (theirs, ours) = (used(source), used(self));
        self.buckets[..theirs].copy_from_slice(&source.buckets[..theirs]);
        if ours > theirs {
            self.buckets[theirs..ours].fill(0);
        }
        self.count = source.count;
        self.sum_us = source.sum_us;
        self.max_us = source.max_us;
    }
}

fn index(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros();
    let sub = ((us >> (e - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (e - SUB_BITS) as usize * SUB + sub
}

/// The smallest value that falls into bucket `i`.
fn lower(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + SUB_BITS as usize;
    let sub = ((i - SUB) % SUB) as u64;
    (SUB as u64 + sub) << (e - SUB_BITS as usize)
}

impl Histogram {
    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of all recorded durations.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// The largest recorded duration.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The duration below which a fraction `q` (0.0–1.0) of the values lie, reported as the
    /// lower edge of the bucket that holds it (never above the largest value); `None` when empty.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(lower(i).min(self.max_us)));
            }
        }
        Some(self.max())
    }

    /// How many recorded durations are below `bound` (exact when `bound` in µs is a power of
    /// two or below 16 µs): the cumulative counts of a Prometheus histogram.
    pub fn count_below(&self, bound: Duration) -> u64 {
        let us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        self.buckets
            .iter()
            .enumerate()
            .take_while(|(i, _)| lower(*i) < us)
            .map(|(_, n)| n)
            .sum()
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 1..BUCKETS {
            assert!(lower(i) > lower(i - 1), "bucket {i}");
            assert_eq!(index(lower(i)), i);
            assert_eq!(index(lower(i) - 1), i - 1);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 10_000);
        for (q, exact) in [(0.5, 5000.0), (0.9, 9000.0), (0.99, 9900.0)] {
            let got = h.percentile(q).expect("values").as_micros() as f64;
            assert!(
                got <= exact && got >= exact * (1.0 - 1.0 / 16.0),
                "q{q}: {got}"
            );
        }
        assert_eq!(h.percentile(1.0), Some(Duration::from_micros(9728)));
        assert_eq!(h.max(), Duration::from_micros(10_000));
        assert_eq!(h.percentile(0.0), Some(Duration::from_micros(1)));
    }

    #[test]
    fn count_below_powers_of_two_is_exact() {
        let mut h = Histogram::default();
        for us in [3u64, 100, 127, 128, 129, 5000] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count_below(Duration::from_micros(128)), 3);
        assert_eq!(h.count_below(Duration::from_micros(256)), 5);
        assert_eq!(h.count_below(Duration::from_secs(10)), 6);
        let mut m = Histogram::default();
        m.merge(&h);
        m.merge(&h);
        assert_eq!(m.count(), 12);
        assert_eq!(m.sum(), h.sum() * 2);
        assert_eq!(Histogram::default().percentile(0.5), None);
    }

    #[test]
    fn a_copy_over_a_larger_histogram_forgets_its_values() {
        let mut big = Histogram::default();
        for us in [5u64, 70_000, 9_000_000] {
            big.record(Duration::from_micros(us));
        }
        let mut small = Histogram::default();
        small.record(Duration::from_micros(3));
        small.record(Duration::from_micros(300));
        let mut copy = big.clone();
        assert_eq!(copy, big);
        copy.clone_from(&small);
        assert_eq!(copy, small);
        assert_eq!(copy.count_below(Duration::from_secs(100)), 2);
        copy.clone_from(&Histogram::default());
        assert_eq!(copy, Histogram::default());
        copy.clone_from(&big);
        assert_eq!(copy, big);
    }
}
