//! `colo-compare run` as an operator runs it: sockets from the command line or a file, and
//! signals: SIGTERM releases every held packet (D-LOSS-1) and exits 0, SIGINT likewise, SIGHUP
//! reopens the log file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use colo_core::frame::encode_parts;
use colo_core::{Decoded, Decoder};
use etherparse::PacketBuilder;

mod child;

use child::{BIN, Daemon, PATIENCE};

/// Sends the signal `name` to the daemon.
fn signal(daemon: &Daemon, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &daemon.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -s {name} failed");
}

fn udp_frame(payload: &[u8]) -> Bytes {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .udp(5000, 6000)
        .write(&mut out, payload)
        .expect("builds");
    Bytes::from(out)
}

fn arp_frame() -> Bytes {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.resize(60, 0);
    Bytes::from(f)
}

fn send(peer: &mut impl Write, frames: &[Bytes]) {
    let mut buf = Vec::new();
    for f in frames {
        encode_parts(f, None, &mut buf);
    }
    peer.write_all(&buf).expect("send frames");
}

/// Reads `n` frames (the stream has a read timeout set).
fn receive(peer: &mut impl Read, decoder: &mut Decoder, n: usize) -> Vec<Bytes> {
    let mut frames = Vec::new();
    let mut buf = [0u8; 4096];
    while frames.len() < n {
        while let Some(d) = decoder.next_frame().expect("well-framed output") {
            if let Decoded::Frame(f) = d {
                frames.push(f.data);
            }
        }
        if frames.len() >= n {
            break;
        }
        let got = peer.read(&mut buf).expect("output within the timeout");
        assert!(
            got > 0,
            "output closed after {} of {n} frames",
            frames.len()
        );
        decoder.feed(&buf[..got]);
    }
    frames
}

fn unix(dir: &Path, name: &str) -> String {
    format!("unix-listen:{}", dir.join(name).display())
}

#[test]
fn sigterm_releases_held_packets_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, s, o) = (
        unix(dir.path(), "p"),
        unix(dir.path(), "s"),
        unix(dir.path(), "o"),
    );
    let mut daemon = Daemon::spawn(&[
        "run",
        "--primary-in",
        &p,
        "--secondary-in",
        &s,
        "--outdev",
        &o,
        "--compare-timeout",
        "600000",
    ]);
    daemon.wait_for("running 1 pipeline");
    let mut output = UnixStream::connect(dir.path().join("o")).expect("outdev");
    output
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut primary = UnixStream::connect(dir.path().join("p")).expect("primary_in");
    let _secondary = UnixStream::connect(dir.path().join("s")).expect("secondary_in");

    // Five datagrams the secondary never matches: held. The ARP frame after them is released
    // at once; seeing it proves the five reached the engine.
    let held: Vec<Bytes> = (0..5u8).map(|i| udp_frame(&[i; 32])).collect();
    send(&mut primary, &held);
    send(&mut primary, &[arp_frame()]);
    let mut decoder = Decoder::new(false);
    assert_eq!(receive(&mut output, &mut decoder, 1), [arp_frame()]);

    signal(&daemon, "TERM");
    assert_eq!(receive(&mut output, &mut decoder, 5), held);
    let status = daemon.wait();
    assert_eq!(status.code(), Some(0), "{}", daemon.seen.join("\n"));
    let summary = daemon.wait_for("shutdown complete (1 pipeline(s))");
    assert!(
        summary.contains("released 5 held packets at shutdown, 0 released frames unwritten")
            && summary.contains("received primary 6 secondary 0, released 6"),
        "{summary}"
    );
    daemon.wait_for("SIGTERM: shutting down");
    daemon.wait_for(" colo_actors::");
}

