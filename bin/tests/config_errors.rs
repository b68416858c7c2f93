//! Bad configuration files: each mistake gives exactly one line naming the file, line, column
//! and field, and exit code 2 (D-IN-3), from `check-config` and from `run` alike.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_colo-compare");

/// A valid file; each case changes one thing in it.
const BASE: &str = r#"(
    log: (level: "info"),
    pipelines: [
        (
            name: "nic0",
            primary_in: "tcp-listen:127.0.0.1:9001",
            secondary_in: "tcp-listen:127.0.0.1:9002",
            outdev: "tcp-listen:127.0.0.1:9003",
            notify_dev: Some("tcp-listen:127.0.0.1:9004"),
            compare_timeout: 3000,
        ),
    ],
)
"#;

/// A second pipeline, spliced in before the list closes.
const SECOND: &str = r#"        (
            name: "nic1",
            primary_in: "unix-listen:/run/colo/p1",
            secondary_in: "unix-listen:/run/colo/s1",
            outdev: "unix-listen:/run/colo/o1",
        ),
    ],"#;

/// The comparators this build links, as the error lists them: the built-ins plus the plugins
/// whose features are on.
fn linked() -> String {
    let mut names = vec!["icmp", "ip", "tcp", "udp"];
    if cfg!(feature = "ntp") {
        names.push("ntp");
    }
    if cfg!(feature = "dns") {
        names.push("dns");
    }
    names.sort_unstable();
    names.join(", ")
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "the base has no {from:?}");
    BASE.replacen(from, to, 1)
}

fn with_second(from: &str, to: &str) -> String {
    BASE.replacen("    ],", &SECOND.replacen(from, to, 1), 1)
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("COLO_LOG")
        .output()
        .expect("colo-compare runs")
}

fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "missing comma",
            edit("\"nic0\",\n", "\"nic0\"\n"),
            "bad.ron:6:13: pipelines[0].primary_in: expected a comma before this",
        ),
        (
            "unknown top-level field",
            edit("log: (level: \"info\"),", "logging: (level: \"info\"),"),
            "bad.ron:2:5: logging: unknown field (expected one of: log, control_socket, metrics, metrics_allow_remote, pipelines)",
        ),
        (
            "misspelt pipeline field",
            edit("compare_timeout: 3000", "compare_timout: 3000"),
            "bad.ron:10:13: pipelines[0].compare_timout: unknown field (expected one of: name, \
             primary_in, secondary_in, outdev, notify_dev, compare_timeout, expired_scan_cycle, \
             max_queue_size, vnet_hdr_support, max_held_bytes, max_connections, output_buffer, \
             passthrough, comparators, observe, capture, beacon)",
        ),
        (
            "required field missing",
            edit("            outdev: \"tcp-listen:127.0.0.1:9003\",\n", ""),
            "bad.ron:10:9: pipelines[0].outdev: missing (this field is required)",
        ),
        (
            "unknown endpoint scheme",
            edit("tcp-listen:127.0.0.1:9002", "udp-listen:127.0.0.1:9002"),
            "bad.ron:7:27: pipelines[0].secondary_in: \"udp-listen:127.0.0.1:9002\": expected \
             tcp-listen:HOST:PORT, tcp-connect:HOST:PORT, unix-listen:PATH or unix-connect:PATH",
        ),
        (
            "port out of range",
            edit("tcp-listen:127.0.0.1:9003", "tcp-listen:127.0.0.1:99999"),
            "bad.ron:8:21: pipelines[0].outdev: \"tcp-listen:127.0.0.1:99999\": expected \
             HOST:PORT with a port number (0-65535)",
        ),
        (
            "empty UNIX path",
            edit("\"tcp-listen:127.0.0.1:9001\"", "\"unix-listen:\""),
            "bad.ron:6:25: pipelines[0].primary_in: \"unix-listen:\": the socket path is empty",
        ),
        (
            "zero compare_timeout",
            edit("compare_timeout: 3000", "compare_timeout: 0"),
            "bad.ron:10:30: pipelines[0].compare_timeout: must be positive",
        ),
        (
            "compare_timeout beyond QEMU's range",
            edit("compare_timeout: 3000", "compare_timeout: 5000000000"),
            "bad.ron:10:30: pipelines[0].compare_timeout: 5000000000 ms is more than QEMU \
             accepts (4294967295)",
        ),
        (
            "negative expired_scan_cycle",
            edit("compare_timeout: 3000", "expired_scan_cycle: -5"),
            "bad.ron:10:33: pipelines[0].expired_scan_cycle: integer is out of bounds",
        ),
        (
            "number written as a string",
            edit("compare_timeout: 3000", "max_queue_size: \"1024\""),
            "bad.ron:10:29: pipelines[0].max_queue_size: expected integer",
        ),
        (
            "boolean written as a word",
            edit("compare_timeout: 3000", "vnet_hdr_support: \"yes\""),
            "bad.ron:10:31: pipelines[0].vnet_hdr_support: expected boolean",
        ),
        (
            "zero memory budget",
            edit("compare_timeout: 3000", "max_held_bytes: 0"),
            "bad.ron:10:29: pipelines[0].max_held_bytes: must be positive",
        ),
        (
            "zero output buffer",
            edit("compare_timeout: 3000", "output_buffer: 0"),
            "bad.ron:10:28: pipelines[0].output_buffer: must be positive",
        ),
        (
            "optional endpoint without Some",
            edit(
                "Some(\"tcp-listen:127.0.0.1:9004\")",
                "\"tcp-listen:127.0.0.1:9004\"",
            ),
            "bad.ron:9:25: pipelines[0].notify_dev: expected None or Some(...)",
        ),
        (
            "output is an input",
            edit("tcp-listen:127.0.0.1:9003", "tcp-listen:127.0.0.1:9001"),
            "bad.ron:8:21: pipelines[0].outdev: is the same endpoint as primary_in \
             (tcp-listen:127.0.0.1:9001)",
        ),
        (
            "two pipelines with one name",
            with_second("\"nic1\"", "\"nic0\""),
            "bad.ron:13:19: pipelines[1].name: \"nic0\" is already the name of pipelines[0]",
        ),
        (
            "one endpoint in two pipelines",
            with_second("unix-listen:/run/colo/o1", "tcp-listen:127.0.0.1:9004"),
            "bad.ron:16:21: pipelines[1].outdev: tcp-listen:127.0.0.1:9004 is already used by \
             pipelines[0].notify_dev",
        ),
        (
            "empty name",
            edit("name: \"nic0\"", "name: \"\""),
            "bad.ron:5:19: pipelines[0].name: must not be empty",
        ),
        (
            "no pipelines",
            "(\n    pipelines: [],\n)\n".to_string(),
            "bad.ron:2:16: pipelines: at least one pipeline is needed",
        ),
        (
            "unknown comparator",
            edit(
                "compare_timeout: 3000",
                "comparators: (disabled: [\"udp\", \"tpc\"])",
            ),
            "bad.ron:10:45: pipelines[0].comparators.disabled[1]: unknown comparator \"tpc\" \
             (linked: LINKED)",
        ),
        (
            "passthrough rule that matches nothing",
            edit(
                "compare_timeout: 3000",
                "passthrough: [(protocol: Some(17)), ()]",
            ),
            "bad.ron:10:26: pipelines[0].passthrough: rule 1 matches nothing: set ethertype, \
             protocol or port",
        ),
        (
            "passthrough port without protocol",
            edit("compare_timeout: 3000", "passthrough: [(port: Some(53))]"),
            "bad.ron:10:26: pipelines[0].passthrough: rule 0 names a port without a protocol",
        ),
        (
            "unknown log level",
            edit("level: \"info\"", "level: \"verbose\""),
            "bad.ron:2:18: log.level: unknown log level \"verbose\" (expected off, error, warn, \
             info, debug or trace)",
        ),
        (
            "unknown module log level",
            edit(
                "log: (level: \"info\"),",
                "log: (level: \"info\", modules: {\"colo_core\": \"loud\"}),",
            ),
            "bad.ron:2:49: log.modules.colo_core: unknown log level \"loud\" (expected off, \
             error, warn, info, debug or trace)",
        ),
        (
            "empty control socket path",
            edit(
                "    log: (level: \"info\"),\n",
                "    log: (level: \"info\"),\n    control_socket: Some(\"\"),\n",
            ),
            "bad.ron:3:21: control_socket: the path is empty",
        ),
        (
            "field given twice",
            edit(
                "compare_timeout: 3000",
                "compare_timeout: 3000,\n            compare_timeout: 4000",
            ),
            "bad.ron:11:13: pipelines[0].compare_timeout: given twice",
        ),
        (
            "unclosed bracket",
            BASE.trim_end().trim_end_matches(')').to_string(),
            "bad.ron:12:7: top level: the file ends too early (an unclosed bracket?)",
        ),
        (
            "text after the configuration",
            format!("{BASE}(junk)\n"),
            "bad.ron:13:2: top level: unexpected text after the configuration",
        ),
        (
            "named top-level struct",
            "Config(pipelines: [])".to_string(),
            "bad.ron:1:1: top level: write the configuration as (...), not Config(...)",
        ),
        (
            "empty file",
            "\n".to_string(),
            "bad.ron:1:1: top level: the file is empty; it needs at least (pipelines: [...])",
        ),
    ]
}

