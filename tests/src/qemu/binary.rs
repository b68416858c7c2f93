//! Which QEMU the tests run, what version it is, and what happens when there is none.
//!
//! The QEMU tests are only worth something if they run, so a missing QEMU is a failure in CI
//! (`CI=true`); on a developer's machine without QEMU they print one `SKIPPED:` line saying
//! why and pass.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The binary run unless `QEMU_BIN` names another.
pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

/// A QEMU release, as `--version` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Micro.
    pub micro: u32,
}

impl Version {
    /// The first release whose socket chardev takes `reconnect-ms` (older ones take
    /// `reconnect`, in whole seconds).
    pub const RECONNECT_MS: Version = Version {
        major: 9,
        minor: 2,
        micro: 0,
    };

    /// Reads the version from `qemu-system-x86_64 --version` output ("QEMU emulator version
    /// 7.2.22 (Debian ...)").
    pub fn parse(banner: &str) -> Option<Version> {
        let rest = banner.split("version ").nth(1)?;
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version {
            major: parts.next()??,
            minor: parts.next()??,
            micro: parts.next().flatten().unwrap_or(0),
        })
    }

    /// The chardev option that makes a client redial after `ms` milliseconds, in the form
    /// this release accepts: `reconnect-ms=MS`, or `reconnect=SECONDS` (rounded up) before 9.2.
    pub fn reconnect_option(&self, ms: u64) -> String {
        if *self >= Version::RECONNECT_MS {
            format!("reconnect-ms={ms}")
        } else {
            format!("reconnect={}", ms.div_ceil(1000).max(1))
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// A QEMU binary that answered `--version`.
#[derive(Clone, Debug)]
pub struct QemuBinary {
    /// What to execute.
    pub path: PathBuf,
    /// Its release.
    pub version: Version,
}

/// Looks for QEMU: `QEMU_BIN` or [`DEFAULT_BINARY`] on the `PATH`, asked for its version.
pub fn find() -> Result<QemuBinary, String> {
    let path = std::env::var_os("QEMU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let banner = String::from_utf8_lossy(&out.stdout);
    let version = Version::parse(&banner).ok_or_else(|| {
        format!(
            "{} --version printed no version: {}",
            path.display(),
            banner.trim()
        )
    })?;
    Ok(QemuBinary { path, version })
}

/// Whether this run is CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The QEMU to test with, or `None` after printing `SKIPPED: <test>: <reason>` when there is
/// none outside CI. In CI a missing QEMU panics.
pub fn require(test: &str) -> Option<QemuBinary> {
    static FOUND: OnceLock<Result<QemuBinary, String>> = OnceLock::new();
    match FOUND.get_or_init(find) {
        Ok(q) => Some(q.clone()),
        Err(reason) if in_ci() => panic!(
            "{test}: QEMU is required in CI (CI=true) but unusable: {reason}; \
             .ci/run installs it with apt-get install qemu-system-x86"
        ),
        Err(reason) => {
            println!("SKIPPED: {test}: no usable QEMU ({reason})");
            None
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_debian_and_upstream_banners() {
        let debian = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright";
        assert_eq!(
            Version::parse(debian),
            Some(Version {
                major: 7,
                minor: 2,
                micro: 22
            })
        );
        assert_eq!(
            Version::parse("QEMU emulator version 10.0.2"),
            Some(Version {
                major: 10,
                minor: 0,
                micro: 2
            })
        );
        assert_eq!(Version::parse("something else"), None);
    }

    #[test]
    fn reconnect_is_in_seconds_before_9_2() {
        let old = Version::parse("QEMU emulator version 7.2.22").expect("version");
        let new = Version::parse("QEMU emulator version 10.0.2").expect("version");
        assert_eq!(old.reconnect_option(1000), "reconnect=1");
        assert_eq!(old.reconnect_option(200), "reconnect=1");
        assert_eq!(old.reconnect_option(2500), "reconnect=3");
        assert_eq!(new.reconnect_option(200), "reconnect-ms=200");
    }
}
