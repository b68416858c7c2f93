//! Classifying a frame: comparable (with a flow key and the offsets a comparator needs) or
//! uncompared (with the reason).
//!
//! Parsing uses etherparse's zero-copy lax slices, so an IP total length that disagrees with
//! the frame is tolerated the way D-TCP-1 asks: the IP length wins, the frame length is the
//! fallback when the IP length is 0 or larger than the frame. Every offset this module hands
//! out lies within the frame, so comparators index without fear (D-TCP-3).

use std::fmt;
use std::net::IpAddr;

use etherparse::{LaxLinkExtSlice, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice};

use crate::flow::{FlowKey, L4Id};
use crate::frame::Frame;
use crate::time::Timestamp;

/// The largest vnet header QEMU accepts (`virtio_net_hdr_v1_hash`).
pub const MAX_VNET_HDR: u32 = 20;
/// QEMU's minimum: an Ethernet header plus a VLAN tag's worth of bytes.
pub const MIN_ETHERNET: usize = 18;

/// IP protocol numbers the classifier treats specially.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// IPsec ESP.
    pub const ESP: u8 = 50;
    /// IPsec AH.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// TCP header fields the TCP comparator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpMeta {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// ACK flag: whether `ack` means anything.
    pub has_ack: bool,
    /// Offset of the TCP payload within the frame's DATA.
    pub payload: u32,
}

/// What the classifier found in a comparable frame. All offsets index the frame's DATA
/// (vnet header included) and satisfy `l3 <= l4 <= end <= data.len()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// The flow this packet belongs to.
    pub key: FlowKey,
    /// Offset of the IP header.
    pub l3: u32,
    /// Offset of the transport header (the IP payload).
    pub l4: u32,
    /// End of the IP payload according to the IP length (D-TCP-1); padding lies beyond.
    pub end: u32,
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// TCP fields, for unfragmented TCP.
    pub tcp: Option<TcpMeta>,
}

/// Why a frame is not compared. A primary one is released at once, a secondary one discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Uncompared {
    /// VNET_LEN larger than any vnet header QEMU knows.
    BadVnetHeader {
        /// The announced vnet header length.
        vnet_len: u32,
    },
    /// Fewer bytes than an Ethernet header plus a tag.
    TooShort {
        /// Length of the Ethernet part.
        len: usize,
    },
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NotIp {
        /// The EtherType after any VLAN tags.
        ethertype: u16,
    },
    /// An IP header that does not parse.
    MalformedIp,
    /// The transport header is cut short (T51).
    TruncatedL4 {
        /// IP protocol number.
        protocol: u8,
    },
    /// A configured passthrough rule matched.
    Passthrough,
    /// No enabled comparator claims the packet (the IP fallback was disabled).
    NoComparator,
    /// Observe mode: the memory budget leaves no room for the copy that would be compared.
    OverBudget,
}

impl Uncompared {
    /// A stable short name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Uncompared::BadVnetHeader { .. } => "bad-vnet-header",
            Uncompared::TooShort { .. } => "too-short",
            Uncompared::NotIp { .. } => "not-ip",
            Uncompared::MalformedIp => "malformed-ip",
            Uncompared::TruncatedL4 { .. } => "truncated-l4",
            Uncompared::Passthrough => "passthrough",
            Uncompared::NoComparator => "no-comparator",
            Uncompared::OverBudget => "over-budget",
        }
    }
}

impl fmt::Display for Uncompared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Uncompared::BadVnetHeader { vnet_len } => {
                write!(f, "vnet header length {vnet_len} exceeds {MAX_VNET_HDR}")
            }
            Uncompared::TooShort { len } => write!(f, "{len}-byte frame is too short"),
            Uncompared::NotIp { ethertype } => write!(f, "ethertype {ethertype:#06x} is not IP"),
            Uncompared::MalformedIp => f.write_str("malformed IP header"),
            Uncompared::TruncatedL4 { protocol } => {
                write!(f, "truncated header of IP protocol {protocol}")
            }
            Uncompared::Passthrough => f.write_str("matched a passthrough rule"),
            Uncompared::NoComparator => f.write_str("no comparator claims it"),
            Uncompared::OverBudget => {
                f.write_str("no room in the memory budget for a copy to compare (observe mode)")
            }
        }
    }
}

