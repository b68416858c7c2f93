//! Domain names with message compression (RFC 1035 §4.1.4) undone.
//!
//! Two replicas may compress the same name differently (a pointer on one side, the labels
//! written out on the other), so names are compared in their uncompressed wire form. Reading
//! one is where a hostile message could loop or run off the end: every byte read is
//! bounds-checked, and a pointer must point strictly before the labels it continues, so the
//! positions visited keep decreasing and reading always ends. A decompressed name longer than
//! 255 bytes is refused too.

use crate::reader::{Malformed, Reader};

/// The longest name RFC 1035 allows, in wire form.
pub const MAX_NAME: usize = 255;

/// Reads the name at the reader's position, following compression pointers, and leaves the
/// reader after the name as it sits in place. Returns the name as length-prefixed labels ending
/// with the root's zero byte, the case of every letter kept.
pub fn read(r: &mut Reader<'_>) -> Result<Vec<u8>, Malformed> {
    let msg = r.message();
    let start = r.pos();
    let mut name = Vec::new();
    let mut pos = start;
    // Where the labels being read began: a pointer must point before it.
    let mut floor = start;
    let mut resume = None;
    loop {
        let len = *msg.get(pos).ok_or(Malformed::Truncated { at: pos })?;
        match len & 0xc0 {
            0x00 => {
                let label = msg
                    .get(pos..=pos + usize::from(len))
                    .ok_or(Malformed::Truncated { at: pos })?;
                name.extend_from_slice(label);
                if name.len() > MAX_NAME {
                    return Err(Malformed::NameTooLong { at: start });
                }
                pos += label.len();
                if len == 0 {
                    r.seek(resume.unwrap_or(pos));
                    return Ok(name);
                }
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(Malformed::Truncated { at: pos })?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= floor {
                    return Err(Malformed::BadPointer { at: pos });
                }
                resume.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => {
                return Err(Malformed::LabelType {
                    at: pos,
                    label: len,
                });
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn read_at(msg: &[u8], pos: usize) -> Result<(Vec<u8>, usize), Malformed> {
        let mut r = Reader::at(msg, pos);
        read(&mut r).map(|n| (n, r.pos()))
    }

    const EXAMPLE: &[u8] = b"\x07example\x03com\x00";

    #[test]
    fn plain_name() {
        assert_eq!(read_at(EXAMPLE, 0), Ok((EXAMPLE.to_vec(), EXAMPLE.len())));
        assert_eq!(read_at(b"\x00", 0), Ok((vec![0], 1)));
    }

    #[test]
    fn pointers_are_followed_and_the_reader_resumes_after_the_first() {
        let mut msg = EXAMPLE.to_vec();
        let www = msg.len();
        msg.extend(b"\x03www\xc0\x00");
        let again = msg.len();
        msg.extend(b"\xc0");
        msg.push(u8::try_from(www).expect("small"));
        msg.push(0xff);
        let mut full = b"\x03www".to_vec();
        full.extend(EXAMPLE);
        assert_eq!(read_at(&msg, www), Ok((full.clone(), www + 6)));
        assert_eq!(read_at(&msg, again), Ok((full, again + 2)));
    }

    #[test]
    fn loops_and_forward_pointers_are_refused() {
        // A pointer to itself.
        assert_eq!(
            read_at(b"\x03abc\xc0\x04", 4),
            Err(Malformed::BadPointer { at: 4 })
        );
        // A pointer back into the labels it continues.
        assert_eq!(
            read_at(b"\x03abc\xc0\x00", 0),
            Err(Malformed::BadPointer { at: 4 })
        );
        // Two pointers pointing at each other: the first is forward.
        assert_eq!(
            read_at(b"\xc0\x02\xc0\x00", 0),
            Err(Malformed::BadPointer { at: 0 })
        );
        // Pointing back, then forward again past where the jump came from.
        assert_eq!(
            read_at(b"\x01a\xc0\x04\xc0\x00", 4),
            Err(Malformed::BadPointer { at: 2 })
        );
    }

    #[test]
    fn truncation_and_bad_labels_are_refused() {
        assert_eq!(read_at(b"\x05abc", 0), Err(Malformed::Truncated { at: 0 }));
        assert_eq!(read_at(b"\x03abc", 0), Err(Malformed::Truncated { at: 4 }));
        assert_eq!(read_at(b"\xc0", 0), Err(Malformed::Truncated { at: 0 }));
        assert_eq!(
            read_at(b"\x41abc", 0),
            Err(Malformed::LabelType { at: 0, label: 0x41 })
        );
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        // Four 63-byte labels are 256 bytes with their length bytes, 257 with the root.
        let mut msg = Vec::new();
        for _ in 0..4 {
            msg.push(63);
            msg.extend([b'a'; 63]);
        }
        msg.push(0);
        assert_eq!(read_at(&msg, 0), Err(Malformed::NameTooLong { at: 0 }));
        // Three of them and a 61-byte one make exactly 255.
        let mut ok = msg[..3 * 64].to_vec();
        ok.push(61);
        ok.extend([b'b'; 61]);
        ok.push(0);
        assert_eq!(read_at(&ok, 0).map(|(n, _)| n.len()), Ok(255));
    }

    #[test]
    fn a_chain_of_pointers_through_many_names_ends() {
        // Each name is one label and a pointer to the previous name: deep but finite.
        let mut msg = b"\x00".to_vec();
        let mut prev = 0usize;
        for _ in 0..100 {
            let here = msg.len();
            msg.extend([1, b'x', 0xc0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        }
        assert_eq!(read_at(&msg, prev).map(|(n, _)| n.len()), Ok(100 * 2 + 1));
    }
}
