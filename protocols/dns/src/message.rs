//! A DNS message (RFC 1035 §4.1) read into what two replicas must agree on.
//!
//! The header is kept as its twelve bytes, questions as their decompressed bytes, and the
//! records of the answer, authority and additional sections with their names and record data
//! decompressed. Every record remembers where it starts, so a mismatch can point at it. Bytes
//! after the last record the header counts make the message malformed: nothing would compare
//! them otherwise.

use std::borrow::Cow;

use colo_core::Packet;

use crate::name;
use crate::rdata;
use crate::reader::{Malformed, Reader};

/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Size of the UDP header that precedes a message.
pub const UDP_HEADER: usize = 8;

/// The EDNS pseudo-record, whose TTL field carries flags rather than a time to live.
pub const OPT: u16 = 41;

/// One of the three record sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Records answering the question.
    Answer,
    /// Records pointing at authoritative servers.
    Authority,
    /// Records that may help the client (glue, EDNS OPT).
    Additional,
}

impl Section {
    /// The sections in message order.
    pub const ALL: [Section; 3] = [Section::Answer, Section::Authority, Section::Additional];

    /// Offset of the section's record count in the header.
    const fn count_at(self) -> usize {
        match self {
            Section::Answer => 6,
            Section::Authority => 8,
            Section::Additional => 10,
        }
    }

    /// The field a mismatch names when a record has no counterpart.
    pub const fn record_field(self) -> &'static str {
        match self {
            Section::Answer => "dns answer record",
            Section::Authority => "dns authority record",
            Section::Additional => "dns additional record",
        }
    }

    /// The field a mismatch names when only a TTL is out of tolerance.
    pub const fn ttl_field(self) -> &'static str {
        match self {
            Section::Answer => "dns answer ttl",
            Section::Authority => "dns authority ttl",
            Section::Additional => "dns additional ttl",
        }
    }
}

/// A question: name, type and class, the name decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Where it starts in the message.
    pub offset: usize,
    /// The name as labels, then type and class.
    pub bytes: Vec<u8>,
}

/// A resource record, names decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where it starts in the message.
    pub offset: usize,
    /// Owner name.
    pub name: Vec<u8>,
    /// Type.
    pub rtype: u16,
    /// Class (the UDP payload size for OPT).
    pub class: u16,
    /// Time to live (extended rcode and flags for OPT).
    pub ttl: u32,
    /// Record data, names decompressed for the types that compress them.
    pub rdata: Cow<'a, [u8]>,
}

/// A DNS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header: ID, flags (with the rcode) and the four counts.
    pub header: [u8; HEADER_LEN],
    /// The question section, in order.
    pub questions: Vec<Question>,
    /// The answer, authority and additional sections, in message order.
    pub sections: [Vec<Record<'a>>; 3],
}

impl<'a> Message<'a> {
    /// Reads a whole message.
    pub fn parse(msg: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::at(msg, 0);
        let header: [u8; HEADER_LEN] = r
            .bytes(HEADER_LEN)?
            .try_into()
            .map_err(|_| Malformed::Truncated { at: 0 })?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let mut questions = Vec::new();
        for _ in 0..count(4) {
            let offset = r.pos();
            let mut bytes = name::read(&mut r)?;
            bytes.extend_from_slice(r.bytes(4)?);
            questions.push(Question { offset, bytes });
        }
        let mut sections: [Vec<Record<'a>>; 3] = Default::default();
        for (section, records) in Section::ALL.iter().zip(&mut sections) {
            for _ in 0..count(section.count_at()) {
                records.push(record(&mut r)?);
            }
        }
        if r.remaining() > 0 {
            return Err(Malformed::Trailing {
                at: r.pos(),
                count: r.remaining(),
            });
        }
        Ok(Message {
            header,
            questions,
            sections,
        })
    }

    /// The records of one section.
    pub fn section(&self, section: Section) -> &[Record<'a>] {
        match section {
            Section::Answer => &self.sections[0],
            Section::Authority => &self.sections[1],
            Section::Additional => &self.sections[2],
        }
    }
}

fn record<'a>(r: &mut Reader<'a>) -> Result<Record<'a>, Malformed> {
    let offset = r.pos();
    let name = name::read(r)?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let len = usize::from(r.u16()?);
    let rdata = rdata::read(r, rtype, len)?;
    Ok(Record {
        offset,
        name,
        rtype,
        class,
        ttl,
        rdata,
    })
}

/// The DNS message a UDP packet carries: the datagram after the UDP header, as long as the UDP
/// length says. `None` when that length is impossible (shorter than the header, or longer than
/// the IP payload).
pub fn in_packet(packet: &Packet) -> Option<&[u8]> {
    let udp = packet.ip_payload();
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if len > udp.len() {
        return None;
    }
    udp.get(UDP_HEADER..len)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::test_support::{Msg, a, name, rr};

    #[test]
    fn a_response_is_read_section_by_section() {
        let msg = Msg {
            answers: vec![
                rr(b"\xc0\x0c", 1, 300, &a(1)),
                rr(b"\xc0\x0c", 1, 300, &a(2)),
            ],
            authority: vec![rr(&name("example.com"), 2, 900, &name("ns.example.com"))],
            additional: vec![rr(b"\x00", OPT, 0x8000, b"")],
            ..Msg::response("www.example.com")
        }
        .encode();
        let m = Message::parse(&msg).expect("well formed");
        assert_eq!(m.questions.len(), 1);
        assert_eq!(m.questions[0].offset, HEADER_LEN);
        assert!(
            m.questions[0]
                .bytes
                .starts_with(b"\x03www\x07example\x03com\x00")
        );
        let answers = m.section(Section::Answer);
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].name, name("www.example.com"));
        assert_eq!((answers[1].rtype, answers[1].ttl), (1, 300));
        assert_eq!(&answers[1].rdata[..], &a(2)[..]);
        assert_eq!(answers[1].offset, answers[0].offset + 16);
        let ns = &m.section(Section::Authority)[0];
        assert_eq!(&ns.rdata[..], &name("ns.example.com")[..]);
        let opt = &m.section(Section::Additional)[0];
        assert_eq!((opt.rtype, opt.ttl), (OPT, 0x8000));
    }

    #[test]
    fn trailing_bytes_and_missing_records_are_malformed() {
        let mut msg = Msg::response("www.example.com").encode();
        let end = msg.len();
        msg.push(0);
        assert_eq!(
            Message::parse(&msg),
            Err(Malformed::Trailing { at: end, count: 1 })
        );
        // The header announces an answer that is not there.
        msg.pop();
        msg[7] = 1;
        assert_eq!(Message::parse(&msg), Err(Malformed::Truncated { at: end }));
        assert_eq!(
            Message::parse(&msg[..5]),
            Err(Malformed::Truncated { at: 0 })
        );
    }

    #[test]
    fn a_record_whose_owner_points_at_itself_is_malformed() {
        let mut msg = Msg::response("www.example.com").encode();
        let at = msg.len();
        msg[7] = 1;
        msg.extend([0xc0, u8::try_from(at).expect("small")]);
        msg.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        assert_eq!(Message::parse(&msg), Err(Malformed::BadPointer { at }));
    }
}
