//! Who sent a packet and which connection it belongs to.
//!
//! colo-compare only sees guest egress traffic, so a flow key keeps its forward orientation:
//! the primary's and the secondary's packets of one connection produce the same key.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Which guest a packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The primary VM: its packets are the ones released to the world.
    Primary,
    /// The secondary (replica) VM: its packets are only compared, never released.
    Secondary,
}

impl Side {
    /// Both sides, primary first.
    pub const BOTH: [Side; 2] = [Side::Primary, Side::Secondary];

    /// 0 for the primary, 1 for the secondary: an index into per-side arrays.
    pub const fn index(self) -> usize {
        match self {
            Side::Primary => 0,
            Side::Secondary => 1,
        }
    }

    /// The lower-case name used in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Secondary => "secondary",
        }
    }
}

impl std::ops::Not for Side {
    type Output = Side;
    fn not(self) -> Side {
        match self {
            Side::Primary => Side::Secondary,
            Side::Secondary => Side::Primary,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The transport-level part of a flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Id {
    /// No transport identifier: ICMP, GRE, IP fragments and other protocols share one flow per
    /// address pair and protocol.
    None,
    /// Source and destination ports (TCP, UDP, UDP-Lite, DCCP, SCTP).
    Ports {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// Security parameter index (ESP, AH).
    Spi(u32),
}

/// The identity of one connection as colo-compare tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// Source IP address.
    pub src: IpAddr,
    /// Destination IP address.
    pub dst: IpAddr,
    /// IP protocol number (the last next-header for IPv6).
    pub protocol: u8,
    /// Ports or SPI.
    pub l4: L4Id,
    /// Outer VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
    /// Inner VLAN id of a double-tagged (802.1ad) frame.
    pub inner_vlan: Option<u16>,
    /// Whether this key is for IP fragments, which are compared apart from whole datagrams.
    pub fragment: bool,
}

/// An address as one word for hashing (IPv4 and IPv6 may share words: equality tells them
/// apart).
fn addr_word(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// The flow table hashes a key for every frame: three words hash several times faster than the
/// derived walk over every field, enum tag and byte array. Equal keys give equal words.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (tag, value) = match self.l4 {
            L4Id::None => (0u64, 0u64),
            L4Id::Ports { src, dst } => (1, u64::from(src) << 16 | u64::from(dst)),
            L4Id::Spi(spi) => (2, u64::from(spi)),
        };
        let vlan = |v: Option<u16>| v.map_or(0, |id| u64::from(id) + 1);
        let rest = u64::from(self.protocol)
            | u64::from(self.fragment) << 8
            | tag << 9
            | value << 11
            | vlan(self.vlan) << 43;
        state.write_u128(addr_word(&self.src));
        state.write_u128(addr_word(&self.dst));
        state.write_u128(u128::from(rest) | u128::from(vlan(self.inner_vlan)) << 64);
    }
}

impl FlowKey {
    /// The source and destination ports, if the key has ports.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4Id::Ports { src, dst } => Some((src, dst)),
            _ => None,
        }
    }
}

/// A short name for well-known IP protocol numbers, for logs.
pub fn protocol_name(protocol: u8) -> Option<&'static str> {
    Some(match protocol {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match protocol_name(self.protocol) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "proto-{}", self.protocol)?,
        }
        if self.fragment {
            f.write_str(" fragments")?;
        }
        let addr = |f: &mut fmt::Formatter<'_>, ip: IpAddr| match ip {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "[{a}]"),
        };
        f.write_str(" ")?;
        addr(f, self.src)?;
        if let L4Id::Ports { src, .. } = self.l4 {
            write!(f, ":{src}")?;
        }
        f.write_str(" > ")?;
        addr(f, self.dst)?;
        match self.l4 {
            L4Id::Ports { dst, .. } => write!(f, ":{dst}")?,
            L4Id::Spi(spi) => write!(f, " spi {spi:#010x}")?,
            L4Id::None => {}
        }
        if let Some(v) = self.vlan {
            write!(f, " vlan {v}")?;
        }
        if let Some(v) = self.inner_vlan {
            write!(f, ".{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn display_reads_like_tcpdump() {
        let key = FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 6,
            l4: L4Id::Ports {
                src: 5001,
                dst: 40000,
            },
            vlan: Some(5),
            inner_vlan: None,
            fragment: false,
        };
        assert_eq!(key.to_string(), "tcp 10.0.0.1:5001 > 10.0.0.2:40000 vlan 5");
        let key = FlowKey {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
            protocol: 50,
            l4: L4Id::Spi(7),
            vlan: None,
            inner_vlan: None,
            fragment: false,
        };
        assert_eq!(key.to_string(), "esp [::1] > [::1] spi 0x00000007");
    }

    #[test]
    fn every_field_reaches_the_hash() {
        use std::hash::BuildHasher;
        let base = FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 17,
            l4: L4Id::Ports { src: 1, dst: 2 },
            vlan: None,
            inner_vlan: None,
            fragment: false,
        };
        let variants = [
            base,
            FlowKey {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
                ..base
            },
            FlowKey {
                dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
                ..base
            },
            FlowKey {
                protocol: 6,
                ..base
            },
            FlowKey {
                l4: L4Id::Ports { src: 2, dst: 1 },
                ..base
            },
            FlowKey {
                l4: L4Id::Spi(0x0001_0002),
                ..base
            },
            FlowKey {
                l4: L4Id::None,
                ..base
            },
            FlowKey {
                vlan: Some(0),
                ..base
            },
            FlowKey {
                vlan: Some(4095),
                ..base
            },
            FlowKey {
                inner_vlan: Some(0),
                ..base
            },
            FlowKey {
                fragment: true,
                ..base
            },
        ];
        let state = std::hash::RandomState::new();
        let hashes: std::collections::HashSet<u64> =
            variants.iter().map(|k| state.hash_one(k)).collect();
        assert_eq!(
            hashes.len(),
            variants.len(),
            "a field does not reach the hash"
        );
        assert_eq!(state.hash_one(base), state.hash_one(FlowKey { ..base }));
    }

    #[test]
    fn sides() {
        assert_eq!(!Side::Primary, Side::Secondary);
        assert_eq!(Side::Secondary.index(), 1);
        assert_eq!(Side::Primary.to_string(), "primary");
    }
}
