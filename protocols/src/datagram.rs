//! The packet-by-packet matcher shared by UDP, ICMP and the IP fallback.
//!
//! QEMU compares UDP and ICMP byte for byte from the transport header to the end of the frame
//! (§6.3): the IP header's ID, TTL, TOS and checksum differ between two replicas for reasons
//! that never reach an application, and the addresses and protocol are in the flow key already.
//! D-IP-1 extends that to every other IP protocol. As in QEMU the two frames must first have
//! the same length (decisions.md: "equal frame lengths, then everything from the L4 header
//! on"), so IP options on one side only are a difference. The `strict` setting restores QEMU's
//! whole-frame comparison for those who want the IP header checked too.

use colo_core::fifo::Matcher;
use colo_core::{Difference, Packet, Verdict};

/// Which bytes of two packets must be equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// From the transport header (the IP payload) to the end of the frame, padding included.
    FromL4,
    /// The whole Ethernet frame: everything after the vnet header.
    WholeFrame,
}

impl Scope {
    /// The scope a comparator's `strict` setting asks for.
    pub const fn from_strict(strict: bool) -> Self {
        if strict {
            Scope::WholeFrame
        } else {
            Scope::FromL4
        }
    }
}

/// A [`Matcher`] that finds two packets the same when the bytes of its [`Scope`] are equal.
#[derive(Clone, Copy, Debug)]
pub struct DatagramMatcher {
    scope: Scope,
}

impl DatagramMatcher {
    /// A matcher comparing the bytes of `scope`.
    pub const fn new(scope: Scope) -> Self {
        DatagramMatcher { scope }
    }
}

impl Matcher for DatagramMatcher {
    fn compare(&self, primary: &Packet, secondary: &Packet) -> Verdict {
        let (base, p, s) = match self.scope {
            Scope::FromL4 => (
                primary.meta.l4 as usize,
                primary.from_l4(),
                secondary.from_l4(),
            ),
            Scope::WholeFrame => (
                primary.len() - primary.ethernet().len(),
                primary.ethernet(),
                secondary.ethernet(),
            ),
        };
        match Difference::between(primary, base, p, s) {
            None if primary.len() == secondary.len() => Verdict::Same,
            // Equal from the transport header on, but IP options or a vnet header make the
            // frames differ in length.
            None => Verdict::Differ(Difference {
                offset: primary.len().min(secondary.len()),
                field: "frame length",
            }),
            Some(diff) => Verdict::Differ(diff),
        }
    }
}
