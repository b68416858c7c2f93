//! Frame builders for engine tests.
//!
//! Scenarios need frames that differ in exactly the fields under test (IP ID, TTL, TOS, MAC,
//! TCP window or timestamp option, padding, IP options, vnet header, VLAN tag, IP version) and
//! agree in everything else. A [`Net`] template holds the layers below the transport, a [`Tcp`]
//! or [`Udp`] template the transport, and each test overrides fields with `..Default::default()`
//! the way smoltcp's scenario tests do. Checksums and lengths are filled in by etherparse.

use std::fmt::Write as _;

use colo_core::Frame;
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpDscp, IpEcn, IpHeaders, IpNumber,
    Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, LaxNetSlice, LaxSlicedPacket,
    PacketBuilder, PacketBuilderStep, TcpOptionElement, TransportSlice, VlanId,
};

/// The primary guest's MAC address.
pub const MAC_GUEST: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x01];
/// The gateway's MAC address.
pub const MAC_GATEWAY: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0xfe];
/// The smallest Ethernet frame a NIC sends (without FCS).
pub const MIN_ETHERNET: usize = 60;

/// Source and destination addresses, which also pick the IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4.
    V4 {
        /// Source.
        src: [u8; 4],
        /// Destination.
        dst: [u8; 4],
    },
    /// IPv6.
    V6 {
        /// Source.
        src: [u8; 16],
        /// Destination.
        dst: [u8; 16],
    },
}

/// Everything below the transport header, plus what wraps the frame (padding, vnet header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Net {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// An 802.1Q tag with this VLAN id.
    pub vlan: Option<u16>,
    /// The addresses (and so the IP version).
    pub addrs: Addrs,
    /// IPv4 identification (IPv6 has none).
    pub ip_id: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 TOS byte (DSCP and ECN) or IPv6 traffic class.
    pub tos: u8,
    /// IPv4 options, a multiple of 4 bytes.
    pub ip_options: Vec<u8>,
    /// Pad the Ethernet frame with zeros to [`MIN_ETHERNET`] bytes.
    pub pad: bool,
    /// A vnet header put before the Ethernet frame (VNET_LEN = its length).
    pub vnet: Vec<u8>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            src_mac: MAC_GUEST,
            dst_mac: MAC_GATEWAY,
            vlan: None,
            addrs: Addrs::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2],
            },
            ip_id: 1,
            ttl: 64,
            tos: 0,
            ip_options: Vec::new(),
            pad: false,
            vnet: Vec::new(),
        }
    }
}

impl Net {
    /// The default template over IPv6 (fd00::1 to fd00::2).
    pub fn v6() -> Self {
        let mut src = [0; 16];
        src[0] = 0xfd;
        let mut dst = src;
        src[15] = 1;
        dst[15] = 2;
        Net {
            addrs: Addrs::V6 { src, dst },
            ..Net::default()
        }
    }

    /// The default template with an 802.1Q tag.
    pub fn vlan(id: u16) -> Self {
        Net {
            vlan: Some(id),
            ..Net::default()
        }
    }

    /// The same template with another IP ID.
    pub fn with_id(&self, ip_id: u16) -> Self {
        Net {
            ip_id,
            ..self.clone()
        }
    }

    fn ip_headers(&self) -> IpHeaders {
        match self.addrs {
            Addrs::V4 { src, dst } => {
                let options = self.ip_options[..]
                    .try_into()
                    .expect("IPv4 options must be a multiple of 4 bytes, at most 40");
                let h = Ipv4Header {
                    source: src,
                    destination: dst,
                    time_to_live: self.ttl,
                    identification: self.ip_id,
                    dscp: IpDscp::try_new(self.tos >> 2).unwrap_or(IpDscp::ZERO),
                    ecn: IpEcn::try_new(self.tos & 3).unwrap_or(IpEcn::ZERO),
                    options,
                    ..Ipv4Header::default()
                };
                IpHeaders::Ipv4(h, Ipv4Extensions::default())
            }
            Addrs::V6 { src, dst } => IpHeaders::Ipv6(
                Ipv6Header {
                    source: src,
                    destination: dst,
                    hop_limit: self.ttl,
                    traffic_class: self.tos,
                    ..Ipv6Header::default()
                },
                Ipv6Extensions::default(),
            ),
        }
    }

