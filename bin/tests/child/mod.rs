//! The daemon as a child process, shared by the test files that run the program itself: its
//! log lines are read on a thread, so a test can wait for the line that says what it expects.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The program under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_colo-compare");
/// How long a test waits for the daemon to say or do something.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The daemon as a child process, its stderr read line by line on a thread.
pub struct Daemon {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// The log lines read so far.
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts `colo-compare ARGS` with no COLO_LOG from the test's environment.
    pub fn spawn(args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("COLO_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("colo-compare starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first log line (seen so far or to come) containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the daemon to exit, then collects its last log lines.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
