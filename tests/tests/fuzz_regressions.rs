//! Replays the fuzz corpus (`tests/fuzz/corpus/<target>/`) through the very target bodies the
//! fuzzer runs (`colo_tests::fuzzing`), in the normal test suite: the seeds, the inputs the
//! fuzzer kept for reaching new code, and every input that once found a bug. A target that
//! panics on any of them fails here, with the files named.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use colo_tests::fuzzing::Target;
// The comparators the daemon ships, linked as the daemon links them (and as the fuzz targets do).
use colo_dns as _;
use colo_ntp as _;
use colo_protocols as _;

/// The corpus of `target`, sorted by file name.
fn corpus(target: Target) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target.name());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: Target, at_least: usize) {
    let files = corpus(target);
    assert!(
        files.len() >= at_least,
        "{}: only {} corpus files; the corpus is missing",
        target.name(),
        files.len()
    );
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).expect("a readable corpus file");
            let outcome = catch_unwind(AssertUnwindSafe(|| target.run(&data)));
            outcome.err().map(|e| {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("{}: {why}", path.display())
            })
        })
        .collect();
    std::panic::set_hook(hook);
    assert!(
        failed.is_empty(),
        "{} of {} inputs fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn frame_decoder() {
    replay(Target::FrameDecoder, 5);
}

#[test]
fn packet_classifier() {
    replay(Target::PacketClassifier, 20);
}

#[test]
fn tracker() {
    replay(Target::Tracker, 20);
}

#[test]
fn config_loader() {
    replay(Target::ConfigLoader, 3);
}
