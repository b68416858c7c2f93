//! The configuration loader as a library, so that the fuzzer (`tests/fuzz`) and the tests
//! parse text exactly as the daemon does. The program itself (`main.rs`) compiles the same
//! files as its own modules; these are the ones `config` needs, and nothing here may name a
//! module of the program that is not listed.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod source_map;
/// Logging, as far as the configuration needs it: the operator's spelling of log levels.
pub mod logging {
    pub mod level;
}
