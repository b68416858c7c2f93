//! Comparing two record sections as multisets.
//!
//! Servers rotate the order of the records in a set (round-robin) and replicas need not rotate
//! alike, so a section matches when every record has a counterpart: same owner, type, class
//! and data, and a TTL no further off than the tolerance. Records are grouped by everything but
//! the TTL; within a group both sides' TTLs are paired in sorted order, which finds a pairing
//! within the tolerance whenever one exists. The OPT pseudo-record's TTL holds flags, so it is
//! always compared exactly.

use std::collections::BTreeMap;

use crate::message::{OPT, Record};

/// Why a primary record has no counterpart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lack {
    /// No secondary record has its owner, type, class and data.
    Record,
    /// Its counterparts exist, but a TTL is out of tolerance.
    Ttl,
}

/// A primary record without a counterpart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmatched {
    /// Where the record starts in the primary's message.
    pub offset: usize,
    /// What it lacks.
    pub lack: Lack,
}

type Key<'k> = (&'k [u8], u16, u16, &'k [u8]);

fn key<'k>(r: &'k Record<'_>) -> Key<'k> {
    (&r.name, r.rtype, r.class, &r.rdata)
}

/// The primary record, earliest in the message, that the secondary's section does not
/// account for; `None` when the sections hold the same records. Both sections are expected
/// to be the same size (the header counts were compared first).
pub fn first_unmatched(
    primary: &[Record<'_>],
    secondary: &[Record<'_>],
    ttl_tolerance: u32,
) -> Option<Unmatched> {
    let mut groups: BTreeMap<Key<'_>, (Vec<&Record<'_>>, Vec<u32>)> = BTreeMap::new();
    for r in primary {
        groups.entry(key(r)).or_default().0.push(r);
    }
    for r in secondary {
        groups.entry(key(r)).or_default().1.push(r.ttl);
    }
    let mut first: Option<Unmatched> = None;
    let mut note = |offset: usize, lack: Lack| {
        if first.is_none_or(|f| offset < f.offset) {
            first = Some(Unmatched { offset, lack });
        }
    };
    for ((_, rtype, _, _), (mut p, mut s)) in groups {
        if p.len() != s.len() {
            if let Some(r) = p.iter().min_by_key(|r| r.offset) {
                note(r.offset, Lack::Record);
            }
            continue;
        }
        let tolerance = if rtype == OPT { 0 } else { ttl_tolerance };
        p.sort_by_key(|r| (r.ttl, r.offset));
        s.sort_unstable();
        for (r, ttl) in p.iter().zip(&s) {
            if r.ttl.abs_diff(*ttl) > tolerance {
                note(r.offset, Lack::Ttl);
            }
        }
    }
    first
}

#[cfg(test)]
mod test {
    use std::borrow::Cow;

    use super::*;

    fn rec(offset: usize, data: u8, ttl: u32) -> Record<'static> {
        Record {
            offset,
            name: b"\x01a\x00".to_vec(),
            rtype: 1,
            class: 1,
            ttl,
            rdata: Cow::Owned(vec![192, 0, 2, data]),
        }
    }

    #[test]
    fn order_does_not_matter() {
        let p = [rec(10, 1, 60), rec(30, 2, 60), rec(50, 3, 60)];
        let s = [rec(10, 3, 60), rec(30, 1, 60), rec(50, 2, 60)];
        assert_eq!(first_unmatched(&p, &s, 0), None);
    }

    #[test]
    fn multiplicity_matters() {
        let p = [rec(10, 1, 60), rec(30, 1, 60), rec(50, 2, 60)];
        let s = [rec(10, 1, 60), rec(30, 2, 60), rec(50, 2, 60)];
        assert_eq!(
            first_unmatched(&p, &s, 0),
            Some(Unmatched {
                offset: 10,
                lack: Lack::Record
            })
        );
    }

    #[test]
    fn the_earliest_unmatched_primary_record_is_reported() {
        let p = [rec(10, 1, 60), rec(30, 2, 60), rec(50, 9, 60)];
        let s = [rec(10, 2, 60), rec(30, 1, 60), rec(50, 3, 60)];
        assert_eq!(
            first_unmatched(&p, &s, 0),
            Some(Unmatched {
                offset: 50,
                lack: Lack::Record
            })
        );
    }

    #[test]
    fn ttls_pair_up_within_tolerance_whenever_possible() {
        // Greedy pairing in message order would pair 61 with 60 and leave 59 against 62.
        let p = [rec(10, 1, 61), rec(30, 1, 59)];
        let s = [rec(10, 1, 60), rec(30, 1, 62)];
        assert_eq!(first_unmatched(&p, &s, 1), None);
        assert_eq!(
            first_unmatched(&p, &s, 0),
            Some(Unmatched {
                offset: 10,
                lack: Lack::Ttl
            })
        );
    }

    #[test]
    fn the_opt_ttl_is_exact_whatever_the_tolerance() {
        let opt = |ttl| Record {
            rtype: OPT,
            ..rec(10, 0, ttl)
        };
        assert_eq!(
            first_unmatched(&[opt(0x8000)], &[opt(0x8001)], u32::MAX),
            Some(Unmatched {
                offset: 10,
                lack: Lack::Ttl
            })
        );
        assert_eq!(first_unmatched(&[opt(0x8000)], &[opt(0x8000)], 0), None);
    }
}
