//! Record data in a form that does not depend on how the message was compressed.
//!
//! RFC 1035 lets a server compress the names inside the data of a few record types, and
//! servers also do it for SRV. For those types the data is rewritten with its names
//! decompressed; every other type's data is compared as the raw bytes it is.

use std::borrow::Cow;

use crate::name;
use crate::reader::{Malformed, Reader};

/// Record types whose data may hold compressed names.
pub mod rtype {
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Domain name pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Service location.
    pub const SRV: u16 = 33;
}

/// One piece of a record type's data.
#[derive(Clone, Copy)]
enum Part {
    /// This many bytes, compared as they are.
    Fixed(usize),
    /// A domain name, possibly compressed.
    Name,
}

fn layout(rtype: u16) -> Option<&'static [Part]> {
    use Part::{Fixed, Name};
    Some(match rtype {
        rtype::NS | rtype::CNAME | rtype::PTR => &[Name],
        rtype::MX => &[Fixed(2), Name],
        // MNAME, RNAME, then serial, refresh, retry, expire and minimum.
        rtype::SOA => &[Name, Name, Fixed(20)],
        // Priority, weight and port, then the target.
        rtype::SRV => &[Fixed(6), Name],
        _ => return None,
    })
}

/// The data of a record of type `rtype`, `len` bytes at `r`'s position, with its names
/// decompressed. The reader ends after the data.
pub fn read<'a>(r: &mut Reader<'a>, rtype: u16, len: usize) -> Result<Cow<'a, [u8]>, Malformed> {
    let start = r.pos();
    let raw = r.bytes(len)?;
    let Some(parts) = layout(rtype) else {
        return Ok(Cow::Borrowed(raw));
    };
    let end = r.pos();
    let wrong = Malformed::RdataLength { at: start, rtype };
    let mut inner = Reader::at(r.message(), start);
    let mut out = Vec::with_capacity(len);
    for part in parts {
        match *part {
            Part::Fixed(n) => out.extend_from_slice(inner.bytes(n)?),
            Part::Name => out.extend(name::read(&mut inner)?),
        }
        if inner.pos() > end {
            return Err(wrong);
        }
    }
    if inner.pos() != end {
        return Err(wrong);
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod test {
    use super::*;

    /// "example.com" at 0, then the data under test.
    fn with_example(data: &[u8]) -> (Vec<u8>, usize) {
        let mut msg = b"\x07example\x03com\x00".to_vec();
        let at = msg.len();
        msg.extend(data);
        (msg, at)
    }

    fn data(msg: &[u8], at: usize, rtype: u16, len: usize) -> Result<Vec<u8>, Malformed> {
        read(&mut Reader::at(msg, at), rtype, len).map(Cow::into_owned)
    }

    #[test]
    fn compressed_and_plain_mx_read_the_same() {
        let (msg, at) = with_example(b"\x00\x0a\x04mail\xc0\x00");
        let plain = b"\x00\x0a\x04mail\x07example\x03com\x00";
        assert_eq!(data(&msg, at, rtype::MX, 9), Ok(plain.to_vec()));
        let (msg2, at2) = with_example(plain);
        assert_eq!(data(&msg2, at2, rtype::MX, plain.len()), Ok(plain.to_vec()));
    }

    #[test]
    fn soa_and_srv_have_their_fixed_parts() {
        let mut soa = b"\x02ns\xc0\x00\x0ahostmaster\xc0\x00".to_vec();
        soa.extend(1u32.to_be_bytes());
        soa.extend([0; 16]);
        let (msg, at) = with_example(&soa);
        let got = data(&msg, at, rtype::SOA, soa.len()).expect("soa");
        assert!(got.starts_with(b"\x02ns\x07example\x03com\x00\x0ahostmaster\x07example"));
        assert_eq!(got.len(), 16 + 24 + 20);

        let (msg, at) = with_example(b"\x00\x01\x00\x02\x13\xc4\xc0\x00");
        assert_eq!(
            data(&msg, at, rtype::SRV, 8),
            Ok(b"\x00\x01\x00\x02\x13\xc4\x07example\x03com\x00".to_vec())
        );
    }

    #[test]
    fn other_types_are_raw() {
        let (msg, at) = with_example(b"\xc0\x00\x01\x02");
        assert_eq!(data(&msg, at, 1, 4), Ok(b"\xc0\x00\x01\x02".to_vec()));
    }

    #[test]
    fn data_that_does_not_fit_its_type_is_malformed() {
        // A CNAME whose length leaves a byte after the name.
        let (msg, at) = with_example(b"\xc0\x00\x00");
        let err = Err(Malformed::RdataLength {
            at,
            rtype: rtype::CNAME,
        });
        assert_eq!(data(&msg, at, rtype::CNAME, 3), err);
        // A CNAME whose name runs past its length.
        let (msg, at) = with_example(b"\x03www\xc0\x00");
        assert_eq!(data(&msg, at, rtype::CNAME, 4), err);
        // An MX one byte long, too short for its preference, followed by more bytes.
        let (msg, at) = with_example(b"\x00\x0a\x00");
        assert_eq!(
            data(&msg, at, rtype::MX, 1),
            Err(Malformed::RdataLength {
                at,
                rtype: rtype::MX
            })
        );
        // Longer than the message.
        assert_eq!(data(&msg, at, 1, 4), Err(Malformed::Truncated { at }));
    }
}
