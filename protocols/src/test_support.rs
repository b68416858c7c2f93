//! Frames and a tracker harness shared by this crate's unit tests.
//!
//! Every test drives the real engine: a [`colo_core::Tracker`] over a registry built from
//! [`crate::BUILT_IN`], fed frames built with etherparse, one millisecond apart. After every
//! input the counters identity (D-LOSS-5) is checked.

use etherparse::{
    IpDscp, IpHeaders, IpNumber, Ipv4Header, Ipv4Options, PacketBuilder, PacketBuilderStep,
    TcpOptionElement,
};

/// The primary guest's MAC address.
pub const MAC_P: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
/// The secondary guest's MAC address (it may differ; it is never compared by default).
pub const MAC_S: [u8; 6] = [0x52, 0x54, 0, 0, 0, 9];
const MAC_DST: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

/// The IPv4 header and Ethernet source of a test frame.
#[derive(Clone, Copy, Debug)]
pub struct Ip<'a> {
    /// Source MAC address.
    pub mac: [u8; 6],
    /// IP identification.
    pub id: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (the TOS byte's upper six bits).
    pub dscp: u8,
    /// Raw IP options (a multiple of 4 bytes).
    pub options: &'a [u8],
    /// The more-fragments flag: the packet is the first fragment of a larger datagram.
    pub more_fragments: bool,
}

/// 10.0.0.1 → 10.0.0.2 from the primary's MAC, no options.
pub const IP: Ip<'static> = Ip {
    mac: MAC_P,
    id: 1,
    ttl: 64,
    dscp: 0,
    options: &[],
    more_fragments: false,
};

impl Ip<'_> {
    fn header(&self) -> Ipv4Header {
        let mut h =
            Ipv4Header::new(0, self.ttl, IpNumber(0), [10, 0, 0, 1], [10, 0, 0, 2]).expect("ip");
        h.identification = self.id;
        h.dscp = IpDscp::try_new(self.dscp).expect("dscp");
        h.options = Ipv4Options::try_from(self.options).expect("ip options");
        h.more_fragments = self.more_fragments;
        h
    }

    fn builder(&self) -> PacketBuilderStep<IpHeaders> {
        PacketBuilder::ethernet2(self.mac, MAC_DST)
            .ip(IpHeaders::Ipv4(self.header(), Default::default()))
    }

    /// A UDP datagram 5001 → 40000.
    pub fn udp(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.builder()
            .udp(5001, 40000)
            .write(&mut v, payload)
            .expect("udp frame");
        v
    }

    /// An ICMP echo request.
    pub fn ping(&self, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.builder()
            .icmpv4_echo_request(id, seq)
            .write(&mut v, payload)
            .expect("icmp frame");
        v
    }

    /// An ICMPv6 echo request between two fixed IPv6 addresses, with this MAC and hop limit.
    pub fn ping6(&self, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(self.mac, MAC_DST)
            .ipv6([0xfd; 16], [0xfe; 16], self.ttl)
            .icmpv6_echo_request(id, seq)
            .write(&mut v, payload)
            .expect("icmpv6 frame");
        v
    }

    /// A packet of IP protocol `protocol` whose IP payload is `payload`.
    pub fn raw(&self, protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.builder()
            .write(&mut v, IpNumber(protocol), payload)
            .expect("ip frame");
        v
    }
}

/// A TCP segment 10.0.0.1:5001 → 10.0.0.2:40000.
#[derive(Clone, Copy, Debug)]
pub struct Tcp<'a> {
    /// The IP header.
    pub ip: Ip<'a>,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number; `None` leaves the ACK flag clear.
    pub ack: Option<u32>,
    /// Payload.
    pub payload: &'a [u8],
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// Window.
    pub window: u16,
    /// A timestamp option (value, echo).
    pub timestamp: Option<(u32, u32)>,
    /// Pad the Ethernet frame with zeros to this length.
    pub pad_to: usize,
}

/// P(1000, 0, ack 5000): a pure ACK; tests override what they need.
pub const SEG: Tcp<'static> = Tcp {
    ip: IP,
    seq: 1000,
    ack: Some(5000),
    payload: b"",
    syn: false,
    fin: false,
    window: 4096,
    timestamp: None,
    pad_to: 0,
};

impl Tcp<'_> {
    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut b = self.ip.builder().tcp(5001, 40000, self.seq, self.window);
        if let Some(ack) = self.ack {
            b = b.ack(ack);
        }
        if self.syn {
            b = b.syn();
        }
        if self.fin {
            b = b.fin();
        }
        if let Some((v, e)) = self.timestamp {
            b = b
                .options(&[
                    TcpOptionElement::Noop,
                    TcpOptionElement::Noop,
                    TcpOptionElement::Timestamp(v, e),
                ])
                .expect("tcp options");
        }
        let mut v = Vec::new();
        b.write(&mut v, self.payload).expect("tcp frame");
        if v.len() < self.pad_to {
            v.resize(self.pad_to, 0);
        }
        v
    }

    /// Offset of the payload within the frame.
    pub fn payload_offset(&self) -> usize {
        Tcp { pad_to: 0, ..*self }.frame().len() - self.payload.len()
    }
}

/// This crate's comparators as the tests link them.
pub struct Linked;

impl colo_core::testing::Comparators for Linked {
    fn registrations() -> Vec<&'static colo_core::Registration> {
        crate::BUILT_IN.to_vec()
    }
}

/// The engine harness over [`Linked`].
pub type Harness = colo_core::testing::Harness<Linked>;
pub use colo_core::testing::Step;
