//! The command line teaches itself and refuses bad options with exit code 2.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_colo-compare");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("COLO_LOG")
        .output()
        .expect("colo-compare runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_subcommands_and_examples() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for word in [
        "run",
        "check-config",
        "comparators",
        "demo",
        "Examples:",
        "colo-compare demo",
        "SIGTERM",
        "SIGHUP",
        "Exit codes",
    ] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
}

#[test]
fn run_help_mirrors_every_qemu_property() {
    let out = run(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for (flag, property) in [
        ("--primary-in", "primary_in"),
        ("--secondary-in", "secondary_in"),
        ("--outdev", "outdev"),
        ("--notify-dev", "notify_dev"),
        ("--compare-timeout", "compare_timeout"),
        ("--expired-scan-cycle", "expired_scan_cycle"),
        ("--max-queue-size", "max_queue_size"),
        ("--vnet-hdr-support", "vnet_hdr_support"),
    ] {
        assert!(text.contains(flag), "run --help lacks {flag}");
        assert!(
            text.contains(&format!("QEMU `{property}`")),
            "run --help does not name QEMU's {property}"
        );
    }
    for word in [
        "--config",
        "--verbose",
        "--log-level",
        "COLO_LOG",
        "[default: 3000]",
    ] {
        assert!(text.contains(word), "run --help lacks {word}");
    }
}

#[test]
fn comparators_lists_the_linked_ones() {
    let out = run(&["comparators"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let rows: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect();
    let mut want = vec![
        ("icmp", "enabled"),
        ("ip", "enabled"),
        ("tcp", "enabled"),
        ("udp", "enabled"),
    ];
    // The plugins are linked exactly when their features are on (both by default).
    if cfg!(feature = "ntp") {
        want.push(("ntp", "enabled"));
    }
    if cfg!(feature = "dns") {
        want.push(("dns", "enabled"));
    }
    want.sort_unstable();
    assert_eq!(rows, want);
    assert!(text.contains("any other IP packet (fallback)"), "{text}");
    if cfg!(feature = "ntp") {
        let ntp = text
            .lines()
            .find(|l| l.starts_with("ntp "))
            .expect("an ntp row");
        assert!(ntp.contains("udp port 123"), "{ntp}");
    }
    if cfg!(feature = "dns") {
        let dns = text
            .lines()
            .find(|l| l.starts_with("dns "))
            .expect("a dns row");
        assert!(dns.contains("udp port 53"), "{dns}");
    }
}

#[test]
fn a_plugin_can_be_switched_off_in_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.ron");
    std::fs::write(
        &file,
        r#"(pipelines: [(
            name: "web",
            primary_in: "unix-listen:/run/p",
            secondary_in: "unix-listen:/run/s",
            outdev: "unix-listen:/run/o",
            comparators: (disabled: ["dns"], settings: {"ntp": (tolerance_ms: 20)}),
        )])"#,
    )
    .expect("write");
    let out = run(&[
        "comparators",
        "--config",
        file.to_str().expect("utf-8 path"),
    ]);
    if !cfg!(feature = "dns") {
        // Naming a comparator that is not linked is a configuration error.
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let dns = text
        .lines()
        .find(|l| l.starts_with("dns "))
        .expect("a dns row");
    assert!(dns.contains("disabled"), "{dns}");
}

#[test]
fn comparators_shows_what_a_configuration_disables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.ron");
    std::fs::write(
        &file,
        r#"(pipelines: [(
            name: "web",
            primary_in: "unix-listen:/run/p",
            secondary_in: "unix-listen:/run/s",
            outdev: "unix-listen:/run/o",
            comparators: (disabled: ["ip"]),
        )])"#,
    )
    .expect("write");
    let out = run(&[
        "comparators",
        "--config",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("pipeline web:\n"), "{text}");
    let ip = text
        .lines()
        .find(|l| l.starts_with("ip "))
        .expect("an ip row");
    assert!(ip.contains("disabled") && ip.contains("fallback"), "{ip}");
}

#[test]
fn bad_options_exit_2_with_a_reason() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["run", "--primary-in", "tcp-listen:127.0.0.1:0"],
            "--secondary-in",
        ),
        (
            &[
                "run",
                "--primary-in",
                "tcp-lisen:127.0.0.1:1",
                "--secondary-in",
                "unix-listen:/s",
                "--outdev",
                "unix-listen:/o",
            ],
            "expected tcp-listen:HOST:PORT",
        ),
        (
            &[
                "run",
                "--config",
                "x.ron",
                "--primary-in",
                "unix-listen:/p",
                "--secondary-in",
                "unix-listen:/s",
                "--outdev",
                "unix-listen:/o",
            ],
            "cannot be used with",
        ),
        (&["run", "--compare-timeout", "5"], "--primary-in"),
        (&["run", "-v", "--log-level", "info"], "cannot be used with"),
        (
            &["run", "--log-level", "loud"],
            "unknown log level \"loud\"",
        ),
    ];
    for (args, reason) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn command_line_values_are_validated_like_the_file() {
    let out = run(&[
        "run",
        "--primary-in",
        "unix-listen:/nonexistent/p",
        "--secondary-in",
        "unix-listen:/nonexistent/s",
        "--outdev",
        "unix-listen:/nonexistent/o",
        "--compare-timeout",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "command line: --compare-timeout: must be positive\n"
    );
    let out = run(&[
        "run",
        "--primary-in",
        "unix-listen:/nonexistent/p",
        "--secondary-in",
        "unix-listen:/nonexistent/p",
        "--outdev",
        "unix-listen:/nonexistent/o",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "command line: --secondary-in: is the same endpoint as primary_in \
         (unix-listen:/nonexistent/p)\n"
    );
}

#[test]
fn a_malformed_colo_log_is_refused() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--primary-in",
            "unix-listen:/nonexistent/p",
            "--secondary-in",
            "unix-listen:/nonexistent/s",
            "--outdev",
            "unix-listen:/nonexistent/o",
        ])
        .env("COLO_LOG", "info,colo_core=loud")
        .output()
        .expect("colo-compare runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("COLO_LOG: \"colo_core=loud\": unknown log level"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_socket_that_cannot_be_bound_exits_1() {
    let out = run(&[
        "run",
        "--primary-in",
        "unix-listen:/nonexistent/dir/p",
        "--secondary-in",
        "unix-listen:/nonexistent/dir/s",
        "--outdev",
        "unix-listen:/nonexistent/dir/o",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("cannot start") && text.contains("/nonexistent/dir/p"),
        "{text}"
    );
}