    fn builder(&self) -> PacketBuilderStep<IpHeaders> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        match self.vlan {
            Some(id) => eth
                .single_vlan(VlanId::try_new(id).expect("VLAN id fits 12 bits"))
                .ip(self.ip_headers()),
            None => eth.ip(self.ip_headers()),
        }
    }

    /// Wraps a built Ethernet frame: padding, then the vnet header.
    fn finish(&self, mut eth: Vec<u8>) -> Frame {
        if self.pad && eth.len() < MIN_ETHERNET {
            eth.resize(MIN_ETHERNET, 0);
        }
        if self.vnet.is_empty() {
            return Frame::new(eth);
        }
        let mut data = self.vnet.clone();
        data.extend_from_slice(&eth);
        let vnet_len = u32::try_from(self.vnet.len()).expect("small vnet header");
        Frame::with_vnet(vnet_len, data)
    }
}

/// A TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// The acknowledgment number; `None` leaves the ACK flag clear.
    pub ack: Option<u32>,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Receive window.
    pub window: u16,
    /// A timestamp option (value, echo reply).
    pub timestamp: Option<(u32, u32)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Default for Tcp {
    fn default() -> Self {
        Tcp {
            src_port: 5001,
            dst_port: 40000,
            seq: 1000,
            ack: Some(5000),
            syn: false,
            fin: false,
            rst: false,
            window: 4096,
            timestamp: None,
            payload: Vec::new(),
        }
    }
}

impl Tcp {
    /// A data segment at `seq` acknowledging `ack`.
    pub fn data(seq: u32, ack: u32, payload: impl Into<Vec<u8>>) -> Self {
        Tcp {
            seq,
            ack: Some(ack),
            payload: payload.into(),
            ..Tcp::default()
        }
    }

    /// A pure ACK at `seq`.
    pub fn pure_ack(seq: u32, ack: u32) -> Self {
        Tcp::data(seq, ack, Vec::new())
    }
}

/// A TCP frame.
pub fn tcp(net: &Net, seg: &Tcp) -> Frame {
    let mut b = net
        .builder()
        .tcp(seg.src_port, seg.dst_port, seg.seq, seg.window);
    if let Some(ack) = seg.ack {
        b = b.ack(ack);
    }
    if seg.syn {
        b = b.syn();
    }
    if seg.fin {
        b = b.fin();
    }
    if seg.rst {
        b = b.rst();
    }
    if let Some((value, echo)) = seg.timestamp {
        b = b
            .options(&[
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(value, echo),
            ])
            .expect("a timestamp option fits");
    }
    let mut eth = Vec::new();
    b.write(&mut eth, &seg.payload).expect("build TCP frame");
    net.finish(eth)
}

/// A UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Default for Udp {
    fn default() -> Self {
        Udp {
            src_port: 5002,
            dst_port: 53,
            payload: Vec::new(),
        }
    }
}

impl Udp {
    /// A datagram with the default ports.
    pub fn payload(payload: impl Into<Vec<u8>>) -> Self {
        Udp {
            payload: payload.into(),
            ..Udp::default()
        }
    }
}

/// A UDP frame.
pub fn udp(net: &Net, dgram: &Udp) -> Frame {
    let mut eth = Vec::new();
    net.builder()
        .udp(dgram.src_port, dgram.dst_port)
        .write(&mut eth, &dgram.payload)
        .expect("build UDP frame");
    net.finish(eth)
}

/// An ICMP (or, over IPv6, ICMPv6) echo request.
pub fn icmp_echo(net: &Net, id: u16, seq: u16, payload: &[u8]) -> Frame {
    let b = net.builder();
    let mut eth = Vec::new();
    match net.addrs {
        Addrs::V4 { .. } => b.icmpv4_echo_request(id, seq).write(&mut eth, payload),
        Addrs::V6 { .. } => b.icmpv6_echo_request(id, seq).write(&mut eth, payload),
    }
    .expect("build ICMP frame");
    net.finish(eth)
}

/// An IP packet of any protocol whose IP payload is `payload` as given (GRE, or a deliberately
/// truncated transport header).
pub fn ip_raw(net: &Net, protocol: u8, payload: &[u8]) -> Frame {
    let mut eth = Vec::new();
    net.builder()
        .write(&mut eth, IpNumber(protocol), payload)
        .expect("build IP frame");
    net.finish(eth)
}

