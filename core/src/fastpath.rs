//! The classifier's fast path: plain TCP and UDP frames, read straight from their headers.
//!
//! Almost every frame a guest sends is an untagged or singly tagged Ethernet frame carrying an
//! unfragmented IPv4 or IPv6 packet (no extension headers) whose lengths are consistent and
//! whose TCP or UDP header is complete. For those, reading a dozen header fields in place
//! gives the very same [`PacketMeta`] as the general parser in [`crate::packet`], several times
//! faster. Anything else (VLAN stacks, IP options are fine but fragments are not, extension
//! headers, lengths that need D-TCP-1's leniency, truncated headers, other protocols) returns
//! `None` and takes the general path, so behaviour is defined there alone; a property test
//! checks that the two agree wherever the fast path answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::{FlowKey, L4Id};
use crate::packet::{PacketMeta, TcpMeta, proto};

const ETH_HEADER: usize = 14;
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
const VLAN: u16 = 0x8100;

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

/// `N` bytes of `data` at `at`, as an array so that reading fields needs no further checks.
fn bytes<const N: usize>(data: &[u8], at: usize) -> Option<&[u8; N]> {
    data.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The IP header's place and what it says, for a packet the fast path takes.
struct Ip {
    ipv6: bool,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    /// Offsets in the frame's DATA.
    l3: usize,
    l4: usize,
    end: usize,
}

fn ipv4(data: &[u8], l3: usize) -> Option<Ip> {
    let h: &[u8; 20] = bytes(data, l3)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(be16([h[2], h[3]]));
    // A length of 0, shorter than the header or longer than the frame is D-TCP-1's business;
    // the more-fragments flag or a fragment offset makes a fragment, keyed apart.
    if h[0] >> 4 != 4
        || ihl < 20
        || total < ihl
        || total > data.len() - l3
        || be16([h[6], h[7]]) & 0x3fff != 0
    {
        return None;
    }
    Some(Ip {
        ipv6: false,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol: h[9],
        l3,
        l4: l3 + ihl,
        end: l3 + total,
    })
}

fn ipv6(data: &[u8], l3: usize) -> Option<Ip> {
    let h: &[u8; 40] = bytes(data, l3)?;
    let payload = usize::from(be16([h[4], h[5]]));
    if h[0] >> 4 != 6 || payload == 0 || 40 + payload > data.len() - l3 {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddr> {
        let b: &[u8; 16] = bytes(h, at)?;
        Some(IpAddr::V6(Ipv6Addr::from(*b)))
    };
    Some(Ip {
        ipv6: true,
        src: addr(8)?,
        dst: addr(24)?,
        // Only a transport header directly after the fixed header is taken below.
        protocol: h[6],
        l3,
        l4: l3 + 40,
        end: l3 + 40 + payload,
    })
}

/// The classification of a plain TCP or UDP frame whose Ethernet header starts at `eth` in
/// `data`; `None` for any frame the general parser must look at.
pub(crate) fn classify_plain(data: &[u8], eth: usize) -> Option<PacketMeta> {
    let e: &[u8; 18] = bytes(data, eth)?;
    let (ethertype, l3, vlan) = match be16([e[12], e[13]]) {
        VLAN => (
            be16([e[16], e[17]]),
            eth + 18,
            Some(be16([e[14], e[15]]) & 0x0fff),
        ),
        other => (other, eth + ETH_HEADER, None),
    };
    let ip = match ethertype {
        IPV4 => ipv4(data, l3)?,
        IPV6 => ipv6(data, l3)?,
        _ => return None,
    };
    let transport = data.get(ip.l4..ip.end)?;
    let (ports, tcp) = match ip.protocol {
        proto::UDP => {
            let u: &[u8; 8] = bytes(transport, 0)?;
            ([u[0], u[1], u[2], u[3]], None)
        }
        proto::TCP => {
            let t: &[u8; 20] = bytes(transport, 0)?;
            let hlen = usize::from(t[12] >> 4) * 4;
            if hlen < 20 || transport.len() < hlen {
                return None;
            }
            let flags = t[13];
            let meta = TcpMeta {
                seq: be32([t[4], t[5], t[6], t[7]]),
                ack: be32([t[8], t[9], t[10], t[11]]),
                fin: flags & 0x01 != 0,
                syn: flags & 0x02 != 0,
                rst: flags & 0x04 != 0,
                has_ack: flags & 0x10 != 0,
                payload: u32::try_from(ip.l4 + hlen).ok()?,
            };
            ([t[0], t[1], t[2], t[3]], Some(meta))
        }
        _ => return None,
    };
    Some(PacketMeta {
        key: FlowKey {
            src: ip.src,
            dst: ip.dst,
            protocol: ip.protocol,
            l4: L4Id::Ports {
                src: be16([ports[0], ports[1]]),
                dst: be16([ports[2], ports[3]]),
            },
            vlan,
            inner_vlan: None,
            fragment: false,
        },
        l3: u32::try_from(ip.l3).ok()?,
        l4: u32::try_from(ip.l4).ok()?,
        end: u32::try_from(ip.end).ok()?,
        ipv6: ip.ipv6,
        tcp,
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frame::Frame;
    use crate::packet::{Classified, MAX_VNET_HDR, MIN_ETHERNET, classify, classify_general};
    use etherparse::{PacketBuilder, VlanId};
    use proptest::prelude::*;

    /// A well-formed frame: vnet header, optional VLAN tag, IPv4 or IPv6, TCP or UDP.
    fn build(vnet: usize, vlan: Option<u16>, v6: bool, tcp: bool, payload: &[u8]) -> Vec<u8> {
        let eth = || PacketBuilder::ethernet2([2; 6], [4; 6]);
        let step = match (vlan, v6) {
            (Some(id), true) => eth()
                .single_vlan(VlanId::try_new(id).expect("12 bits"))
                .ipv6([1; 16], [2; 16], 64),
            (Some(id), false) => eth()
                .single_vlan(VlanId::try_new(id).expect("12 bits"))
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64),
            (None, true) => eth().ipv6([1; 16], [2; 16], 64),
            (None, false) => eth().ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64),
        };
        let mut out = vec![0xee; vnet];
        if tcp {
            step.tcp(4000, 80, 77, 1000)
                .ack(9)
                .write(&mut out, payload)
                .expect("build");
        } else {
            step.udp(4000, 53).write(&mut out, payload).expect("build");
        }
        out
    }

    fn agree(frame: &Frame) -> Result<(), TestCaseError> {
        if frame.vnet_len > MAX_VNET_HDR || frame.ethernet().len() < MIN_ETHERNET {
            return Ok(());
        }
        if let Some(fast) = classify_plain(&frame.data, frame.vnet_len as usize) {
            prop_assert_eq!(Classified::Comparable(fast), classify_general(frame));
        }
        Ok(())
    }

    #[test]
    fn plain_frames_take_the_fast_path_and_agree() {
        for vnet in [0, 12] {
            for vlan in [None, Some(7)] {
                for v6 in [false, true] {
                    for tcp in [false, true] {
                        let data = build(vnet, vlan, v6, tcp, b"some payload");
                        let frame = Frame::with_vnet(vnet as u32, data.clone());
                        let fast = classify_plain(&data, vnet).expect("a plain frame");
                        assert_eq!(Classified::Comparable(fast), classify_general(&frame));
                        assert_eq!(classify(&frame), classify_general(&frame));
                    }
                }
            }
        }
    }

    #[test]
    fn fragments_padding_and_truncation_leave_it() {
        let data = build(0, None, false, true, b"0123456789");
        let mut frag = data.clone();
        frag[20] = 0x20;
        assert!(classify_plain(&frag, 0).is_none());
        let mut zero_len = data.clone();
        zero_len[16] = 0;
        zero_len[17] = 0;
        assert!(classify_plain(&zero_len, 0).is_none());
        let mut padded = build(0, None, false, true, b"");
        padded.resize(60, 0);
        let m = classify_plain(&padded, 0).expect("padding after a consistent length is fine");
        assert_eq!(m.end, 54);
        assert!(classify_plain(&data[..40], 0).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn agrees_with_the_general_parser(
            vnet in prop_oneof![Just(0usize), Just(12usize)],
            vlan in proptest::option::of(0u16..4096),
            v6 in any::<bool>(),
            tcp in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            edits in proptest::collection::vec((0usize..96, any::<u8>()), 0..4),
            cut in proptest::option::of(0usize..140),
            pad in 0usize..20,
        ) {
            let mut data = build(vnet, vlan, v6, tcp, &payload);
            for (at, byte) in edits {
                if let Some(b) = data.get_mut(vnet + at) {
                    *b = byte;
                }
            }
            if let Some(c) = cut {
                data.truncate(vnet + c);
            }
            data.extend(std::iter::repeat_n(0, pad));
            agree(&Frame::with_vnet(vnet as u32, data))?;
        }

        #[test]
        fn agrees_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            agree(&Frame::new(data))?;
        }
    }
}
