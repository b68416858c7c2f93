//! A primary and a secondary QEMU in real KVM COLO on one host, as
//! `../shared/kvm/colo-pair.py` sets them up: `-M pc`, 64 MiB, no disk, no NIC, an idle guest,
//! migrating over a UNIX socket; the primary traces its COLO messages to a file and carries
//! the README's beacon options.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kvm::trace::{self, Checkpoint};
use crate::qemu::binary::QemuBinary;
use crate::qemu::process::{QemuProcess, START_WITHIN};
use crate::qemu::qmp::Qmp;

/// The primary's name: its files in the test's directory start with it.
const PRIMARY: &str = "primary-qemu";
/// The secondary's name.
const SECONDARY: &str = "secondary-qemu";

/// How long the primary may take to enter COLO.
pub const COLO_WITHIN: Duration = Duration::from_secs(20);

/// The two QEMU processes and the test's QMP sessions with them.
pub struct ColoPair {
    /// The primary.
    pub primary: QemuProcess,
    /// The secondary.
    pub secondary: QemuProcess,
    primary_qmp: Qmp,
    secondary_qmp: Qmp,
    dir: PathBuf,
}

fn common(dir: &Path, name: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "-M",
        "pc",
        "-accel",
        "kvm",
        "-m",
        "64",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    args.extend([
        "-name".into(),
        name.into(),
        "-trace".into(),
        "enable=colo_*".into(),
        "-D".into(),
        dir.join(format!("{name}.trace")).display().to_string(),
        "-msg".into(),
        "timestamp=on".into(),
        "-qmp".into(),
        format!(
            "unix:{},server=on,wait=off",
            dir.join(format!("{name}-test-qmp.sock")).display()
        ),
    ]);
    args
}

async fn session(process: &QemuProcess, dir: &Path, name: &str) -> Qmp {
    let path = dir.join(format!("{name}-test-qmp.sock"));
    Qmp::connect(&path, Instant::now() + START_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{name}: the test's QMP: {e}\n{}", process.diagnostics()))
}

impl ColoPair {
    /// Starts the secondary (waiting for the migration) and the primary with `extra` options.
    pub async fn start(bin: &QemuBinary, dir: &Path, extra: &[String]) -> ColoPair {
        let mut sec = common(dir, SECONDARY);
        sec.extend(["-incoming".into(), "defer".into()]);
        let secondary = QemuProcess::spawn(bin, dir, SECONDARY, &sec).await;
        let mut pri = common(dir, PRIMARY);
        pri.extend(extra.iter().cloned());
        let primary = QemuProcess::spawn(bin, dir, PRIMARY, &pri).await;
        let primary_qmp = session(&primary, dir, PRIMARY).await;
        let secondary_qmp = session(&secondary, dir, SECONDARY).await;
        ColoPair {
            primary,
            secondary,
            primary_qmp,
            secondary_qmp,
            dir: dir.to_path_buf(),
        }
    }

    /// Runs a command on the primary; panics with both processes' diagnostics on error.
    pub async fn primary(&mut self, command: &str, arguments: Value) -> Value {
        match self.primary_qmp.execute(command, arguments).await {
            Ok(v) => v,
            Err(e) => panic!("primary: {e}\n{}", self.diagnostics()),
        }
    }

    async fn secondary(&mut self, command: &str, arguments: Value) -> Value {
        match self.secondary_qmp.execute(command, arguments).await {
            Ok(v) => v,
            Err(e) => panic!("secondary: {e}\n{}", self.diagnostics()),
        }
    }

    /// Migrates the primary to the secondary with `x-colo` and waits until it is in COLO,
    /// checkpointing every `delay_ms`.
    pub async fn enter_colo(&mut self, delay_ms: u64) {
        let uri = format!("unix:{}", self.dir.join("migration.sock").display());
        let colo = json!({ "capabilities": [{ "capability": "x-colo", "state": true }] });
        self.secondary("migrate-set-capabilities", colo.clone())
            .await;
        self.secondary("migrate-incoming", json!({ "uri": uri }))
            .await;
        self.primary("migrate-set-capabilities", colo).await;
        self.set_checkpoint_delay(delay_ms).await;
        self.primary("migrate", json!({ "uri": uri })).await;
        let start = Instant::now();
        loop {
            let status = self.primary("query-migrate", json!({})).await;
            match status["status"].as_str() {
                Some("colo") => return,
                Some("completed" | "failed" | "cancelled") => panic!(
                    "the primary never entered COLO: {status}\n{}",
                    self.diagnostics()
                ),
                _ => {}
            }
            assert!(
                start.elapsed() < COLO_WITHIN,
                "the primary did not enter COLO within {COLO_WITHIN:?}: {status}\n{}",
                self.diagnostics()
            );
            async_std::task::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sets the primary's checkpoint period (which also starts a checkpoint when in COLO).
    pub async fn set_checkpoint_delay(&mut self, ms: u64) {
        self.primary(
            "migrate-set-parameters",
            json!({ "x-checkpoint-delay": ms }),
        )
        .await;
    }

    /// The checkpoints the primary traced so far.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        let path = self.dir.join(format!("{PRIMARY}.trace"));
        trace::checkpoints(&std::fs::read_to_string(&path).unwrap_or_default())
    }

    /// Both processes' command lines and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "primary: {}\nsecondary: {}",
            self.primary.diagnostics(),
            self.secondary.diagnostics()
        )
    }
}
