//! QEMU's own comparator, run standalone: `qemu-system-x86_64 -M none` with an iothread, four
//! listening UNIX socket chardevs and `-object colo-compare` (spec §14), the test connected
//! to all four as the primary and secondary filter-redirectors, the output's reader and the
//! COLO controller.

use std::path::Path;

use async_std::os::unix::net::UnixStream;
use tempfile::TempDir;

use crate::peer::Peer;
use crate::qemu::binary::QemuBinary;
use crate::qemu::process::QemuProcess;

/// The chardev ids, in the order primary_in, secondary_in, outdev, notify_dev.
const CHARDEVS: [&str; 4] = ["primary-in", "secondary-in", "compare-out", "controller"];

/// A running QEMU colo-compare and the test's four connections to it.
pub struct QemuComparator {
    process: QemuProcess,
    /// The primary filter-redirector's end.
    pub primary: Peer,
    /// The secondary filter-redirector's end.
    pub secondary: Peer,
    /// Where released frames come out.
    pub outdev: Peer,
    /// The COLO controller's end of `notify_dev`.
    pub notify: Peer,
    _dir: TempDir,
}

impl QemuComparator {
    /// Starts QEMU's colo-compare with default settings and `vnet_hdr_support` as given, and
    /// connects to it.
    pub async fn start(bin: &QemuBinary, vnet: bool) -> QemuComparator {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sock = |id: &str| dir.path().join(format!("{id}.sock"));
        let mut args: Vec<String> = ["-M", "none", "-nodefaults", "-display", "none", "-S"]
            .into_iter()
            .map(str::to_string)
            .collect();
        args.extend(["-object".into(), "iothread,id=compare-thread".into()]);
        for id in CHARDEVS {
            args.push("-chardev".into());
            args.push(format!(
                "socket,id={id},path={},server=on,wait=off",
                sock(id).display()
            ));
        }
        let [p, s, o, n] = CHARDEVS;
        args.push("-object".into());
        args.push(format!(
            "colo-compare,id=compare0,primary_in={p},secondary_in={s},outdev={o},notify_dev={n},\
             iothread=compare-thread,vnet_hdr_support={}",
            if vnet { "on" } else { "off" }
        ));
        let mut process = QemuProcess::spawn(bin, dir.path(), "qemu-colo-compare", &args).await;
        let primary = connect(&sock(p), vnet, vnet).await;
        let secondary = connect(&sock(s), vnet, vnet).await;
        let outdev = connect(&sock(o), vnet, vnet).await;
        // Q15: the controller's frames carry the vnet field when vnet is on, QEMU's never do.
        let notify = connect(&sock(n), vnet, false).await;
        let labels: Vec<String> = CHARDEVS.iter().map(|c| c.to_string()).collect();
        process.wait_connected(&labels).await;
        QemuComparator {
            process,
            primary,
            secondary,
            outdev,
            notify,
            _dir: dir,
        }
    }

    /// Whether QEMU still runs (it aborts on some inputs, spec §2.2).
    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    /// The command line and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        self.process.diagnostics()
    }
}

async fn connect(path: &Path, tx_vnet: bool, rx_vnet: bool) -> Peer {
    let s = UnixStream::connect(path)
        .await
        .unwrap_or_else(|e| panic!("connect to QEMU's {}: {e}", path.display()));
    Peer::new(Box::new(s), tx_vnet, rx_vnet)
}
