//! Mismatch captures: the primary and secondary frames of every mismatch, appended to a classic
//! pcap file an operator opens in Wireshark or `tshark -r`.
//!
//! A checkpoint storm is only understood by looking at the packets that caused it, and by then
//! they are gone; so when a pipeline names a capture file each mismatch is written there, the
//! primary's frame first, the secondary's second, with the wall-clock time of the mismatch.
//! The file is bounded by a count of mismatches and by bytes: past either bound capturing
//! stops, the skipped mismatches are counted and the stop is logged once. An existing capture
//! is appended to (a restarted daemon keeps the evidence of the storm before it), and its size
//! counts against the byte bound.
//!
//! Writes are synchronous: a mismatch is two small records into the page cache, bounded in
//! number, and doing them where the mismatch is seen keeps them in order with the log line
//! that names the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use colo_core::config::ConfigError;
use colo_core::{Mismatch, Timestamp, pcap};
use serde::{Deserialize, Serialize};

/// Where and how much to capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// The pcap file; created if missing, appended to if it holds a capture already.
    pub path: PathBuf,
    /// Mismatches written at most (two frames each). Default 1000.
    #[serde(default = "defaults::max_mismatches")]
    pub max_mismatches: u64,
    /// Bytes the file may grow to, header included. Default 64 MiB.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
}

/// Default bounds of a capture.
pub mod defaults {
    /// 1000 mismatches.
    pub fn max_mismatches() -> u64 {
        1000
    }
    /// 64 MiB.
    pub fn max_bytes() -> u64 {
        64 << 20
    }
}

impl CaptureConfig {
    /// A capture to `path` with the default bounds.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CaptureConfig {
            path: path.into(),
            max_mismatches: defaults::max_mismatches(),
            max_bytes: defaults::max_bytes(),
        }
    }

    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError {
                field: "path",
                problem: "the path is empty".into(),
            });
        }
        let smallest = (pcap::HEADER_LEN + 2 * pcap::RECORD_HEADER_LEN) as u64;
        if self.max_bytes < smallest {
            return Err(ConfigError {
                field: "max_bytes",
                problem: format!("must be at least {smallest} (a header and one record pair)"),
            });
        }
        if self.max_mismatches == 0 {
            return Err(ConfigError {
                field: "max_mismatches",
                problem: "must be positive (leave capture out to capture nothing)".into(),
            });
        }
        Ok(())
    }
}

/// What a capture has done so far, published for `stats` and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStatus {
    /// The file.
    pub path: PathBuf,
    /// Mismatches written by this process.
    pub written: u64,
    /// Mismatches not written because a bound was reached or writing failed.
    pub skipped: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// What became of one mismatch.
#[derive(Debug)]
pub(crate) enum Captured {
    /// Written as the `n`-th mismatch of this process.
    Written(u64),
    /// Not written: a bound is reached. `first` is true for the first one skipped.
    Full {
        /// Whether this is the first mismatch skipped (the one to log).
        first: bool,
    },
    /// Not written: the file could not be opened or written.
    Failed {
        /// The error.
        error: io::Error,
        /// Whether this is the first failure since the last success (the one to log).
        first: bool,
    },
}

/// An open (or not yet opened) mismatch capture.
pub(crate) struct CaptureWriter {
    config: CaptureConfig,
    file: Option<File>,
    status: CaptureStatus,
    failing: bool,
}

impl CaptureWriter {
    /// A capture to `config.path`, opened at the first mismatch.
    pub(crate) fn new(config: CaptureConfig) -> Self {
        let status = CaptureStatus {
            path: config.path.clone(),
            ..CaptureStatus::default()
        };
        CaptureWriter {
            config,
            file: None,
            status,
            failing: false,
        }
    }

    /// The settings in force.
    pub(crate) fn config(&self) -> &CaptureConfig {
        &self.config
    }

    /// Takes new bounds for the same file; counts and the open file are kept.
    pub(crate) fn set_bounds(&mut self, config: CaptureConfig) {
        self.config = config;
    }

    /// What has been captured so far.
    pub(crate) fn status(&self) -> &CaptureStatus {
        &self.status
    }

    /// Appends the mismatch's two frames, unless a bound is reached.
    pub(crate) fn record(&mut self, mismatch: &Mismatch, at: SystemTime) -> Captured {
        let ts = Timestamp::from_micros(
            at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        );
        let mut records = Vec::with_capacity(
            2 * pcap::RECORD_HEADER_LEN + mismatch.primary.len() + mismatch.secondary.len(),
        );
        pcap::write_record(&mut records, ts, mismatch.primary.ethernet());
        pcap::write_record(&mut records, ts, mismatch.secondary.ethernet());
        if self.status.written >= self.config.max_mismatches
            || self.status.bytes.max(pcap::HEADER_LEN as u64) + records.len() as u64
                > self.config.max_bytes
        {
            self.status.skipped += 1;
            return Captured::Full {
                first: self.status.skipped == 1,
            };
        }
        match self.append(&records) {
            Ok(()) => {
                self.failing = false;
                self.status.written += 1;
                Captured::Written(self.status.written)
            }
            Err(error) => {
                self.status.skipped += 1;
                // A failed write may have left part of a record: start afresh next time.
                self.file = None;
                let first = !std::mem::replace(&mut self.failing, true);
                Captured::Failed { error, first }
            }
        }
    }