/// IP protocol number of GRE.
pub const GRE: u8 = 47;
/// IP protocol number of TCP.
pub const TCP: u8 = 6;

/// An ARP request from the guest (non-IP).
pub fn arp(net: &Net) -> Frame {
    let packet = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &net.src_mac,
        &[10, 0, 0, 1],
        &[0; 6],
        &[10, 0, 0, 2],
    )
    .expect("a valid ARP request");
    let mut eth = Vec::new();
    PacketBuilder::ethernet2(net.src_mac, [0xff; 6])
        .arp(packet)
        .write(&mut eth)
        .expect("build ARP frame");
    net.finish(eth)
}

/// `len` bytes of `byte`: a payload whose every position is recognisable.
pub fn fill(byte: u8, len: usize) -> Vec<u8> {
    vec![byte; len]
}

/// The IPv4 identification of a frame without vnet header, if it is IPv4.
pub fn ipv4_id(frame: &Frame) -> Option<u16> {
    match LaxSlicedPacket::from_ethernet(frame.ethernet()).ok()?.net? {
        LaxNetSlice::Ipv4(ip) => Some(ip.header().identification()),
        _ => None,
    }
}

/// A one-line, tcpdump-like description for assertion messages.
pub fn describe(frame: &Frame) -> String {
    let mut s = String::new();
    if frame.vnet_len > 0 {
        let _ = write!(s, "vnet {} ", frame.vnet_len);
    }
    let Ok(p) = LaxSlicedPacket::from_ethernet(frame.ethernet()) else {
        let _ = write!(s, "{}-byte non-Ethernet frame", frame.len());
        return s;
    };
    if let Some(vlan) = p.vlan_ids().first() {
        let _ = write!(s, "vlan {} ", vlan.value());
    }
    match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let _ = write!(s, "ipv4 id {} ttl {} ", h.identification(), h.ttl());
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let _ = write!(s, "ipv6 hop {} ", ip.header().hop_limit());
        }
        Some(LaxNetSlice::Arp(_)) => s.push_str("arp "),
        None => {}
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let _ = write!(
                s,
                "tcp {}>{} seq {} ack {} len {}",
                t.source_port(),
                t.destination_port(),
                t.sequence_number(),
                t.acknowledgment_number(),
                t.payload().len()
            );
        }
        Some(TransportSlice::Udp(u)) => {
            let _ = write!(
                s,
                "udp {}>{} {:?}",
                u.source_port(),
                u.destination_port(),
                String::from_utf8_lossy(u.payload())
            );
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let _ = write!(s, "icmp {:?}", i.header().icmp_type);
        }
        Some(other) => {
            let _ = write!(s, "{other:?}");
        }
        None => {}
    }
    let _ = write!(s, " ({} bytes)", frame.len());
    s
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn padding_and_vnet_wrap_the_ethernet_frame() {
        let net = Net {
            pad: true,
            vnet: fill(7, 12),
            ..Net::default()
        };
        let f = tcp(&net, &Tcp::pure_ack(1, 2));
        assert_eq!(f.vnet_len, 12);
        assert_eq!(f.len(), 12 + MIN_ETHERNET);
        assert_eq!(&f.data[..12], &fill(7, 12)[..]);
        assert_eq!(ipv4_id(&f), Some(1));
    }

    #[test]
    fn ip_options_lengthen_the_header() {
        let plain = udp(&Net::default(), &Udp::payload("abc"));
        let opts = udp(
            &Net {
                ip_options: vec![1, 1, 1, 0],
                ..Net::default()
            },
            &Udp::payload("abc"),
        );
        assert_eq!(opts.len(), plain.len() + 4);
        assert_eq!(opts.data[14] & 0x0f, 6, "IHL 6");
    }

    #[test]
    fn describe_names_the_layers() {
        let f = tcp(&Net::vlan(5), &Tcp::data(1000, 5000, "hi"));
        assert_eq!(
            describe(&f),
            "vlan 5 ipv4 id 1 ttl 64 tcp 5001>40000 seq 1000 ack 5000 len 2 (60 bytes)"
        );
    }
}
