//! NTP frames and a tracker harness for this crate's unit tests.
//!
//! The harness drives the real engine: a [`Tracker`] over a registry of this crate's comparator
//! and colo-protocols' built-in ones, so port 123 is won against the real `udp` claim. The
//! counters identity (D-LOSS-5) is checked after every input.

use std::sync::Arc;

use colo_core::registry::ComparatorsConfig;
use colo_core::{
    CheckpointReason, DropReason, Event, Frame, Mismatch, Registration, Registry, ReleaseReason,
    Side, Timestamp, Tracker, TrackerConfig,
};
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

/// A tracker with `ntp` and the built-in comparators, one millisecond per input.
pub struct Harness {
    tracker: Tracker,
    now: Timestamp,
}

impl Harness {
    /// Default settings.
    pub fn new() -> Self {
        Self::with(&ComparatorsConfig::default())
    }

    /// The `ntp` section set to `section` (RON text).
    pub fn with_section(section: &str) -> Self {
        let value: ron::Value = ron::from_str(section).expect("ron section");
        Self::with(&ComparatorsConfig {
            disabled: Vec::new(),
            settings: [("ntp".to_string(), value)].into(),
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
        let all: Vec<&Registration> = std::iter::once(&crate::NTP)
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