#[test]
fn every_mistake_is_one_exact_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = cases();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let expected = expected.replace("LINKED", &linked());
        std::fs::write(dir.path().join("bad.ron"), text).expect("write");
        let out = run_in(dir.path(), &["check-config", "bad.ron"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2)
            || stderr != format!("{expected}\n")
            || !out.stdout.is_empty()
        {
            failures.push(format!(
                "{what}: exit {:?}, stderr {stderr:?}, expected {expected:?}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn run_and_comparators_refuse_a_bad_file_the_same_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.ron"),
        edit("compare_timeout: 3000", "compare_timeout: 0"),
    )
    .expect("write");
    for args in [
        &["run", "--config", "bad.ron"][..],
        &["comparators", "--config", "bad.ron"][..],
    ] {
        let out = run_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "bad.ron:10:30: pipelines[0].compare_timeout: must be positive\n",
            "{args:?}"
        );
    }
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_in(dir.path(), &["check-config", "nowhere.ron"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("nowhere.ron: cannot read: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn the_example_checks_out_with_a_summary_line() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("colo-compare.example.ron");
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&example)
        .output()
        .expect("colo-compare runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "nic0: primary_in=tcp-listen:127.0.0.1:9001 secondary_in=tcp-listen:127.0.0.1:9002 \
             outdev=tcp-listen:127.0.0.1:9003 notify_dev=tcp-listen:127.0.0.1:9004 \
             compare_timeout=3000ms expired_scan_cycle=1000ms max_queue_size=1024 \
             vnet_hdr_support=off comparators={}\n",
            linked().replace(", ", ",")
        )
    );
}

#[test]
fn two_valid_pipelines_give_two_summary_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("two.ron"), with_second("", "")).expect("write");
    let out = run_in(dir.path(), &["check-config", "two.ron"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let names: Vec<_> = stdout
        .lines()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["nic0", "nic1"]);
}
