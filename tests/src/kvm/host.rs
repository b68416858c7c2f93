//! Whether this machine can run KVM COLO, and what happens when it cannot.
//!
//! KVM COLO needs `/dev/kvm` and a QEMU whose COLO works (not 10.0.0 to 10.0.6). Without
//! `/dev/kvm` the KVM tests print one `SKIPPED:` line and pass, in CI too (CI machines of this
//! kind have it). With `/dev/kvm` present in CI (`CI=true`) they must run: an unusable device or
//! a broken QEMU fails them instead of skipping.

use std::fs::OpenOptions;
use std::path::Path;

use crate::qemu::binary::{self, QemuBinary, Version, in_ci};

/// The KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Whether `v` is one of the releases whose KVM COLO never enters COLO (10.0.0 to 10.0.6;
/// fixed by "migration: Fix transition to COLO state from precopy").
pub fn colo_broken(v: Version) -> bool {
    v.major == 10 && v.minor == 0 && v.micro <= 6
}

fn refuse(test: &str, reason: String) -> Option<QemuBinary> {
    if in_ci() {
        panic!("{test}: {reason}; with {KVM_DEVICE} present the KVM COLO test must run in CI");
    }
    println!("SKIPPED: {test}: {reason}");
    None
}

/// The QEMU to run KVM COLO with, or `None` after printing `SKIPPED: <test>: <reason>`.
pub fn require_kvm(test: &str) -> Option<QemuBinary> {
    let bin = binary::require(test)?;
    with_device(test, Path::new(KVM_DEVICE), bin)
}

/// `bin` if `device` is a usable KVM device and `bin` can run KVM COLO.
fn with_device(test: &str, device: &Path, bin: QemuBinary) -> Option<QemuBinary> {
    let shown = device.display();
    if !device.exists() {
        println!("SKIPPED: {test}: {shown} is absent; KVM COLO needs KVM");
        return None;
    }
    if let Err(e) = OpenOptions::new().read(true).write(true).open(device) {
        return refuse(test, format!("{shown} cannot be opened ({e})"));
    }
    if colo_broken(bin.version) {
        return refuse(
            test,
            format!(
                "QEMU {} cannot run KVM COLO (10.0.0 to 10.0.6 never enter COLO); use 7.2 or \
                 10.0.7 and later (QEMU_BIN)",
                bin.version
            ),
        );
    }
    Some(bin)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn without_the_device_the_test_is_skipped_even_in_ci() {
        let bin = QemuBinary {
            path: "qemu-system-x86_64".into(),
            version: Version::parse("QEMU emulator version 7.2.22").expect("version"),
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        assert!(with_device("t", &dir.path().join("kvm"), bin.clone()).is_none());
        // A device that opens, with a QEMU that can run KVM COLO, is used.
        let device = dir.path().join("device");
        std::fs::write(&device, b"").expect("a stand-in device");
        assert!(with_device("t", &device, bin).is_some());
    }

    #[test]
    fn only_10_0_0_to_10_0_6_are_broken() {
        let v = |s: &str| Version::parse(&format!("QEMU emulator version {s}")).expect("version");
        assert!(!colo_broken(v("7.2.22")));
        assert!(colo_broken(v("10.0.0")));
        assert!(colo_broken(v("10.0.2")));
        assert!(colo_broken(v("10.0.6")));
        assert!(!colo_broken(v("10.0.7")));
        assert!(!colo_broken(v("10.2.0")));
    }
}
