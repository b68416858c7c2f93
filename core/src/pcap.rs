//! Classic pcap files, as bytes: the format of mismatch captures and of `replay`'s input.
//!
//! Only what colo-compare needs: the 24-byte global header and 16-byte record headers,
//! Ethernet link type, microsecond or nanosecond timestamps in either byte order on reading.
//! Reading is from a byte slice and writing into a byte vector, so the file handling stays
//! with the caller and this module stays sans-IO and testable.

use thiserror::Error;

use crate::time::Timestamp;

/// Link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Size of the global header.
pub const HEADER_LEN: usize = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Snap length written in headers: QEMU's largest frame.
pub const SNAPLEN: u32 = crate::frame::NET_BUFSIZE;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;

/// The global header of a new capture (little-endian, microsecond timestamps, Ethernet).
pub fn file_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Appends one record holding `frame` captured at `ts` (microseconds since the Unix epoch).
pub fn write_record(out: &mut Vec<u8>, ts: Timestamp, frame: &[u8]) {
    let us = ts.as_micros();
    let secs = u32::try_from(us / 1_000_000).unwrap_or(u32::MAX);
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(frame);
}

/// Why a capture cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PcapError {
    /// Shorter than a global header.
    #[error("not a pcap file: {len} bytes is shorter than the 24-byte header")]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// Unknown magic number (pcapng files are not supported).
    #[error(
        "not a classic pcap file (magic {magic:#010x}; pcapng is not supported, convert with `editcap -F pcap`)"
    )]
    Magic {
        /// The first four bytes.
        magic: u32,
    },
    /// Not Ethernet frames.
    #[error("link type {linktype} is not Ethernet (1)")]
    LinkType {
        /// The link type found.
        linktype: u32,
    },
    /// A record runs past the end of the file.
    #[error("record {index} at byte {offset} is truncated")]
    Truncated {
        /// Zero-based record number.
        index: usize,
        /// Its offset in the file.
        offset: usize,
    },
}

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// Iterates over the records of a capture held in memory.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    index: usize,
    big_endian: bool,
    nanos: bool,
}

impl<'a> Reader<'a> {
    /// Checks the global header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, PcapError> {
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(PcapError::TooShort { len: bytes.len() });
        };
        let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let (big_endian, nanos) = match (le, be) {
            (MAGIC_US, _) => (false, false),
            (MAGIC_NS, _) => (false, true),
            (_, MAGIC_US) => (true, false),
            (_, MAGIC_NS) => (true, true),
            _ => return Err(PcapError::Magic { magic: be }),
        };
        let r = Reader {
            bytes,
            at: HEADER_LEN,
            index: 0,
            big_endian,
            nanos,
        };
        let linktype = r.u32_at(20);
        if linktype != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType { linktype });
        }
        Ok(r)
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let truncated = PcapError::Truncated {
            index: self.index,
            offset: self.at,
        };
        if self.bytes.len() - self.at < RECORD_HEADER_LEN {
            self.at = self.bytes.len();
            return Some(Err(truncated));
        }
        let (secs, frac) = (self.u32_at(self.at), self.u32_at(self.at + 4));
        let (incl, orig_len) = (self.u32_at(self.at + 8) as usize, self.u32_at(self.at + 12));
        let start = self.at + RECORD_HEADER_LEN;
        let Some(data) = self.bytes.get(start..start.saturating_add(incl)) else {
            self.at = self.bytes.len();
            return Some(Err(truncated));
        };
        self.at = start + incl;
        self.index += 1;
        let frac_us = if self.nanos {
            u64::from(frac) / 1000
        } else {
            u64::from(frac)
        };
        let ts = Timestamp::from_micros(u64::from(secs) * 1_000_000 + frac_us);
        Some(Ok(Record { ts, data, orig_len }))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn written_records_read_back() {
        let mut file = file_header().to_vec();
        write_record(
            &mut file,
            Timestamp::from_micros(1_700_000_000_123_456),
            &[1, 2, 3],
        );
        write_record(&mut file, Timestamp::from_micros(5), &[9; 60]);
        let recs: Vec<_> = Reader::new(&file)
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("records");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts, Timestamp::from_micros(1_700_000_000_123_456));
        assert_eq!(recs[0].data, &[1, 2, 3]);
        assert_eq!(recs[1].orig_len, 60);
    }

    #[test]
    fn big_endian_nanosecond_files_are_read() {
        let mut file = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4];
        file.extend([0u8; 8]);
        file.extend(65535u32.to_be_bytes());
        file.extend(1u32.to_be_bytes());
        file.extend(2u32.to_be_bytes());
        file.extend(1_500u32.to_be_bytes());
        file.extend(1u32.to_be_bytes());
        file.extend(1u32.to_be_bytes());
        file.push(0xee);
        let recs: Vec<_> = Reader::new(&file)
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("records");
        assert_eq!(recs[0].ts, Timestamp::from_micros(2_000_001));
        assert_eq!(recs[0].data, &[0xee]);
    }

    #[test]
    fn bad_files_are_named_errors() {
        assert_eq!(
            Reader::new(&[0; 3]).err(),
            Some(PcapError::TooShort { len: 3 })
        );
        assert!(matches!(
            Reader::new(&[
                0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]),
            Err(PcapError::Magic { .. })
        ));
        let mut file = file_header().to_vec();
        file[20] = 113;
        assert_eq!(
            Reader::new(&file).err(),
            Some(PcapError::LinkType { linktype: 113 })
        );
        let mut file = file_header().to_vec();
        write_record(&mut file, Timestamp::ZERO, &[1; 10]);
        file.truncate(file.len() - 1);
        let mut r = Reader::new(&file).expect("header");
        assert_eq!(
            r.next(),
            Some(Err(PcapError::Truncated {
                index: 0,
                offset: 24
            }))
        );
        assert_eq!(r.next(), None);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut file = file_header().to_vec();
            file.extend(bytes);
            if let Ok(r) = Reader::new(&file) {
                for _ in r {}
            }
        }
    }
}
