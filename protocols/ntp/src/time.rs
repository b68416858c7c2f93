//! NTP time as the wire carries it: 64-bit fixed point, 32 bits of seconds and 32 of fraction.
//!
//! Timestamps are compared in that unit rather than converted to milliseconds, so no precision
//! is lost and the distance between two timestamps stays right across the era wrap (2036): the
//! difference is taken modulo 2^64 and read as signed, which is the shorter way round.

/// An NTP timestamp (RFC 5905 §6): seconds since the era start in the high 32 bits, the
/// fraction of a second in the low 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpTime(pub u64);

/// A length of time in NTP fixed point: units of 2^-32 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NtpSpan(pub u64);

impl NtpTime {
    /// The timestamp in its big-endian wire form.
    pub fn from_wire(bytes: [u8; 8]) -> Self {
        NtpTime(u64::from_be_bytes(bytes))
    }

    /// How far apart two timestamps are, whichever is later, the era wrap included.
    pub fn distance(self, other: NtpTime) -> NtpSpan {
        // Read modulo 2^64 as signed: the shorter way round is the true distance.
        NtpSpan((self.0.wrapping_sub(other.0) as i64).unsigned_abs())
    }
}

impl NtpSpan {
    /// `ms` milliseconds, saturating far beyond any sensible tolerance.
    pub fn from_millis(ms: u64) -> Self {
        let units = (u128::from(ms) << 32) / 1000;
        NtpSpan(u64::try_from(units).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const SECOND: u64 = 1 << 32;

    #[test]
    fn milliseconds_in_fixed_point() {
        assert_eq!(NtpSpan::from_millis(1000), NtpSpan(SECOND));
        assert_eq!(NtpSpan::from_millis(0), NtpSpan(0));
        // 5 ms is 0.005 * 2^32 = 21474836.48 units, rounded down.
        assert_eq!(NtpSpan::from_millis(5), NtpSpan(21_474_836));
        assert_eq!(NtpSpan::from_millis(u64::MAX), NtpSpan(u64::MAX));
    }

    #[test]
    fn distance_is_symmetric() {
        let (a, b) = (NtpTime(100 * SECOND), NtpTime(100 * SECOND + 7));
        assert_eq!(a.distance(b), NtpSpan(7));
        assert_eq!(b.distance(a), NtpSpan(7));
        assert_eq!(a.distance(a), NtpSpan(0));
    }

    #[test]
    fn distance_crosses_the_era_wrap() {
        let before = NtpTime(u64::MAX - 9);
        let after = NtpTime(5);
        assert_eq!(before.distance(after), NtpSpan(15));
        assert_eq!(after.distance(before), NtpSpan(15));
    }

    #[test]
    fn wire_form_is_big_endian() {
        let t = NtpTime::from_wire([0, 0, 0, 2, 0x80, 0, 0, 0]);
        assert_eq!(t, NtpTime(2 * SECOND + SECOND / 2));
    }
}
