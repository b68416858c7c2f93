//! Fuzz target: the RON configuration loader on arbitrary text.
//!
//! An operator's typo must never crash the daemon (QEMU aborts on some invalid settings,
//! D-IN-3): the loader either accepts the text or refuses it with exactly one line that names
//! the file and a position inside it. Comparator sections are checked against the comparators
//! linked into the running program (see [`super::tracker`] on linking).

use colo_compare::config::{LoadError, parse};

/// The file name errors must start with.
const FILE: &str = "fuzz.ron";

/// Runs the target on one input; panics when a property breaks.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse(FILE, &text) {
        Ok(config) => assert!(
            !config.pipelines.is_empty(),
            "a configuration without pipelines was accepted"
        ),
        Err(e) => {
            let line = e.to_string();
            assert!(
                !line.contains(['\n', '\r']),
                "the error is not one line: {line:?}"
            );
            assert!(line.starts_with(&format!("{FILE}:")), "{line}");
            let LoadError::Invalid { at, .. } = e else {
                panic!("text that was read cannot fail to be read: {line}");
            };
            let lines = text.lines().count().max(1);
            assert!(
                (1..=lines + 1).contains(&at.line) && at.col >= 1,
                "position outside the text ({lines} lines): {line}"
            );
        }
    }
}
