//! The README's beacon in QEMU's standalone comparator: `qemu-system-x86_64 -M none` with the
//! recipe's options as written, plus what only a test adds: a `notify_dev` on the beacon, so
//! that the test can flush it with `COLO_CHECKPOINT` (which runs the same flush function as a
//! KVM checkpoint) and sees each checkpoint request as `DO_CHECKPOINT` (with `notify_dev` set,
//! QEMU sends a mismatch there instead of starting a checkpoint), and a QMP session of the
//! test's own.

use std::path::Path;
use std::time::Instant;

use async_std::os::unix::net::UnixStream;

use crate::kvm::recipe::BeaconRecipe;
use crate::peer::Peer;
use crate::qemu::binary::QemuBinary;
use crate::qemu::process::{QemuProcess, START_WITHIN};
use crate::qemu::qmp::Qmp;

/// The chardev id of the test's `notify_dev`.
const NOTIFY: &str = "beacon_test_notify";

/// A running standalone beacon and the test's connections to it.
pub struct StandaloneBeacon {
    process: QemuProcess,
    /// The test's end of the beacon's `notify_dev`.
    pub notify: Peer,
    /// The test's QMP session.
    pub qmp: Qmp,
}

impl StandaloneBeacon {
    /// Starts QEMU with the recipe's options (its sockets in `dir`) and connects to it.
    pub async fn start(bin: &QemuBinary, dir: &Path, recipe: &BeaconRecipe) -> StandaloneBeacon {
        let notify_path = dir.join("beacon_test_notify.sock");
        let qmp_path = dir.join("beacon_test_qmp.sock");
        let mut args: Vec<String> = ["-M", "none", "-nodefaults", "-display", "none"]
            .into_iter()
            .map(str::to_string)
            .collect();
        args.push("-qmp".into());
        args.push(format!("unix:{},server=on,wait=off", qmp_path.display()));
        args.push("-chardev".into());
        args.push(format!(
            "socket,id={NOTIFY},path={},server=on,wait=off",
            notify_path.display()
        ));
        for a in &recipe.qemu {
            if a.starts_with("colo-compare,") {
                args.push(format!("{a},notify_dev={NOTIFY}"));
            } else {
                args.push(a.clone());
            }
        }
        let process = QemuProcess::spawn(bin, dir, "beacon", &args).await;
        let stream = UnixStream::connect(&notify_path)
            .await
            .unwrap_or_else(|e| panic!("connect to the beacon's notify_dev: {e}"));
        let qmp = Qmp::connect(&qmp_path, Instant::now() + START_WITHIN)
            .await
            .unwrap_or_else(|e| panic!("the test's QMP: {e}\n{}", process.diagnostics()));
        StandaloneBeacon {
            process,
            notify: Peer::new(Box::new(stream), false, false),
            qmp,
        }
    }

    /// Waits until colo-compare is connected to the beacon's sockets (and QMP).
    pub async fn wait_connected(&mut self, recipe: &BeaconRecipe) {
        let ids: Vec<String> = recipe
            .qemu
            .iter()
            .filter(|a| a.starts_with("socket,"))
            .filter_map(|a| crate::qemu::readme::option_value(a, "id").map(str::to_string))
            .collect();
        self.process.wait_connected(&ids).await;
    }

    /// The command line and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        self.process.diagnostics()
    }
}