    fn append(&mut self, records: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let (file, size) = open(&self.config.path)?;
            self.status.bytes = size;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("capture file not open"));
        };
        if self.status.bytes + records.len() as u64 > self.config.max_bytes {
            return Err(io::Error::other(format!(
                "the file already holds {} bytes, max_bytes is {}",
                self.status.bytes, self.config.max_bytes
            )));
        }
        file.write_all(records)?;
        self.status.bytes += records.len() as u64;
        Ok(())
    }
}

/// Opens `path` for appending: a new or empty file gets a pcap header, an existing one must
/// hold a classic pcap capture of Ethernet frames. Returns the file and its size.
fn open(path: &Path) -> io::Result<(File, u64)> {
    // The capture holds the guests' traffic: readable by the daemon's user only.
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = file.metadata()?.len();
    if size == 0 {
        file.write_all(&pcap::file_header())?;
        return Ok((file, pcap::HEADER_LEN as u64));
    }
    let mut head = [0u8; pcap::HEADER_LEN];
    let mut reader = File::open(path)?;
    io::Read::read_exact(&mut reader, &mut head).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the file exists and is not a pcap capture",
        )
    })?;
    pcap::Reader::new(&head).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file exists and cannot be appended to: {e}"),
        )
    })?;
    Ok((file, size))
}

#[cfg(test)]
mod test {
    use super::*;
    use colo_core::{Difference, FlowKey, Frame, L4Id};

    fn mismatch(p: &[u8], s: &[u8]) -> Mismatch {
        Mismatch {
            flow: FlowKey {
                src: [10, 0, 0, 1].into(),
                dst: [10, 0, 0, 2].into(),
                protocol: 17,
                l4: L4Id::Ports { src: 1, dst: 2 },
                vlan: None,
                inner_vlan: None,
                fragment: false,
            },
            comparator: "udp",
            difference: Difference {
                offset: 0,
                field: "udp payload",
            },
            primary: Frame::new(p.to_vec()),
            secondary: Frame::new(s.to_vec()),
        }
    }

    fn read(path: &Path) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).expect("capture exists");
        pcap::Reader::new(&bytes)
            .expect("pcap header")
            .map(|r| r.expect("record").data.to_vec())
            .collect()
    }

    #[test]
    fn mismatches_are_appended_until_the_count_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.pcap");
        let mut w = CaptureWriter::new(CaptureConfig {
            max_mismatches: 2,
            ..CaptureConfig::new(&path)
        });
        let now = SystemTime::now();
        assert!(matches!(
            w.record(&mismatch(&[1; 60], &[2; 60]), now),
            Captured::Written(1)
        ));
        assert!(matches!(
            w.record(&mismatch(&[3; 60], &[4; 61]), now),
            Captured::Written(2)
        ));
        assert!(matches!(
            w.record(&mismatch(&[5; 60], &[6; 60]), now),
            Captured::Full { first: true }
        ));
        assert!(matches!(
            w.record(&mismatch(&[5; 60], &[6; 60]), now),
            Captured::Full { first: false }
        ));
        let frames = read(&path);
        assert_eq!(
            frames,
            vec![vec![1; 60], vec![2; 60], vec![3; 60], vec![4; 61]]
        );
        assert_eq!(w.status().skipped, 2);
        assert_eq!(
            w.status().bytes,
            std::fs::metadata(&path).expect("file").len()
        );
    }

    #[test]
    fn the_byte_bound_counts_what_the_file_already_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.pcap");
        let pair = (2 * pcap::RECORD_HEADER_LEN + 120) as u64;
        let config = CaptureConfig {
            max_bytes: pcap::HEADER_LEN as u64 + 2 * pair,
            ..CaptureConfig::new(&path)
        };
        let mut w = CaptureWriter::new(config.clone());
        let now = SystemTime::now();
        assert!(matches!(
            w.record(&mismatch(&[1; 60], &[2; 60]), now),
            Captured::Written(1)
        ));
        drop(w);
        // A restarted daemon appends, and the first file's pair counts against the bound.
        let mut w = CaptureWriter::new(config);
        assert!(matches!(
            w.record(&mismatch(&[3; 60], &[4; 60]), now),
            Captured::Written(1)
        ));
        assert!(matches!(
            w.record(&mismatch(&[5; 60], &[6; 60]), now),
            Captured::Full { first: true }
        ));
        assert_eq!(read(&path).len(), 4);
    }

    #[test]
    fn a_file_that_is_not_a_capture_is_never_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "precious notes, not a pcap file").expect("write");
        let mut w = CaptureWriter::new(CaptureConfig::new(&path));
        let now = SystemTime::now();
        assert!(matches!(
            w.record(&mismatch(&[1; 60], &[2; 60]), now),
            Captured::Failed { first: true, .. }
        ));
        assert!(matches!(
            w.record(&mismatch(&[1; 60], &[2; 60]), now),
            Captured::Failed { first: false, .. }
        ));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "precious notes, not a pcap file"
        );
    }

    #[test]
    fn bad_bounds_name_the_field() {
        let c = CaptureConfig {
            max_mismatches: 0,
            ..CaptureConfig::new("/tmp/x.pcap")
        };
        assert_eq!(c.validate().map_err(|e| e.field), Err("max_mismatches"));
        let c = CaptureConfig {
            max_bytes: 10,
            ..CaptureConfig::new("/tmp/x.pcap")
        };
        assert_eq!(c.validate().map_err(|e| e.field), Err("max_bytes"));
        assert_eq!(
            CaptureConfig::new("").validate().map_err(|e| e.field),
            Err("path")
        );
    }
}
