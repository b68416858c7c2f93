//! One QEMU process owned by a test: started with a QMP socket in the test's temporary
//! directory, its stderr kept in a log file there, killed when the test lets go of it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::qemu::binary::QemuBinary;
use crate::qemu::qmp::{Chardev, Qmp};

/// How long QEMU may take to start and to connect its chardevs.
pub const START_WITHIN: Duration = Duration::from_secs(10);

/// A running QEMU and its QMP session.
pub struct QemuProcess {
    name: String,
    command: String,
    child: Child,
    log: PathBuf,
    qmp: Qmp,
}

impl QemuProcess {
    /// Starts `bin` with `args` plus a QMP socket `DIR/NAME-qmp.sock`; stderr goes to
    /// `DIR/NAME.log` (appended to, so a restarted process keeps the first one's lines).
    /// Returns once QMP answers.
    pub async fn spawn(bin: &QemuBinary, dir: &Path, name: &str, args: &[String]) -> QemuProcess {
        let qmp_path = dir.join(format!("{name}-qmp.sock"));
        let _ = std::fs::remove_file(&qmp_path);
        let log = dir.join(format!("{name}.log"));
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the QEMU log file");
        let mut all: Vec<String> = args.to_vec();
        all.push("-qmp".into());
        all.push(format!("unix:{},server=on,wait=off", qmp_path.display()));
        let command = format!("{} {}", bin.path.display(), all.join(" "));
        let mut child = Command::new(&bin.path)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {command}: {e}"));
        let deadline = Instant::now() + START_WITHIN;
        let qmp = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{name}: QEMU exited at start ({status})\ncommand: {command}\nstderr:\n{}",
                    read_log(&log)
                );
            }
            if qmp_path.exists() {
                let soon = Instant::now() + Duration::from_millis(200);
                if let Ok(q) = Qmp::connect(&qmp_path, soon).await {
                    break q;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no QMP within {START_WITHIN:?}\ncommand: {command}\nstderr:\n{}",
                read_log(&log)
            );
            async_std::task::sleep(Duration::from_millis(5)).await;
        };
        QemuProcess {
            name: name.to_string(),
            command,
            child,
            log,
            qmp,
        }
    }

    /// What QEMU printed on stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// The chardevs as QEMU reports them now.
    pub async fn chardevs(&mut self) -> Vec<Chardev> {
        match self.qmp.chardevs().await {
            Ok(c) => c,
            Err(e) => panic!("{}: {e}\n{}", self.name, self.diagnostics()),
        }
    }

    /// Waits until every chardev in `labels` has its peer connected.
    pub async fn wait_connected(&mut self, labels: &[String]) {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let devs = self.chardevs().await;
            let waiting: Vec<&Chardev> = labels
                .iter()
                .map(|l| {
                    devs.iter()
                        .find(|d| &d.label == l)
                        .unwrap_or_else(|| panic!("{}: no chardev {l}: {devs:?}", self.name))
                })
                .filter(|d| !d.connected())
                .collect();
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: chardevs not connected within {START_WITHIN:?}: {waiting:?}\n{}",
                self.name,
                self.diagnostics()
            );
            async_std::task::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The port the listening TCP chardev `label` was bound to (it was given port 0).
    pub async fn listening_port(&mut self, label: &str) -> u16 {
        let devs = self.chardevs().await;
        devs.iter()
            .find(|d| d.label == label)
            .and_then(Chardev::listening_port)
            .unwrap_or_else(|| panic!("{}: chardev {label} is not listening: {devs:?}", self.name))
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (SIGKILL, as a crash would) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The command line and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!("command: {}\nstderr:\n{}", self.command, self.log())
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}
