//! The bodies of the fuzz targets, shared by the cargo-fuzz crate (`tests/fuzz`) and the test
//! that replays the regression corpus (`tests/tests/fuzz_regressions.rs`), so that whatever
//! the fuzzer once found stays checked by the normal test suite.
//!
//! Each target takes arbitrary bytes and panics when a property breaks; a panic is what the
//! fuzzer reports as a finding.

pub mod audit;
pub mod classifier;
pub mod config;
pub mod frame_decoder;
pub mod input;
pub mod tracker;
pub mod traffic;

/// A fuzz target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// [`frame_decoder`]: the frame decoder, arbitrary stream in arbitrary chunks.
    FrameDecoder,
    /// [`classifier`]: the packet classifier on arbitrary frames.
    PacketClassifier,
    /// [`tracker`]: the tracker under an arbitrary sequence of inputs.
    Tracker,
    /// [`config`]: the RON configuration loader on arbitrary text.
    ConfigLoader,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::FrameDecoder,
        Target::PacketClassifier,
        Target::Tracker,
        Target::ConfigLoader,
    ];

    /// The target's name: its cargo-fuzz binary and its corpus directory.
    pub const fn name(self) -> &'static str {
        match self {
            Target::FrameDecoder => "frame_decoder",
            Target::PacketClassifier => "packet_classifier",
            Target::Tracker => "tracker",
            Target::ConfigLoader => "config_loader",
        }
    }

    /// Runs the target on one input; panics when a property breaks.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::FrameDecoder => frame_decoder::run(data),
            Target::PacketClassifier => classifier::run(data),
            Target::Tracker => tracker::run(data),
            Target::ConfigLoader => config::run(data),
        }
    }
}
