//! KVM COLO beacon mode against real QEMU: the README's "KVM COLO" recipe, the beacon in QEMU's
//! standalone comparator, and a primary and a secondary QEMU in real KVM COLO on one host.
//!
//! - [`recipe`]: the README's beacon options and pipeline, which the tests run verbatim.
//! - [`host`]: whether this machine can run KVM COLO, and the SKIPPED/CI policy.
//! - [`standalone`]: the beacon in `qemu-system-x86_64 -M none`, flushed by the test.
//! - [`pair`] and [`trace`]: two QEMU processes in KVM COLO and the primary's COLO trace.

pub mod host;
pub mod pair;
pub mod recipe;
pub mod standalone;
pub mod trace;