/// The result of classifying one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    /// An IP packet that goes to a comparator.
    Comparable(PacketMeta),
    /// Anything else.
    Uncompared(Uncompared),
}

fn offset_in(base: &[u8], inner: &[u8]) -> u32 {
    // Both slices come from the same buffer; the difference is a plain address computation.
    let off = (inner.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    u32::try_from(off.min(base.len())).unwrap_or(u32::MAX)
}

/// Classifies `frame` (QEMU's §4.1 with IPv6 and VLAN support, D-L3-1, D-FRAG-1, D-TCP-1).
pub fn classify(frame: &Frame) -> Classified {
    if frame.vnet_len <= MAX_VNET_HDR && frame.ethernet().len() >= MIN_ETHERNET {
        if let Some(meta) = crate::fastpath::classify_plain(&frame.data, frame.vnet_len as usize) {
            return Classified::Comparable(meta);
        }
    }
    classify_general(frame)
}

/// The general classifier: every frame the fast path ([`crate::fastpath`]) does not take.
pub(crate) fn classify_general(frame: &Frame) -> Classified {
    use Classified::Uncompared as U;
    if frame.vnet_len > MAX_VNET_HDR {
        return U(Uncompared::BadVnetHeader {
            vnet_len: frame.vnet_len,
        });
    }
    let data: &[u8] = &frame.data;
    let eth = frame.ethernet();
    if eth.len() < MIN_ETHERNET {
        return U(Uncompared::TooShort { len: eth.len() });
    }
    let Ok(sliced) = LaxSlicedPacket::from_ethernet(eth) else {
        return U(Uncompared::TooShort { len: eth.len() });
    };
    let (mut vlan, mut inner_vlan) = (None, None);
    for ext in &sliced.link_exts {
        if let LaxLinkExtSlice::Vlan(tag) = ext {
            let id = tag.vlan_identifier().value();
            if vlan.is_none() {
                vlan = Some(id);
            } else if inner_vlan.is_none() {
                inner_vlan = Some(id);
            }
        }
    }
    let ethertype = sliced.ether_payload().map(|p| p.ether_type.0).unwrap_or(0);
    let (l3, ipv6, src, dst, payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let (s, d) = (h.source_addr(), h.destination_addr());
            (
                offset_in(data, h.slice()),
                false,
                IpAddr::V4(s),
                IpAddr::V4(d),
                ip.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let (s, d) = (h.source_addr(), h.destination_addr());
            (
                offset_in(data, h.slice()),
                true,
                IpAddr::V6(s),
                IpAddr::V6(d),
                ip.payload(),
            )
        }
        Some(LaxNetSlice::Arp(_)) | None => {
            return U(match ethertype {
                0x0800 | 0x86dd => Uncompared::MalformedIp,
                _ => Uncompared::NotIp { ethertype },
            });
        }
    };
    let protocol = payload.ip_number.0;
    let l4 = offset_in(data, payload.payload);
    let end = l4.saturating_add(u32::try_from(payload.payload.len()).unwrap_or(u32::MAX));
    let ip_payload = payload.payload;
    let mut meta = PacketMeta {
        key: FlowKey {
            src,
            dst,
            protocol,
            l4: L4Id::None,
            vlan,
            inner_vlan,
            fragment: false,
        },
        l3,
        l4,
        end,
        ipv6,
        tcp: None,
    };
    if payload.fragmented {
        meta.key.fragment = true;
        return Classified::Comparable(meta);
    }
    let ports = |min: usize| -> Result<L4Id, Uncompared> {
        match ip_payload {
            [a, b, c, d, ..] if ip_payload.len() >= min => Ok(L4Id::Ports {
                src: u16::from_be_bytes([*a, *b]),
                dst: u16::from_be_bytes([*c, *d]),
            }),
            _ => Err(Uncompared::TruncatedL4 { protocol }),
        }
    };
    let spi = |at: usize| -> Result<L4Id, Uncompared> {
        match ip_payload.get(at..at + 4) {
            Some(&[a, b, c, d]) => Ok(L4Id::Spi(u32::from_be_bytes([a, b, c, d]))),
            _ => Err(Uncompared::TruncatedL4 { protocol }),
        }
    };
    let need = |min: usize| -> Result<L4Id, Uncompared> {
        if ip_payload.len() >= min {
            Ok(L4Id::None)
        } else {
            Err(Uncompared::TruncatedL4 { protocol })
        }
    };
    let l4id = match protocol {
        proto::TCP => match TcpHeaderSlice::from_slice(ip_payload) {
            Ok(tcp) => {
                let hlen = u32::from(tcp.data_offset()) * 4;
                meta.tcp = Some(TcpMeta {
                    seq: tcp.sequence_number(),
                    ack: tcp.acknowledgment_number(),
                    syn: tcp.syn(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                    has_ack: tcp.ack(),
                    payload: (l4 + hlen).min(end),
                });
                Ok(L4Id::Ports {
                    src: tcp.source_port(),
                    dst: tcp.destination_port(),
                })
            }
            Err(_) => Err(Uncompared::TruncatedL4 { protocol }),
        },
        proto::UDP | proto::UDPLITE => ports(8),
        proto::DCCP | proto::SCTP => ports(4),
        proto::ESP => spi(0),
        proto::AH => spi(4),
        proto::ICMP | proto::ICMPV6 => need(4),
        _ => Ok(L4Id::None),
    };
    match l4id {
        Ok(id) => {
            meta.key.l4 = id;
            Classified::Comparable(meta)
        }
        Err(reason) => U(reason),
    }
}

/// A comparable packet held by the engine: the frame, what classification found, and when it
/// arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The frame exactly as received.
    pub frame: Frame,
    /// Offsets and flow key.
    pub meta: PacketMeta,
    /// When the frame finished arriving.
    pub arrived: Timestamp,
}

impl Packet {
    /// Classifies `frame`; `Err` carries the frame back with the reason it is not comparable.
    pub fn parse(frame: Frame, arrived: Timestamp) -> Result<Packet, (Frame, Uncompared)> {
        match classify(&frame) {
            Classified::Comparable(meta) => Ok(Packet {
                frame,
                meta,
                arrived,
            }),
            Classified::Uncompared(why) => Err((frame, why)),
        }
    }

    /// The frame's DATA, vnet header included.
    pub fn data(&self) -> &[u8] {
        &self.frame.data
    }

    /// Size of the frame's DATA.
    pub fn len(&self) -> usize {
        self.frame.data.len()
    }

    /// Never true: a comparable packet has at least an Ethernet and an IP header.
    pub fn is_empty(&self) -> bool {
        self.frame.data.is_empty()
    }

    /// The flow key.
    pub fn key(&self) -> &FlowKey {
        &self.meta.key
    }

    fn slice(&self, from: u32, to: u32) -> &[u8] {
        self.frame
            .data
            .get(from as usize..to as usize)
            .unwrap_or(&[])
    }

    /// Everything from the transport header to the end of the frame, padding included: what
    /// QEMU compares for UDP and ICMP.
    pub fn from_l4(&self) -> &[u8] {
        self.frame.data.get(self.meta.l4 as usize..).unwrap_or(&[])
    }

    /// The IP payload as the IP length delimits it (no padding).
    pub fn ip_payload(&self) -> &[u8] {
        self.slice(self.meta.l4, self.meta.end)
    }

    /// The Ethernet frame and everything after it (DATA without the vnet header).
    pub fn ethernet(&self) -> &[u8] {
        self.frame.ethernet()
    }

    /// The TCP payload (empty for non-TCP packets).
    pub fn tcp_payload(&self) -> &[u8] {
        match self.meta.tcp {
            Some(t) => self.slice(t.payload, self.meta.end),
            None => &[],
        }
    }

    /// Offset of the TCP payload within DATA (the end of the IP payload for non-TCP).
    pub fn tcp_payload_offset(&self) -> usize {
        self.meta.tcp.map_or(self.meta.end, |t| t.payload) as usize
    }

    /// Names the header field or payload that byte `offset` of DATA falls in, for mismatch
    /// reports ("udp checksum", "ip ttl", "tcp payload", ...).
    pub fn field_at(&self, offset: usize) -> &'static str {
        let m = &self.meta;
        let (l3, l4, end) = (m.l3 as usize, m.l4 as usize, m.end as usize);
        if offset >= self.len() {
            return "frame length";
        }
        if offset < self.frame.vnet_len as usize {
            return "vnet header";
        }
        if offset < l3 {
            let eth = offset - self.frame.vnet_len as usize;
            return match eth {
                0..6 => "ethernet destination",
                6..12 => "ethernet source",
                _ => "ethernet type or vlan tag",
            };
        }
        if offset < l4 {
            let i = offset - l3;
            if m.ipv6 {
                return match i {
                    0..4 => "ipv6 traffic class or flow label",
                    4..6 => "ipv6 payload length",
                    6 => "ipv6 next header",
                    7 => "ipv6 hop limit",
                    8..24 => "ipv6 source",
                    24..40 => "ipv6 destination",
                    _ => "ipv6 extension header",
                };
            }
            return match i {
                0 => "ip version or header length",
                1 => "ip tos",
                2..4 => "ip total length",
                4..6 => "ip id",
                6..8 => "ip flags or fragment offset",
                8 => "ip ttl",
                9 => "ip protocol",
                10..12 => "ip checksum",
                12..16 => "ip source",
                16..20 => "ip destination",
                _ => "ip options",
            };
        }
        if offset >= end {
            return "ethernet padding";
        }
        let i = offset - l4;
        if m.key.fragment {
            return "ip fragment payload";
        }
        match m.key.protocol {
            proto::TCP => {
                if offset >= self.tcp_payload_offset() {
                    return "tcp payload";
                }
                match i {
                    0..2 => "tcp source port",
                    2..4 => "tcp destination port",
                    4..8 => "tcp sequence number",
                    8..12 => "tcp acknowledgment number",
                    12..14 => "tcp header length or flags",
                    14..16 => "tcp window",
                    16..18 => "tcp checksum",
                    18..20 => "tcp urgent pointer",
                    _ => "tcp options",
                }
            }
            proto::UDP | proto::UDPLITE => match i {
                0..2 => "udp source port",
                2..4 => "udp destination port",
                4..6 => "udp length",
                6..8 => "udp checksum",
                _ => "udp payload",
            },
            proto::ICMP | proto::ICMPV6 => match i {
                0 => "icmp type",
                1 => "icmp code",
                2..4 => "icmp checksum",
                4..6 => "icmp id",
                6..8 => "icmp sequence",
                _ => "icmp payload",
            },
            _ => "ip payload",
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use etherparse::PacketBuilder;

    const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

    fn tcp4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5001, 40000, 1000, 4096)
            .ack(5000);
        let mut v = Vec::new();
        b.write(&mut v, payload).expect("build");
        v
    }

    fn comparable(frame: Frame) -> PacketMeta {
        match classify(&frame) {
            Classified::Comparable(m) => m,
            Classified::Uncompared(u) => panic!("uncompared: {u}"),
        }
    }

    #[test]
    fn tcp_over_ipv4() {
        let m = comparable(Frame::new(tcp4(b"hello")));
        assert_eq!(
            m.key.l4,
            L4Id::Ports {
                src: 5001,
                dst: 40000
            }
        );
        assert_eq!(m.key.protocol, proto::TCP);
        assert_eq!((m.l3, m.l4, m.end), (14, 34, 59));
        let t = m.tcp.expect("tcp");
        assert_eq!((t.seq, t.ack, t.has_ack, t.payload), (1000, 5000, true, 54));
    }

    #[test]
    fn padding_is_not_tcp_payload() {
        // D-TCP-1 / T46: a pure ACK padded to 60 bytes has no payload.
        let mut f = tcp4(b"");
        f.resize(60, 0);
        let p = Packet::parse(Frame::new(f), Timestamp::ZERO).expect("comparable");
        assert!(p.tcp_payload().is_empty());
        assert_eq!(p.from_l4().len(), 26);
        assert_eq!(p.field_at(58), "ethernet padding");
    }

    #[test]
    fn ip_length_zero_falls_back_to_frame() {
        let mut f = tcp4(b"abcdef");
        f[16] = 0;
        f[17] = 0;
        let p = Packet::parse(Frame::new(f), Timestamp::ZERO).expect("comparable");
        assert_eq!(p.tcp_payload(), b"abcdef");
    }

    #[test]
    fn vnet_header_is_skipped_and_checked() {
        let mut data = vec![0u8; 12];
        data.extend(tcp4(b"x"));
        let m = comparable(Frame::with_vnet(12, data.clone()));
        assert_eq!(m.l3, 26);
        assert_eq!(
            classify(&Frame::with_vnet(24, data)),
            Classified::Uncompared(Uncompared::BadVnetHeader { vnet_len: 24 })
        );
    }

    #[test]
    fn vlan_ids_enter_the_key() {
        let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(etherparse::VlanId::try_new(42).expect("vlan"))
            .ipv6([1; 16], [2; 16], 64)
            .udp(53, 1000);
        let mut v = Vec::new();
        b.write(&mut v, b"dns").expect("build");
        let m = comparable(Frame::new(v));
        assert_eq!(m.key.vlan, Some(42));
        assert!(m.ipv6);
        assert_eq!(m.key.l4, L4Id::Ports { src: 53, dst: 1000 });
    }

    #[test]
    fn non_ip_and_short_frames_are_uncompared() {
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(matches!(
            classify(&Frame::new(arp)),
            Classified::Uncompared(_)
        ));
        assert_eq!(
            classify(&Frame::new(vec![0u8; 17])),
            Classified::Uncompared(Uncompared::TooShort { len: 17 })
        );
    }

    #[test]
    fn truncated_tcp_is_uncompared() {
        // T51: IPv4 says TCP, the frame ends 10 bytes into the TCP header.
        let mut f = tcp4(b"");
        f.truncate(14 + 20 + 10);
        f[16] = 0;
        f[17] = 30;
        assert_eq!(
            classify(&Frame::new(f)),
            Classified::Uncompared(Uncompared::TruncatedL4 { protocol: 6 })
        );
    }

    #[test]
    fn fragments_have_no_ports() {
        let mut f = tcp4(b"0123456789");
        f[20] = 0x20; // more fragments
        let m = comparable(Frame::new(f));
        assert!(m.key.fragment);
        assert_eq!(m.key.l4, L4Id::None);
        assert_eq!(m.tcp, None);
    }

    #[test]
    fn fields_are_named() {
        let p = Packet::parse(Frame::new(tcp4(b"hello")), Timestamp::ZERO).expect("comparable");
        assert_eq!(p.field_at(0), "ethernet destination");
        assert_eq!(p.field_at(14 + 4), "ip id");
        assert_eq!(p.field_at(14 + 8), "ip ttl");
        assert_eq!(p.field_at(34 + 16), "tcp checksum");
        assert_eq!(p.field_at(56), "tcp payload");
        assert_eq!(p.field_at(500), "frame length");
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics_and_offsets_stay_inside(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            vnet in 0u32..30,
        ) {
            let frame = Frame::with_vnet(vnet, data);
            if let Classified::Comparable(m) = classify(&frame) {
                let len = frame.len() as u32;
                proptest::prop_assert!(m.l3 <= m.l4 && m.l4 <= m.end && m.end <= len);
                if let Some(t) = m.tcp {
                    proptest::prop_assert!(m.l4 <= t.payload && t.payload <= m.end);
                }
            }
        }
    }
}
