//! The operator's view of a running daemon: Prometheus metrics scraped over TCP (and checked
//! with `promtool`), the control socket driven with `colo-compare ctl`, `reload`, observe mode
//! from the command line, and `shutdown`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use colo_core::frame::encode_parts;
use colo_core::{Decoded, Decoder};
use etherparse::PacketBuilder;

mod child;
#[path = "../../tests/src/tool.rs"]
mod tool;

use child::{BIN, Daemon, PATIENCE};
use tool::have;

/// Starts `colo-compare ARGS` and waits until its one pipeline runs.
fn start(args: &[&str]) -> Daemon {
    let mut d = Daemon::spawn(args);
    d.wait_for("running 1 pipeline");
    d
}

fn udp_frame(src_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .udp(src_port, 6000)
        .write(&mut out, payload)
        .expect("builds");
    out
}

fn send(peer: &mut UnixStream, frame: &[u8]) {
    let mut buf = Vec::new();
    encode_parts(frame, None, &mut buf);
    peer.write_all(&buf).expect("send a frame");
}

/// A pipeline `nic0` on UNIX sockets in `dir`, with `global` settings before it and `extra`
/// settings in it.
fn write_config(dir: &Path, global: &str, extra: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        r#"(
    {global}
    pipelines: [(
        name: "nic0",
        primary_in: "unix-listen:{d}/p.sock",
        secondary_in: "unix-listen:{d}/s.sock",
        outdev: "unix-listen:{d}/o.sock",
        {extra}
    )],
)"#
    );
    let path = dir.join("colo.ron");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

fn connect(dir: &Path, name: &str) -> UnixStream {
    let s = UnixStream::connect(dir.join(name)).expect("connect to the daemon");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s
}

