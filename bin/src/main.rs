//! The colo-compare daemon.
use colo_protocols as _;

fn main() {}
