//! The example comparator plugin of `protocols/README.md`: syslog over UDP, timestamps ignored.
//!
//! A guest that logs to a remote syslog server stamps every message with its clock, and two
//! replicas rarely log in the same microsecond, so the byte-wise UDP rule checkpoints on every
//! log line. This comparator compares RFC 5424 messages (`<PRI>VERSION TIMESTAMP HOSTNAME ...`)
//! with their TIMESTAMP field left out; anything else on the port is compared byte for byte.
//! Copy this crate to start a plugin of your own.

// No panic reachable from input: unwrap and expect only in tests (the workspace warns).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::ops::Range;
use std::sync::Arc;

use colo_core::fifo::{FifoComparator, Matcher};
use colo_core::packet::proto;
use colo_core::registry::settings;
use colo_core::{Claim, Comparator, Difference, Packet, Registration, Verdict};
use serde::Deserialize;

/// The `syslog` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSettings {
    /// The UDP port the guest sends syslog messages to.
    pub port: u16,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings { port: 514 }
    }
}

/// Where the TIMESTAMP field of an RFC 5424 message lies: after the first space, up to the
/// second. `None` if the message does not have that shape.
fn timestamp(msg: &[u8]) -> Option<Range<usize>> {
    if msg.first() != Some(&b'<') {
        return None;
    }
    let start = msg.iter().position(|&b| b == b' ')? + 1;
    let len = msg.get(start..)?.iter().position(|&b| b == b' ')?;
    Some(start..start + len)
}

/// Compares two syslog datagrams, their timestamps left out.
pub struct SyslogMatcher;

impl Matcher for SyslogMatcher {
    fn compare(&self, primary: &Packet, secondary: &Packet) -> Verdict {
        let l4 = primary.meta.l4 as usize;
        let (p, s) = (primary.ip_payload(), secondary.ip_payload());
        let (pm, sm) = (p.get(8..).unwrap_or(&[]), s.get(8..).unwrap_or(&[]));
        let (Some(pt), Some(st)) = (timestamp(pm), timestamp(sm)) else {
            let diff = Difference::between(primary, l4, primary.from_l4(), secondary.from_l4());
            return diff.map_or(Verdict::Same, Verdict::Differ);
        };
        // The ports, then the message before and after the timestamp. The UDP length and
        // checksum are left out: a timestamp of another length changes both.
        let pieces = [
            (l4, p.get(..4), s.get(..4)),
            (l4 + 8, pm.get(..pt.start), sm.get(..st.start)),
            (l4 + 8 + pt.end, pm.get(pt.end..), sm.get(st.end..)),
        ];
        for (base, a, b) in pieces {
            let (a, b) = (a.unwrap_or(&[]), b.unwrap_or(&[]));
            if let Some(diff) = Difference::between(primary, base, a, b) {
                return Verdict::Differ(diff);
            }
        }
        Verdict::Same
    }
}

fn build(section: Option<&ron::Value>) -> Result<Arc<dyn Comparator>, String> {
    let s: SyslogSettings = settings(section)?;
    let claim = Claim::Port {
        protocol: proto::UDP,
        port: s.port,
    };
    Ok(Arc::new(FifoComparator::new(vec![claim], SyslogMatcher)))
}

/// The syslog comparator's registration.
pub const SYSLOG: Registration = Registration {
    name: "syslog",
    summary: "RFC 5424 syslog over UDP (port 514 by default), timestamps ignored",
    build,
};

inventory::submit!(SYSLOG);

// The guide's Rust examples are compiled and run as this crate's doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct Guide;

#[cfg(test)]
mod test {
    use std::sync::Arc;

    use colo_core::registry::ComparatorsConfig;
    use colo_core::{Event, Frame, Registry, Side, Timestamp, Tracker, TrackerConfig};
    use etherparse::PacketBuilder;

    use super::*;

    /// A syslog datagram from the guest (10.0.0.1:40000) to 10.0.0.2:`port`.
    fn syslog(port: u16, msg: &str) -> Vec<u8> {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(40000, port)
            .write(&mut frame, msg.as_bytes())
            .expect("frame");
        frame
    }

    /// Feeds `primary` then `secondary` to a tracker with this plugin and the built-in
    /// comparators, configured by `section`, and returns what the tracker decided.
    fn run(section: &str, primary: Vec<u8>, secondary: Vec<u8>) -> Vec<Event> {
        let config = ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("syslog".into(), ron::from_str(section).expect("ron"))].into(),
        };
        let all: Vec<&Registration> = std::iter::once(&SYSLOG)
            .chain(colo_protocols::BUILT_IN)
            .collect();
        let registry = Registry::build_from(&all, &config).expect("registry");
        let mut tracker = Tracker::new(
            TrackerConfig::default(),
            Arc::new(registry),
            Timestamp::ZERO,
        );
        let now = Timestamp::from_millis(1);
        tracker.handle_frame(Side::Primary, Frame::new(primary), now);
        tracker.handle_frame(Side::Secondary, Frame::new(secondary), now);
        std::iter::from_fn(|| tracker.poll_event()).collect()
    }

    /// The first event's kind and, for a checkpoint, the difference's field.
    fn verdict(events: &[Event]) -> (&'static str, &'static str) {
        match events.first() {
            Some(Event::Release { reason, .. }) => (reason.name(), ""),
            Some(Event::Checkpoint(colo_core::CheckpointReason::Mismatch(m))) => {
                ("mismatch", m.difference.field)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    const P: &str = "<34>1 2024-05-01T10:00:00.001Z guest app 42 - - disk full";

    #[test]
    fn different_timestamps_are_released() {
        let s = "<34>1 2024-05-01T10:00:00.0171Z guest app 42 - - disk full";
        let events = run("(port: 514)", syslog(514, P), syslog(514, s));
        assert_eq!(verdict(&events), ("matched", ""));
        // Under the built-in udp comparator the same pair is a checkpoint.
        let events = run("(port: 515)", syslog(514, P), syslog(514, s));
        assert_eq!(verdict(&events), ("mismatch", "udp length"));
    }

    #[test]
    fn a_different_message_is_a_mismatch() {
        let s = "<34>1 2024-05-01T10:00:00.002Z guest app 42 - - disk fine";
        let events = run("(port: 514)", syslog(514, P), syslog(514, s));
        assert_eq!(verdict(&events), ("mismatch", "udp payload"));
        let Some(Event::Checkpoint(colo_core::CheckpointReason::Mismatch(m))) = events.first()
        else {
            panic!("no mismatch");
        };
        assert_eq!(m.difference.offset, 14 + 20 + 8 + P.len() - 3);
    }

    #[test]
    fn other_messages_are_compared_byte_for_byte() {
        let bsd = "Jan  1 10:00:00 guest app: disk full";
        let events = run("(port: 514)", syslog(514, bsd), syslog(514, bsd));
        assert_eq!(verdict(&events), ("matched", ""));
        let later = "Jan  1 10:00:01 guest app: disk full";
        let events = run("(port: 514)", syslog(514, bsd), syslog(514, later));
        assert_eq!(verdict(&events), ("mismatch", "udp checksum"));
    }

    #[test]
    fn the_port_is_a_setting_and_unknown_settings_are_refused() {
        let s = "<34>1 2024-05-01T10:00:00.009Z guest app 42 - - disk full";
        let events = run("(port: 6514)", syslog(6514, P), syslog(6514, s));
        assert_eq!(verdict(&events), ("matched", ""));
        let config = ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("syslog".into(), ron::from_str("(prot: 1)").expect("ron"))].into(),
        };
        assert!(Registry::build_from(&[&SYSLOG], &config).is_err());
    }
}
