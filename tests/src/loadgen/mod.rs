//! colo-loadgen: a load generator for colo-compare and for QEMU's colo-compare.
//!
//! It plays the primary and the secondary filter-redirector over loopback TCP or UNIX sockets
//! in QEMU's framing, reads the comparator's output, optionally plays the COLO controller, and
//! measures released frames per second and the held time of every pair. The null peer gives
//! the ceiling of the same sockets without any comparison. The binary is
//! `tests/src/bin/colo-loadgen.rs`; `tests/bench/run.sh` drives it.

pub mod backlog;
pub mod driver;
pub mod null_peer;
pub mod order;
pub mod procstat;
pub mod report;
pub mod socket;
pub mod tally;
pub mod workload;
