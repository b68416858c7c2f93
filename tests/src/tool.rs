//! Whether an external tool a test checks its output with (`promtool`, `tshark`) is there.
//!
//! Also compiled into the `colo-compare` package's own tests (`bin/tests/operate.rs` includes
//! this file by path): they cannot depend on this crate, which depends on theirs.

use std::process::Command;

/// Whether `tool` can run. Outside CI a missing tool skips the part of the test that needs
/// it, saying so; with CI=true it is a failure.
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed and CI=true: .ci/run must install it"
        );
        println!("SKIPPED: {tool} not installed; the {tool} check of this test did not run");
    }
    found
}
