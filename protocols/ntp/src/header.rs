//! Where the fields of an NTP server reply lie in a packet, and how each one is compared.
//!
//! The fixed header (RFC 5905 §7.3) is a table of fields rather than a parsed struct: the
//! comparison walks the table in wire order, so the first field that differs is also the first
//! difference in the frame, and a mismatch can name it and give its offset.

use colo_core::Packet;

use crate::time::NtpTime;

/// Size of the UDP header that precedes the NTP header.
pub const UDP_HEADER: usize = 8;
/// Size of the fixed NTP header.
pub const HEADER_LEN: usize = 48;
/// The association mode of a server's reply to a client.
pub const MODE_SERVER: u8 = 4;

/// How a field of two replies is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Byte for byte.
    Equal,
    /// As timestamps no further apart than the configured tolerance.
    WithinTolerance,
}

/// One field of the fixed NTP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name a mismatch reports.
    pub name: &'static str,
    /// Offset within the NTP header.
    pub start: usize,
    /// Size in bytes.
    pub len: usize,
    /// How it is compared.
    pub rule: Rule,
}

const fn field(name: &'static str, start: usize, len: usize, rule: Rule) -> Field {
    Field {
        name,
        start,
        len,
        rule,
    }
}

/// The fixed header's fields in wire order.
pub const FIELDS: [Field; 11] = [
    field("ntp leap, version or mode", 0, 1, Rule::Equal),
    field("ntp stratum", 1, 1, Rule::Equal),
    field("ntp poll", 2, 1, Rule::Equal),
    field("ntp precision", 3, 1, Rule::Equal),
    field("ntp root delay", 4, 4, Rule::Equal),
    field("ntp root dispersion", 8, 4, Rule::Equal),
    field("ntp reference id", 12, 4, Rule::Equal),
    field("ntp reference timestamp", 16, 8, Rule::WithinTolerance),
    // The origin timestamp is the client's transmit timestamp echoed back: equal or wrong.
    field("ntp origin timestamp", 24, 8, Rule::Equal),
    field("ntp receive timestamp", 32, 8, Rule::WithinTolerance),
    field("ntp transmit timestamp", 40, 8, Rule::WithinTolerance),
];

/// The name a mismatch reports for extension fields and a MAC after the fixed header.
pub const EXTENSIONS: &str = "ntp extension or mac";

/// An NTP server reply found in a packet.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'a> {
    /// The packet from the UDP header to the end of the frame.
    l4: &'a [u8],
    /// Length of the UDP datagram, as its header says: at least a full NTP header, and within
    /// the IP payload.
    udp_len: usize,
    header: &'a [u8; HEADER_LEN],
}

impl<'a> Reply<'a> {
    /// The server reply `packet` carries; `None` for other modes and for datagrams too short
    /// or inconsistent to hold an NTP header.
    pub fn find(packet: &'a Packet) -> Option<Self> {
        let udp = packet.ip_payload();
        let udp_len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
        if udp_len < UDP_HEADER + HEADER_LEN || udp_len > udp.len() {
            return None;
        }
        let l4 = packet.from_l4();
        let header: &[u8; HEADER_LEN] = l4
            .get(UDP_HEADER..UDP_HEADER + HEADER_LEN)?
            .try_into()
            .ok()?;
        if header[0] & 0x07 != MODE_SERVER {
            return None;
        }
        Some(Reply {
            l4,
            udp_len,
            header,
        })
    }

    /// Length of the UDP datagram.
    pub fn udp_len(&self) -> usize {
        self.udp_len
    }

    /// The UDP source port, destination port and length: the header without its checksum.
    pub fn udp_ports_and_length(&self) -> &'a [u8] {
        self.l4.get(..6).unwrap_or(&[])
    }

    /// The bytes of one header field.
    pub fn field(&self, f: &Field) -> &'a [u8] {
        self.header.get(f.start..f.start + f.len).unwrap_or(&[])
    }

    /// A timestamp field's value; `None` if `f` is not eight bytes long.
    pub fn time(&self, f: &Field) -> Option<NtpTime> {
        self.field(f).try_into().ok().map(NtpTime::from_wire)
    }

    /// Everything after the fixed header: extension fields, MAC, and whatever follows the
    /// datagram in the frame (Ethernet padding).
    pub fn after_header(&self) -> &'a [u8] {
        self.l4.get(UDP_HEADER + HEADER_LEN..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn fields_tile_the_header_in_order() {
        let mut next = 0;
        for f in FIELDS {
            assert_eq!(f.start, next, "{} does not follow its predecessor", f.name);
            if f.rule == Rule::WithinTolerance {
                assert_eq!(f.len, 8, "{} is not a timestamp", f.name);
            }
            next = f.start + f.len;
        }
        assert_eq!(next, HEADER_LEN);
    }
}
