//! Helpers for colo-compare whole-program tests.

pub mod frames;
pub mod fuzzing;
pub mod kvm;
pub mod ledger;
pub mod loadgen;
pub mod logcap;
pub mod memory;
pub mod peer;
pub mod qemu;
pub mod rig;
pub mod scenario;
pub mod steady;
pub mod tool;
