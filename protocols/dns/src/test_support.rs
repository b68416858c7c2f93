//! DNS messages, frames and a tracker harness for this crate's unit tests.
//!
//! The harness drives the real engine: a [`Tracker`] over a registry of this crate's comparator
//! and colo-protocols' built-in ones, so port 53 is won against the real `udp` claim. The
//! counters identity (D-LOSS-5) is checked after every input. Messages are assembled from
//! hand-written records so that tests control compression exactly.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};

/// The sender's Ethernet source and IP identification.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    mac: [u8; 6],
    ip_id: u16,
}

/// The primary guest.
pub const P_NET: Net = Net {
    mac: [0x52, 0x54, 0, 0, 0, 1],
    ip_id: 1,
};
/// The secondary guest: another MAC and IP ID, which no comparator here looks at.
pub const S_NET: Net = Net {
    mac: [0x52, 0x54, 0, 0, 0, 9],
    ip_id: 4242,
};

/// A UDP datagram from the guest's DNS server (10.0.0.1:53) to a client (10.0.0.2:40000).
pub fn udp_frame(payload: &[u8], net: Net) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber(0), [10, 0, 0, 1], [10, 0, 0, 2]).expect("ip");
    ip.identification = net.ip_id;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(net.mac, [0x52, 0x54, 0, 0, 0, 2])
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .udp(53, 40000)
        .write(&mut v, payload)
        .expect("udp frame");
    v
}

/// `host` as an uncompressed wire-format name.
pub fn name(host: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in host.split('.') {
        v.push(u8::try_from(label.len()).expect("short label"));
        v.extend(label.as_bytes());
    }
    v.push(0);
    v
}

/// The data of an A record for 192.0.2.`host`.
pub fn a(host: u8) -> [u8; 4] {
    [192, 0, 2, host]
}

/// A class IN record: `owner` (wire form, possibly a pointer), type, TTL and data.
pub fn rr(owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut v = owner.to_vec();
    v.extend(rtype.to_be_bytes());
    v.extend(1u16.to_be_bytes());
    v.extend(ttl.to_be_bytes());
    v.extend(u16::try_from(data.len()).expect("short data").to_be_bytes());
    v.extend(data);
    v
}

/// A DNS message with one question; records are given encoded, in order.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Message ID.
    pub id: u16,
    /// Flags, rcode included.
    pub flags: u16,
    /// The question's name, wire form.
    pub question: Vec<u8>,
    /// The question's type.
    pub qtype: u16,
    /// Answer section.
    pub answers: Vec<Vec<u8>>,
    /// Authority section.
    pub authority: Vec<Vec<u8>>,
    /// Additional section.
    pub additional: Vec<Vec<u8>>,
}

impl Msg {
    /// A recursive NOERROR response for `host`, type A, with no records.
    pub fn response(host: &str) -> Msg {
        Msg {
            id: 0x1234,
            flags: 0x8180,
            question: name(host),
            qtype: 1,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// The message in wire form.
    pub fn encode(&self) -> Vec<u8> {
        let count = |n: usize| u16::try_from(n).expect("few records").to_be_bytes();
        let mut v = Vec::new();
        v.extend(self.id.to_be_bytes());
        v.extend(self.flags.to_be_bytes());
        v.extend(count(1));
        v.extend(count(self.answers.len()));
        v.extend(count(self.authority.len()));
        v.extend(count(self.additional.len()));
        v.extend(&self.question);
        v.extend(self.qtype.to_be_bytes());
        v.extend(1u16.to_be_bytes());
        for r in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            v.extend(r);
        }
        v
    }

    /// The message in a frame from `net`.
    pub fn frame_on(&self, net: Net) -> Vec<u8> {
        udp_frame(&self.encode(), net)
    }
}

/// This crate's comparators as the tests link them.
pub struct Linked;

impl colo_core::testing::Comparators for Linked {
    fn registrations() -> Vec<&'static colo_core::Registration> {
        std::iter::once(&crate::DNS)
            .chain(colo_protocols::BUILT_IN)
            .collect()
    }
}

/// The engine harness over [`Linked`].
pub type Harness = colo_core::testing::Harness<Linked>;