/// GET `path` from `addr`: (status line, headers and body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// The value of the sample written exactly as `sample` (name and labels).
fn sample(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn metrics_addr(d: &mut Daemon) -> String {
    let line = d.wait_for("metrics: serving http://");
    let start = line.find("http://").expect("a URL") + "http://".len();
    let end = line[start..].find('/').expect("a path") + start;
    line[start..end].to_string()
}

/// Scrapes until `done` holds for the body; panics after [`PATIENCE`].
fn scrape_until(addr: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(addr, "/metrics");
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {what}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn promtool_accepts(body: &str) {
    if !have("promtool") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_are_scraped_over_tcp_and_pass_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"metrics: Some("127.0.0.1:0"),"#, "");
    let mut d = start(&["run", "--config", config.to_str().expect("utf-8")]);
    let addr = metrics_addr(&mut d);
    let (mut p, mut s, _o) = (
        connect(dir.path(), "p.sock"),
        connect(dir.path(), "s.sock"),
        connect(dir.path(), "o.sock"),
    );
    send(&mut p, &udp_frame(1, b"same"));
    send(&mut s, &udp_frame(1, b"same"));
    send(&mut p, &udp_frame(2, b"primary"));
    send(&mut s, &udp_frame(2, b"secondary"));
    let mismatch = r#"colo_checkpoint_requests_total{pipeline="nic0",reason="mismatch"}"#;
    let body = scrape_until(&addr, "the mismatch", |b| sample(b, mismatch) == Some(1.0));
    let expect = [
        (
            r#"colo_frames_received_total{pipeline="nic0",side="primary"}"#,
            2.0,
        ),
        (
            r#"colo_frames_received_total{pipeline="nic0",side="secondary"}"#,
            2.0,
        ),
        (
            r#"colo_released_total{pipeline="nic0",reason="matched"}"#,
            1.0,
        ),
        (
            r#"colo_dropped_total{pipeline="nic0",side="secondary",reason="matched"}"#,
            1.0,
        ),
        (r#"colo_held_packets{pipeline="nic0",side="primary"}"#, 1.0),
        (r#"colo_connections{pipeline="nic0"}"#, 2.0),
        (
            r#"colo_comparator_decisions_total{pipeline="nic0",comparator="udp",decision="mismatched"}"#,
            1.0,
        ),
        (r#"colo_held_seconds_count{pipeline="nic0"}"#, 1.0),
        (
            r#"colo_held_seconds_bucket{pipeline="nic0",le="+Inf"}"#,
            1.0,
        ),
        (r#"colo_observe_mode{pipeline="nic0"}"#, 0.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&body, name), Some(value), "{name}\n{body}");
    }
    promtool_accepts(&body);
    let (head, _) = http_get(&addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let (head, _) = http_get(&addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    Command::new("kill")
        .args(["-s", "TERM", &d.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert_eq!(d.wait().code(), Some(0));
}

#[test]
fn a_metrics_address_off_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"metrics: Some("0.0.0.0:9100"),"#, "");
    let out = Command::new(BIN)
        .args(["check-config", config.to_str().expect("utf-8")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics: 0.0.0.0:9100 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("metrics_allow_remote: true"), "{err}");
}

#[test]
fn observe_from_the_command_line_counts_would_be_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"metrics: Some("127.0.0.1:0"),"#, "");
    let mut d = start(&[
        "run",
        "--observe",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    d.wait_for("pipeline nic0: observe mode");
    let addr = metrics_addr(&mut d);
    let (mut p, mut s, mut o) = (
        connect(dir.path(), "p.sock"),
        connect(dir.path(), "s.sock"),
        connect(dir.path(), "o.sock"),
    );
    let frame = udp_frame(2, b"primary");
    send(&mut p, &frame);
    let mut decoder = Decoder::new(false);
    let mut buf = [0u8; 4096];
    let released = loop {
        if let Some(Decoded::Frame(f)) = decoder.next_frame().expect("well framed") {
            break f;
        }
        let n = o.read(&mut buf).expect("output before the secondary spoke");
        assert!(n > 0, "the output closed");
        decoder.feed(&buf[..n]);
    };
    assert_eq!(released.data.as_ref(), frame.as_slice());
    send(&mut s, &udp_frame(2, b"secondary"));
    let would = r#"colo_would_be_checkpoints_total{pipeline="nic0",reason="mismatch"}"#;
    let body = scrape_until(&addr, "the would-be checkpoint", |b| {
        sample(b, would) == Some(1.0)
    });
    for (name, value) in [
        (r#"colo_observe_mode{pipeline="nic0"}"#, 1.0),
        (
            r#"colo_checkpoint_requests_total{pipeline="nic0",reason="mismatch"}"#,
            0.0,
        ),
        (
            r#"colo_released_total{pipeline="nic0",reason="observed"}"#,
            1.0,
        ),
        (
            r#"colo_would_be_released_total{pipeline="nic0",reason="checkpoint-flush"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&body, name), Some(value), "{name}\n{body}");
    }
    d.wait_for("observe: would request a checkpoint: mismatch");
    promtool_accepts(&body);
}

fn ctl(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .args(args)
        .output()
        .expect("ctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim()).expect("one JSON line")
}

#[test]
fn the_control_socket_serves_ctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("ctl.sock");
    let global = format!(r#"control_socket: Some("{}"),"#, socket.display());
    let config = write_config(dir.path(), &global, "");
    let cfg = config.to_str().expect("utf-8");
    let mut d = start(&["run", "--config", cfg]);
    let mode = std::fs::metadata(&socket)
        .expect("the socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (mut p, _s, mut o) = (
        connect(dir.path(), "p.sock"),
        connect(dir.path(), "s.sock"),
        connect(dir.path(), "o.sock"),
    );
    let lonely = udp_frame(7, b"lonely");
    send(&mut p, &lonely);

    // flows: the held connection, found by its address, hidden by another filter.
    let deadline = Instant::now() + PATIENCE;
    let flows = loop {
        let out = ctl(&[
            "--config",
            cfg,
            "--json",
            "flows",
            "--match",
            "10.0.0.2:7",
            "--min-held",
            "1",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        if v["result"]["total"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "the flow never showed: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let flow = &flows["result"]["flows"][0];
    assert_eq!(flow["pipeline"], "nic0");
    assert_eq!(flow["comparator"], "udp");
    assert_eq!(flow["held"]["primary"], 1);
    assert!(
        flow["oldest_age_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{flow}"
    );
    let none = ctl(&[
        "--socket",
        socket.to_str().expect("utf-8"),
        "--json",
        "flows",
        "--match",
        "10.9.9.9",
    ]);
    assert_eq!(json(&none)["result"]["total"], 0);
    let table = ctl(&["--config", cfg, "flows"]);
    assert!(stdout(&table).starts_with("PIPELINE"), "{}", stdout(&table));
    assert!(stdout(&table).contains("10.0.0.2:7"), "{}", stdout(&table));

    // stats, for people and for scripts.
    let text = stdout(&ctl(&["--config", cfg, "stats"]));
    assert!(text.contains("pipeline nic0\n"), "{text}");
    assert!(
        text.contains("held now     primary 1, secondary 0"),
        "{text}"
    );
    let stats = json(&ctl(&["--config", cfg, "--json", "stats"]));
    assert_eq!(stats["result"]["pipelines"][0]["received"]["primary"], 1);

    // checkpoint: the held packet goes out.
    let out = ctl(&["--config", cfg, "checkpoint"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("checkpoint flush done: nic0"),
        "{}",
        stdout(&out)
    );
    let mut decoder = Decoder::new(false);
    let mut buf = [0u8; 4096];
    let n = o.read(&mut buf).expect("the flushed frame");
    decoder.feed(&buf[..n]);
    match decoder.next_frame().expect("well framed") {
        Some(Decoded::Frame(f)) => assert_eq!(f.data.as_ref(), lonely.as_slice()),
        other => panic!("expected the lonely frame, got {other:?}"),
    }

    // reload: new timers take effect without a restart...
    write_config(
        dir.path(),
        &global,
        "compare_timeout: 100, expired_scan_cycle: 20,",
    );
    let out = ctl(&["--config", cfg, "reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("reloaded: nic0: compare_timeout 3000 ms -> 100 ms"),
        "{}",
        stdout(&out)
    );
    send(&mut p, &udp_frame(8, b"lonely again"));
    d.wait_for("checkpoint requested: timeout");
    // ...and a change of a socket is refused by name, with the daemon running on.
    let moved = std::fs::read_to_string(&config)
        .expect("read")
        .replace("o.sock", "elsewhere.sock");
    std::fs::write(&config, moved).expect("write");
    let out = ctl(&["--config", cfg, "reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "reload refused: pipelines[0].outdev (pipeline nic0) cannot change while running"
        ),
        "{err}"
    );
    assert!(
        ctl(&["--socket", socket.to_str().expect("utf-8"), "stats"])
            .status
            .success()
    );

    // shutdown: drained, exit 0, the socket file gone.
    let out = ctl(&["--socket", socket.to_str().expect("utf-8"), "shutdown"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("nic0: drained, 1 held primary packets released at shutdown"),
        "{}",
        stdout(&out)
    );
    assert_eq!(d.wait().code(), Some(0));
    assert!(!socket.exists(), "the control socket was left behind");
    let gone = ctl(&["--socket", socket.to_str().expect("utf-8"), "stats"]);
    assert_eq!(gone.status.code(), Some(1));
}