#[test]
fn tcp_port_0_endpoints_are_logged_and_sigint_exits_0() {
    let mut daemon = Daemon::spawn(&[
        "run",
        "--primary-in",
        "tcp-listen:127.0.0.1:0",
        "--secondary-in",
        "tcp-listen:127.0.0.1:0",
        "--outdev",
        "tcp-listen:127.0.0.1:0",
        "--log-level",
        "debug",
    ]);
    let port = |d: &mut Daemon, role: &str| -> String {
        let line = d.wait_for(&format!("{role} listening on "));
        line.rsplit(' ').next().expect("an address").to_string()
    };
    let (p, s, o) = (
        port(&mut daemon, "primary_in"),
        port(&mut daemon, "secondary_in"),
        port(&mut daemon, "outdev"),
    );
    assert!(
        p.starts_with("127.0.0.1:") && p != s && s != o,
        "{p} {s} {o}"
    );
    let mut output = TcpStream::connect(&o).expect("outdev");
    output
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut primary = TcpStream::connect(&p).expect("primary_in");
    let mut secondary = TcpStream::connect(&s).expect("secondary_in");
    let frame = udp_frame(b"the same datagram from both guests");
    send(&mut primary, std::slice::from_ref(&frame));
    send(&mut secondary, std::slice::from_ref(&frame));
    let mut decoder = Decoder::new(false);
    assert_eq!(receive(&mut output, &mut decoder, 1), [frame]);

    signal(&daemon, "INT");
    assert_eq!(daemon.wait().code(), Some(0));
    let summary = daemon.wait_for("shutdown complete");
    assert!(
        summary.contains("released 0 held packets at shutdown")
            && summary.contains("received primary 1 secondary 1, released 1"),
        "{summary}"
    );
}

fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reopens_the_log_file_of_a_two_pipeline_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("colo.log");
    let config = dir.path().join("colo.ron");
    std::fs::write(
        &config,
        format!(
            r#"(
    log: (level: "warn", modules: {{"colo_compare": "info"}}, file: Some("{}")),
    control_socket: Some("{}"),
    pipelines: [
        (name: "nic7", primary_in: "{}", secondary_in: "{}", outdev: "{}"),
        (name: "nic8", primary_in: "{}", secondary_in: "{}", outdev: "{}"),
    ],
)"#,
            log.display(),
            dir.path().join("control.sock").display(),
            unix(dir.path(), "p"),
            unix(dir.path(), "s"),
            unix(dir.path(), "o"),
            unix(dir.path(), "p2"),
            unix(dir.path(), "s2"),
            unix(dir.path(), "o2"),
        ),
    )
    .expect("write config");
    let mut daemon = Daemon::spawn(&["run", "--config", config.to_str().expect("utf-8")]);
    let first = wait_for_file(&log, "running 2 pipeline(s)");
    assert!(first.contains("control_socket"), "{first}");
    // Every line carries a UTC timestamp, a level and the module.
    for line in first.lines() {
        let mut words = line.split_whitespace();
        let stamp = words.next().unwrap_or("");
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(
            matches!(words.next(), Some("INFO" | "WARN" | "ERROR")),
            "{line}"
        );
    }
    let rotated = dir.path().join("colo.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    signal(&daemon, "HUP");
    wait_for_file(&log, "reopened log file");
    signal(&daemon, "TERM");
    assert_eq!(daemon.wait().code(), Some(0));
    let after = wait_for_file(&log, "shutdown complete (2 pipeline(s))");
    assert!(!after.contains("running 2 pipeline"), "{after}");
    let before = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(!before.contains("shutdown complete"), "{before}");
    assert!(daemon.seen.is_empty(), "stderr: {:?}", daemon.seen);
}

#[test]
fn colo_log_chooses_levels_per_module_over_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--primary-in",
            &unix(dir.path(), "p"),
            "--secondary-in",
            &unix(dir.path(), "s"),
            "--outdev",
            &unix(dir.path(), "o"),
            "--log-level",
            "debug",
        ])
        .env("COLO_LOG", "off,colo_compare::run=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("colo-compare starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains(" colo_compare::run: "), "{first}");
    let mut rest = vec![first];
    for line in lines.by_ref() {
        let line = line.expect("utf-8 log");
        let running = line.contains("running 1 pipeline");
        rest.push(line);
        if running {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    rest.extend(lines.map_while(Result::ok));
    assert_eq!(child.wait().expect("exit").code(), Some(0));
    assert!(
        rest.iter().all(|l| l.contains(" colo_compare::run: ")),
        "only colo_compare::run may log:\n{}",
        rest.join("\n")
    );
    assert!(
        rest.iter().any(|l| l.contains("shutdown complete")),
        "{rest:?}"
    );
}
