//! NTP frames and a tracker harness for this crate's unit tests.
//!
//! The harness drives the real engine: a [`Tracker`] over a registry of this crate's comparator
//! and colo-protocols' built-in ones, so port 123 is won against the real `udp` claim. The
//! counters identity (D-LOSS-5) is checked after every input.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};

/// One second in NTP fixed point.
pub const SECOND: u64 = 1 << 32;
/// One millisecond in NTP fixed point (rounded down).
pub const MS: u64 = SECOND / 1000;
/// The seconds of the test replies' receive and transmit times; the low byte is not zero, so
/// one second more or less changes that byte only.
const NOW: u64 = 0xe900_0001;

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

/// A UDP datagram from the guest's NTP server (10.0.0.1:123) to a client (10.0.0.2:40000).
pub fn udp_frame(payload: &[u8], net: Net) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber(0), [10, 0, 0, 1], [10, 0, 0, 2]).expect("ip");
    ip.identification = net.ip_id;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(net.mac, [0x52, 0x54, 0, 0, 0, 2])
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .udp(123, 40000)
        .write(&mut v, payload)
        .expect("udp frame");
    v
}

/// An NTP packet, field by field.
#[derive(Clone, Copy, Debug)]
pub struct Ntp<'a> {
    /// Leap indicator, version and mode.
    pub li_vn_mode: u8,
    /// Stratum.
    pub stratum: u8,
    /// Poll interval exponent.
    pub poll: u8,
    /// Precision exponent.
    pub precision: u8,
    /// Root delay.
    pub root_delay: u32,
    /// Root dispersion.
    pub root_dispersion: u32,
    /// Reference id.
    pub reference_id: [u8; 4],
    /// Reference timestamp.
    pub reference: u64,
    /// Origin timestamp.
    pub origin: u64,
    /// Receive timestamp.
    pub receive: u64,
    /// Transmit timestamp.
    pub transmit: u64,
    /// Extension fields and MAC.
    pub extensions: &'a [u8],
}

impl Ntp<'_> {
    /// Every field zero.
    pub const ZERO: Ntp<'static> = Ntp {
        li_vn_mode: 0,
        stratum: 0,
        poll: 0,
        precision: 0,
        root_delay: 0,
        root_dispersion: 0,
        reference_id: [0; 4],
        reference: 0,
        origin: 0,
        receive: 0,
        transmit: 0,
        extensions: &[],
    };

    /// The UDP payload.
    pub fn payload(&self) -> Vec<u8> {
        let mut v = vec![self.li_vn_mode, self.stratum, self.poll, self.precision];
        v.extend(self.root_delay.to_be_bytes());
        v.extend(self.root_dispersion.to_be_bytes());
        v.extend(self.reference_id);
        for t in [self.reference, self.origin, self.receive, self.transmit] {
            v.extend(t.to_be_bytes());
        }
        v.extend(self.extensions);
        v
    }

    /// The frame as the primary sends it.
    pub fn frame(&self) -> Vec<u8> {
        self.frame_on(P_NET)
    }

    /// The frame as `net` sends it.
    pub fn frame_on(&self, net: Net) -> Vec<u8> {
        udp_frame(&self.payload(), net)
    }
}

/// A stratum-2 NTPv4 server reply; transmit and receive fractions are 0x40000000.
pub const REPLY: Ntp<'static> = Ntp {
    li_vn_mode: 0x24,
    stratum: 2,
    poll: 6,
    precision: 0xec, // 2^-20 s
    root_delay: 0x0000_0123,
    root_dispersion: 0x0000_0456,
    reference_id: [192, 0, 2, 1],
    reference: (NOW - 60) << 32,
    origin: ((NOW - 1) << 32) | 0x1234_5678,
    receive: (NOW << 32) | 0x4000_0000,
    transmit: (NOW << 32) | 0x4000_0000,
    extensions: &[],
};

/// This crate's comparators as the tests link them.
pub struct Linked;

impl colo_core::testing::Comparators for Linked {
    fn registrations() -> Vec<&'static colo_core::Registration> {
        std::iter::once(&crate::NTP)
            .chain(colo_protocols::BUILT_IN)
            .collect()
    }
}

/// The engine harness over [`Linked`].
pub type Harness = colo_core::testing::Harness<Linked>;
