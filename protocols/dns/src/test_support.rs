//! DNS messages, frames and a tracker harness for this crate's unit tests.
//!
//! The harness drives the real engine: a [`Tracker`] over a registry of this crate's comparator
//! and colo-protocols' built-in ones, so port 53 is won against the real `udp` claim. The
//! counters identity (D-LOSS-5) is checked after every input. Messages are assembled from
//! hand-written records so that tests control compression exactly.

use std::sync::Arc;

use colo_core::registry::ComparatorsConfig;
use colo_core::{
    CheckpointReason, DropReason, Event, Frame, Mismatch, Registration, Registry, ReleaseReason,
    Side, Timestamp, Tracker, TrackerConfig,
};
use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder};

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

/// A UDP datagram from the guest's DNS server (10.0.0.1:53) to a client (10.0.0.2:40000).
pub fn udp_frame(payload: &[u8], net: Net) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, 64, IpNumber(0), [10, 0, 0, 1], [10, 0, 0, 2]).expect("ip");
    ip.identification = net.ip_id;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(net.mac, [0x52, 0x54, 0, 0, 0, 2])
        .ip(IpHeaders::Ipv4(ip, Default::default()))
        .udp(53, 40000)
        .write(&mut v, payload)
        .expect("udp frame");
    v
}

/// `host` as an uncompressed wire-format name.
pub fn name(host: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in host.split('.') {
        v.push(u8::try_from(label.len()).expect("short label"));
        v.extend(label.as_bytes());
    }
    v.push(0);
    v
}

/// The data of an A record for 192.0.2.`host`.
pub fn a(host: u8) -> [u8; 4] {
    [192, 0, 2, host]
}

/// A class IN record: `owner` (wire form, possibly a pointer), type, TTL and data.
pub fn rr(owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
    let mut v = owner.to_vec();
    v.extend(rtype.to_be_bytes());
    v.extend(1u16.to_be_bytes());
    v.extend(ttl.to_be_bytes());
    v.extend(u16::try_from(data.len()).expect("short data").to_be_bytes());
    v.extend(data);
    v
}

/// A DNS message with one question; records are given encoded, in order.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Message ID.
    pub id: u16,
    /// Flags, rcode included.
    pub flags: u16,
    /// The question's name, wire form.
    pub question: Vec<u8>,
    /// The question's type.
    pub qtype: u16,
    /// Answer section.
    pub answers: Vec<Vec<u8>>,
    /// Authority section.
    pub authority: Vec<Vec<u8>>,
    /// Additional section.
    pub additional: Vec<Vec<u8>>,
}

impl Msg {
    /// A recursive NOERROR response for `host`, type A, with no records.
    pub fn response(host: &str) -> Msg {
        Msg {
            id: 0x1234,
            flags: 0x8180,
            question: name(host),
            qtype: 1,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    /// The message in wire form.
    pub fn encode(&self) -> Vec<u8> {
        let count = |n: usize| u16::try_from(n).expect("few records").to_be_bytes();
        let mut v = Vec::new();
        v.extend(self.id.to_be_bytes());
        v.extend(self.flags.to_be_bytes());
        v.extend(count(1));
        v.extend(count(self.answers.len()));
        v.extend(count(self.authority.len()));
        v.extend(count(self.additional.len()));
        v.extend(&self.question);
        v.extend(self.qtype.to_be_bytes());
        v.extend(1u16.to_be_bytes());
        for r in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            v.extend(r);
        }
        v
    }

    /// The message in a frame from `net`.
    pub fn frame_on(&self, net: Net) -> Vec<u8> {
        udp_frame(&self.encode(), net)
    }
}

/// What one input made the engine do.
#[derive(Debug, Default)]
pub struct Step {
    /// The events, in order.
    pub events: Vec<Event>,
}

impl Step {
    /// Released frames with their reasons.
    pub fn released(&self) -> Vec<(Vec<u8>, ReleaseReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Release { frame, reason, .. } => Some((frame.data.to_vec(), *reason)),
                _ => None,
            })
            .collect()
    }

    /// Dropped packets' sides and reasons.
    pub fn dropped(&self) -> Vec<(Side, DropReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Drop { side, reason, .. } => Some((*side, *reason)),
                _ => None,
            })
            .collect()
    }

    /// Number of checkpoint requests.
    pub fn checkpoints(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Checkpoint(_)))
            .count()
    }

    /// The mismatches reported.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Checkpoint(CheckpointReason::Mismatch(m)) => Some((**m).clone()),
                _ => None,
            })
            .collect()
    }
}

/// A tracker with `dns` and the built-in comparators, one millisecond per input.
pub struct Harness {
    tracker: Tracker,
    now: Timestamp,
}

impl Harness {
    /// Default settings.
    pub fn new() -> Self {
        Self::with(&ComparatorsConfig::default())
    }

    /// The `dns` section set to `section` (RON text).
    pub fn with_section(section: &str) -> Self {
        let value: ron::Value = ron::from_str(section).expect("ron section");
        Self::with(&ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("dns".to_string(), value)].into(),
        })
    }

    /// One comparator disabled.
    pub fn with_disabled(name: &str) -> Self {
        Self::with(&ComparatorsConfig {
            disabled: vec![name.to_string()],
            ..Default::default()
        })
    }

    fn with(config: &ComparatorsConfig) -> Self {
        let all: Vec<&Registration> = std::iter::once(&crate::DNS)
            .chain(colo_protocols::BUILT_IN)
            .collect();
        let registry = Registry::build_from(&all, config).expect("registry");
        Harness {
            tracker: Tracker::new(
                TrackerConfig::default(),
                Arc::new(registry),
                Timestamp::ZERO,
            ),
            now: Timestamp::ZERO,
        }
    }

    fn collect(&mut self) -> Step {
        let mut step = Step::default();
        while let Some(e) = self.tracker.poll_event() {
            step.events.push(e);
        }
        if let Err(e) = self.tracker.counters().check() {
            panic!("counters identity broken: {e}");
        }
        step
    }

    fn tick(&mut self) -> Timestamp {
        self.now = Timestamp::from_micros(self.now.as_micros() + 1000);
        self.now
    }

    /// A frame from the primary.
    pub fn primary(&mut self, frame: Vec<u8>) -> Step {
        let now = self.tick();
        self.tracker
            .handle_frame(Side::Primary, Frame::new(frame), now);
        self.collect()
    }

    /// A frame from the secondary.
    pub fn secondary(&mut self, frame: Vec<u8>) -> Step {
        let now = self.tick();
        self.tracker
            .handle_frame(Side::Secondary, Frame::new(frame), now);
        self.collect()
    }

    /// A checkpoint: everything held is flushed.
    pub fn checkpoint(&mut self) -> Step {
        let now = self.tick();
        self.tracker.handle_checkpoint(now);
        self.collect()
    }

    /// Primary packets the comparator `name` released as matching.
    pub fn matched(&self, name: &str) -> u64 {
        self.tracker
            .counters()
            .comparators
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.matched)
    }

    /// Packets held per side.
    pub fn held(&self) -> [u64; 2] {
        self.tracker.counters().held
    }
}
