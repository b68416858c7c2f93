//! colo-compare's built-in comparators.
//!
//! Four comparators cover every IP packet:
//! - [`tcp`] (`"tcp"`, IP protocol 6): the payload byte stream compared by sequence number,
//!   tolerating different segmentation, exactly as QEMU does (§6.2) with the bounds, padding and
//!   ACK fixes of D-TCP-1..3.
//! - [`udp`] (`"udp"`, protocol 17) and [`icmp`] (`"icmp"`, protocols 1 and 58): each packet
//!   compared whole from the transport header on, matched oldest first (§6.3, D-ORDER-1).
//! - [`ip`] (`"ip"`, the fallback): every other IP protocol and every IP fragment, compared from
//!   the IP payload on (D-IP-1, D-FRAG-1).
//!
//! UDP, ICMP and the fallback take a `strict: true` setting that compares the whole frame, IP
//! header included, as QEMU does for "other" protocols.
//!
//! The comparators register themselves with `inventory`, so linking this crate is all a program
//! needs: `use colo_protocols as _;` makes them appear in
//! [`colo_core::Registry::build`]. [`BUILT_IN`] names them explicitly for code (such as tests)
//! that builds a registry with [`colo_core::Registry::build_from`].
//!
//! ```
//! use colo_protocols as _;
//!
//! let linked: Vec<_> = colo_core::Registry::registrations()
//!     .iter()
//!     .map(|r| r.name)
//!     .collect();
//! assert_eq!(linked, ["icmp", "ip", "tcp", "udp"]);
//! ```

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod datagram;
pub mod icmp;
pub mod ip;
pub mod tcp;
#[cfg(test)]
mod test_support;
pub mod udp;

use colo_core::Registration;

/// Every comparator of this crate.
pub const BUILT_IN: [&Registration; 4] = [&tcp::TCP, &udp::UDP, &icmp::ICMP, &ip::IP];
