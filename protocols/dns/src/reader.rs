//! A bounds-checked cursor over a DNS message, and what makes a message malformed.
//!
//! Every read names the position it failed at, so a malformed message is an error value and
//! never an out-of-bounds index: the comparator then falls back to byte comparison.

use thiserror::Error;

/// Why a DNS message could not be read. Positions are offsets within the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Malformed {
    /// The message ends inside a field.
    #[error("message ends inside a field at byte {at}")]
    Truncated {
        /// Where the field starts.
        at: usize,
    },
    /// A compression pointer that does not point before the labels it continues, which is
    /// what a loop (or a forward reference) looks like.
    #[error("compression pointer at byte {at} does not point backwards")]
    BadPointer {
        /// Where the pointer is.
        at: usize,
    },
    /// A name longer than 255 bytes once decompressed.
    #[error("name at byte {at} is longer than 255 bytes")]
    NameTooLong {
        /// Where the name starts.
        at: usize,
    },
    /// A label that is neither a length nor a pointer (the obsolete extended label types).
    #[error("label type {label:#04x} at byte {at} is neither a length nor a pointer")]
    LabelType {
        /// Where the label is.
        at: usize,
        /// Its first byte.
        label: u8,
    },
    /// Record data that its type's fields do not fill exactly.
    #[error("record data at byte {at} does not fit its type {rtype}")]
    RdataLength {
        /// Where the record data starts.
        at: usize,
        /// The record type.
        rtype: u16,
    },
    /// Bytes left after the last record the header counts.
    #[error("{count} bytes after the last record, at byte {at}")]
    Trailing {
        /// Where they start.
        at: usize,
        /// How many there are.
        count: usize,
    },
}

/// A position in a message that only moves forward over what it read.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at `pos` of `msg`.
    pub fn at(msg: &'a [u8], pos: usize) -> Self {
        Reader { msg, pos }
    }

    /// The whole message.
    pub fn message(&self) -> &'a [u8] {
        self.msg
    }

    /// The current position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos`, which a name reader found the end of a name at.
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.msg.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let at = self.pos;
        let b = at
            .checked_add(n)
            .and_then(|end| self.msg.get(at..end))
            .ok_or(Malformed::Truncated { at })?;
        self.pos += n;
        Ok(b)
    }

    /// The next big-endian 16-bit number.
    pub fn u16(&mut self) -> Result<u16, Malformed> {
        let at = self.pos;
        let b = self.bytes(2)?;
        b.try_into()
            .map(u16::from_be_bytes)
            .map_err(|_| Malformed::Truncated { at })
    }

    /// The next big-endian 32-bit number.
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let at = self.pos;
        let b = self.bytes(4)?;
        b.try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| Malformed::Truncated { at })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_in_order_and_stops_at_the_end() {
        let mut r = Reader::at(&[0, 1, 0, 0, 0, 2, 9], 0);
        assert_eq!(r.u16(), Ok(1));
        assert_eq!(r.u32(), Ok(2));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u16(), Err(Malformed::Truncated { at: 6 }));
        assert_eq!(r.bytes(usize::MAX), Err(Malformed::Truncated { at: 6 }));
        assert_eq!(r.bytes(1), Ok(&[9][..]));
        assert_eq!(r.remaining(), 0);
    }
}
