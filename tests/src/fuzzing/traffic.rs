//! The frames the tracker target sends: a few flows of every kind the comparators handle,
//! built from fuzz input.
//!
//! Random bytes seldom make a TCP stream that lines up on both sides, so the target builds
//! its frames from choices (flow, kind, sequence number, flags, payload) instead, keeping a
//! running sequence number per flow and side so that coherent streams, retransmissions,
//! resegmentation and one-byte differences are all a single choice away. Every IPv4 frame
//! carries a fresh IP identification (which no comparator looks at outside strict mode), so
//! two fed frames are rarely equal and a double release is visible.

use colo_core::Frame;

use crate::frames::{Addrs, Net, Tcp, Udp, arp, icmp_echo, ip_raw, tcp, udp};

use super::input::Input;

/// Flows per kind.
pub const FLOWS: usize = 4;

/// What kind of traffic a flow carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TCP over IPv4.
    Tcp,
    /// TCP over IPv6.
    Tcp6,
    /// TCP over IPv4 with an 802.1Q tag.
    TcpVlan,
    /// UDP to an ordinary port.
    Udp,
    /// UDP to port 53 (the DNS comparator).
    Dns,
    /// UDP to port 123 (the NTP comparator).
    Ntp,
    /// ICMP echo.
    Icmp,
    /// GRE (the IP fallback).
    Gre,
    /// An IPv4 fragment (the IP fallback, D-FRAG-1).
    Fragment,
    /// ARP (never compared).
    Arp,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::Tcp,
        Kind::Tcp6,
        Kind::TcpVlan,
        Kind::Udp,
        Kind::Dns,
        Kind::Ntp,
        Kind::Icmp,
        Kind::Gre,
        Kind::Fragment,
        Kind::Arp,
    ];

    fn is_tcp(self) -> bool {
        matches!(self, Kind::Tcp | Kind::Tcp6 | Kind::TcpVlan)
    }
}

/// One segment or datagram as both sides would send it; the sides differ only in what the
/// choice says.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The flow kind.
    pub kind: Kind,
    /// The flow within its kind.
    pub flow: usize,
    /// TCP sequence number (ignored by other kinds).
    pub seq: u32,
    /// TCP acknowledgment number, if the ACK flag is set.
    pub ack: Option<u32>,
    /// TCP SYN, FIN, RST flags.
    pub flags: [bool; 3],
    /// The payload.
    pub payload: Vec<u8>,
}

/// Running sequence numbers per TCP flow and side.
#[derive(Debug, Default)]
pub struct Streams {
    next: [[u32; 2]; 3 * FLOWS],
    ip_id: u16,
}

impl Streams {
    fn slot(kind: Kind, flow: usize) -> usize {
        let k = match kind {
            Kind::Tcp6 => 1,
            Kind::TcpVlan => 2,
            _ => 0,
        };
        k * FLOWS + flow % FLOWS
    }

    /// Reads a segment or datagram from `input`. `side` picks whose running sequence number a
    /// coherent segment continues.
    pub fn choose(&mut self, input: &mut Input<'_>, side: usize) -> Choice {
        let kind = Kind::ALL[input.below(Kind::ALL.len())];
        let flow = input.below(FLOWS);
        let mode = input.u8();
        let len = match mode >> 5 {
            0 => 0,
            1..=5 => input.below(200),
            6 => 200 + usize::from(input.u16() % 1300),
            _ => 1500 + usize::from(input.u16() % 8000),
        };
        let payload = input.bytes(len).to_vec();
        let slot = Self::slot(kind, flow);
        let running = self.next[slot][side];
        let seq = match mode & 3 {
            0 | 1 => running,
            2 => running.wrapping_sub(u32::from(input.u8())),
            _ => input.u32(),
        };
        let flags_byte = input.u8();
        let flags = [
            flags_byte & 1 != 0,
            flags_byte & 2 != 0,
            flags_byte & 4 != 0,
        ];
        let ack = (flags_byte & 8 == 0).then(|| 5000u32.wrapping_add(u32::from(flags_byte >> 4)));
        if kind.is_tcp() {
            let advance = u32::try_from(payload.len()).unwrap_or(u32::MAX)
                + u32::from(flags[0])
                + u32::from(flags[1]);
            self.next[slot][side] = seq.wrapping_add(advance);
        }
        Choice {
            kind,
            flow,
            seq,
            ack,
            flags,
            payload,
        }
    }

    /// Records that `side` has sent `choice` too (for segments built once, sent by both).
    pub fn follow(&mut self, choice: &Choice, side: usize) {
        if choice.kind.is_tcp() {
            let slot = Self::slot(choice.kind, choice.flow);
            let advance = u32::try_from(choice.payload.len()).unwrap_or(u32::MAX)
                + u32::from(choice.flags[0])
                + u32::from(choice.flags[1]);
            self.next[slot][side] = choice.seq.wrapping_add(advance);
        }
    }

    /// The frame for `choice`, with the next IP identification.
    pub fn build(&mut self, choice: &Choice) -> Frame {
        self.ip_id = self.ip_id.wrapping_add(1);
        let flow = u8::try_from(choice.flow % FLOWS).unwrap_or(0);
        let mut net = match choice.kind {
            Kind::Tcp6 => Net::v6(),
            Kind::TcpVlan => Net::vlan(10 + u16::from(flow)),
            _ => Net::default(),
        };
        net.ip_id = self.ip_id;
        if let Addrs::V4 { src, .. } = &mut net.addrs {
            src[3] = 1 + flow;
        }
        let port = 1000 + u16::from(flow);
        match choice.kind {
            Kind::Tcp | Kind::Tcp6 | Kind::TcpVlan => {
                let [syn, fin, rst] = choice.flags;
                let seg = Tcp {
                    src_port: port,
                    dst_port: 80,
                    seq: choice.seq,
                    ack: choice.ack,
                    syn,
                    fin,
                    rst,
                    payload: choice.payload.clone(),
                    ..Tcp::default()
                };
                tcp(&net, &seg)
            }
            Kind::Udp | Kind::Dns | Kind::Ntp => {
                let dst_port = match choice.kind {
                    Kind::Dns => 53,
                    Kind::Ntp => 123,
                    _ => 7000,
                };
                udp(
                    &net,
                    &Udp {
                        src_port: port,
                        dst_port,
                        payload: choice.payload.clone(),
                    },
                )
            }
            Kind::Icmp => icmp_echo(&net, port, 1, &choice.payload),
            Kind::Gre => ip_raw(&net, crate::frames::GRE, &choice.payload),
            Kind::Fragment => {
                let mut f = udp(&net, &Udp::payload(choice.payload.clone()));
                let mut data = f.data.to_vec();
                // The more-fragments flag of the IPv4 header after a plain Ethernet header.
                data[20] |= 0x20;
                f.data = data.into();
                f
            }
            Kind::Arp => arp(&net),
        }
    }
}

/// `frame` with one byte changed at `at` (modulo its length), as a secondary that produced
/// different output would send it.
pub fn mutate(frame: &Frame, at: usize, xor: u8) -> Frame {
    let mut data = frame.data.to_vec();
    if !data.is_empty() {
        let i = at % data.len();
        data[i] ^= xor.max(1);
    }
    Frame::with_vnet(frame.vnet_len, data)
}
