//! Fuzz target `tracker`: the body is `colo_tests::fuzzing::Target::Tracker`, shared with the
//! regression test that replays `tests/fuzz/corpus/tracker`.
#![no_main]

use colo_tests::fuzzing::Target;
use libfuzzer_sys::fuzz_target;
// The comparators the daemon ships, linked as the daemon links them.
use colo_dns as _;
use colo_ntp as _;
use colo_protocols as _;

fuzz_target!(|data: &[u8]| Target::Tracker.run(data));
