//! Where a pipeline's checkpoint requests went. The engine counts requests by reason; the
//! shell counts how each one left: a beacon poke, QMP, `DO_CHECKPOINT` on `notify_dev`,
//! merged with one still waiting for its checkpoint, or not sent at all.

use std::fmt;

/// How one checkpoint request left the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestPath {
    /// A poke written into the KVM beacon's `secondary_in`.
    Poke,
    /// `migrate-set-parameters x-checkpoint-delay` on the primary's QMP.
    Qmp,
    /// `DO_CHECKPOINT` on `notify_dev` (Xen COLO).
    Notify,
    /// Merged with a request sent before and not yet answered by a flush.
    Merged,
    /// Not sent: no path was connected (or none is configured).
    Unsent,
}

impl RequestPath {
    /// Every path, in [`RequestPath::index`] order.
    pub const ALL: [RequestPath; 5] = [
        RequestPath::Poke,
        RequestPath::Qmp,
        RequestPath::Notify,
        RequestPath::Merged,
        RequestPath::Unsent,
    ];

    /// The name used in metrics and logs.
    pub const fn name(self) -> &'static str {
        match self {
            RequestPath::Poke => "beacon_poke",
            RequestPath::Qmp => "qmp",
            RequestPath::Notify => "notify",
            RequestPath::Merged => "merged",
            RequestPath::Unsent => "unsent",
        }
    }

    /// Its position in [`RequestPath::ALL`].
    pub const fn index(self) -> usize {
        match self {
            RequestPath::Poke => 0,
            RequestPath::Qmp => 1,
            RequestPath::Notify => 2,
            RequestPath::Merged => 3,
            RequestPath::Unsent => 4,
        }
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checkpoint requests counted by path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestPaths([u64; 5]);

impl RequestPaths {
    /// Requests that went by `path`.
    pub fn get(&self, path: RequestPath) -> u64 {
        self.0[path.index()]
    }

    /// Counts one request by `path`.
    pub fn add(&mut self, path: RequestPath) {
        self.0[path.index()] += 1;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn paths_are_counted_apart() {
        let mut p = RequestPaths::default();
        p.add(RequestPath::Poke);
        p.add(RequestPath::Poke);
        p.add(RequestPath::Unsent);
        let counts: Vec<u64> = RequestPath::ALL.iter().map(|r| p.get(*r)).collect();
        assert_eq!(counts, [2, 0, 0, 0, 1]);
        assert!(
            RequestPath::ALL
                .iter()
                .enumerate()
                .all(|(i, r)| r.index() == i)
        );
    }
}
