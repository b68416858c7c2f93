//! Helpers for colo-compare whole-program tests.

pub mod frames;
pub mod ledger;
pub mod logcap;
pub mod peer;
pub mod rig;
pub mod scenario;
