//! Arbitrary bytes read as a sequence of choices.
//!
//! A fuzz target needs numbers, flags and byte strings, not one flat buffer. Reading them off
//! the front keeps every input meaningful (a short input simply ends early: an exhausted input
//! reads as zeros) and lets the fuzzer's mutations change one choice at a time.

/// The unread part of a fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data` from the start.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// A flag from the next byte's low bit.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n` ≤ 256; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::from(self.u8()) % n
    }

    /// Up to `n` bytes (fewer when the input ends).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_in_order_and_zeros_past_the_end() {
        let mut i = Input::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(i.u8(), 1);
        assert_eq!(i.u16(), 0x0203);
        assert_eq!(i.bytes(2), &[4, 5]);
        assert!(!i.bool());
        assert_eq!(i.below(5), 2);
        assert!(i.is_empty());
        assert_eq!((i.u32(), i.bytes(3), i.rest()), (0, &[][..], &[][..]));
    }
}
