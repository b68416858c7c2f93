//! The traffic colo-loadgen plays: numbered primary frames and the secondary's copies of them.
//!
//! Every primary frame carries its tag, a sequence number counted from 0, in the first eight
//! bytes of its transport payload, so it can be recognised when it comes out of the comparator
//! in whatever order, and its held time measured. The secondary sends the same transport
//! payload behind a different IP header (another IP ID), cut into other TCP segments when
//! asked, and with its last byte changed for the fraction of pairs meant to mismatch.
//!
//! Frames are made by patching a template built once: building each one with a packet builder
//! would make the generator the bottleneck. The IPv4 header checksum is recomputed; the UDP
//! checksum is zero ("none", as IPv4 allows) and the TCP checksum is left at zero, since no
//! comparator reads them.

use std::str::FromStr;

use colo_core::frame::encode_parts;
use thiserror::Error;

use crate::frames::{self, Net};

/// Ethernet + IPv4 header bytes.
const L4: usize = 14 + 20;
/// Where a UDP payload (and its tag) starts.
const UDP_PAYLOAD: usize = L4 + 8;
/// Where a TCP payload (and its tag) starts: the templates carry no TCP options.
const TCP_PAYLOAD: usize = L4 + 20;
/// Bytes of the tag.
const TAG: usize = 8;
/// The largest frame the generator makes (a jumbo frame); merged TCP segments are twice that.
pub const MAX_SIZE: usize = 9014;
/// The most flows: the flow number is spread over three bytes of the source address.
pub const MAX_FLOWS: u32 = 1 << 24;
/// The TCP destination port of every connection.
const TCP_PORT: u16 = 5001;
/// The UDP destination port of every flow (discard).
const UDP_PORT: u16 = 9;

/// The transport protocols a workload uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP datagrams only.
    Udp,
    /// TCP segments only.
    Tcp,
    /// UDP and TCP alternately.
    Mixed,
}

/// How the secondary cuts a TCP stream compared with the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resegment {
    /// The same segments.
    None,
    /// Each primary segment becomes two secondary segments (split at a third of its payload).
    Split,
    /// Every two consecutive primary segments of a connection become one secondary segment.
    Merge,
}

/// A word on the command line that names no variant.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown {what} '{word}' (expected one of: {choices})")]
pub struct UnknownWord {
    what: &'static str,
    word: String,
    choices: &'static str,
}

impl FromStr for Proto {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "udp" => Ok(Proto::Udp),
            "tcp" => Ok(Proto::Tcp),
            "mixed" => Ok(Proto::Mixed),
            _ => Err(UnknownWord {
                what: "protocol mix",
                word: s.into(),
                choices: "udp, tcp, mixed",
            }),
        }
    }
}

impl FromStr for Resegment {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Resegment::None),
            "split" => Ok(Resegment::Split),
            "merge" => Ok(Resegment::Merge),
            _ => Err(UnknownWord {
                what: "resegmentation",
                word: s.into(),
                choices: "none, split, merge",
            }),
        }
    }
}

/// What traffic to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    /// Protocol mix.
    pub proto: Proto,
    /// Ethernet length of every primary frame (no FCS), in bytes.
    pub size: usize,
    /// Flows per protocol; frames go to them round-robin.
    pub flows: u32,
    /// How the secondary cuts TCP segments.
    pub resegment: Resegment,
    /// Fraction of pairs whose secondary differs (0.0 to 1.0), spread evenly.
    pub mismatch: f64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            proto: Proto::Udp,
            size: 64,
            flows: 1024,
            resegment: Resegment::None,
            mismatch: 0.0,
        }
    }
}

/// Why a workload cannot be generated.
#[derive(Debug, Error, PartialEq)]
pub enum WorkloadError {
    /// Frames too small for the headers and the tag, or too large.
    #[error("frame size {size} is out of range: {proto:?} frames need {min} to {MAX_SIZE} bytes")]
    Size {
        /// The asked size.
        size: usize,
        /// The protocol mix.
        proto: Proto,
        /// The smallest size that fits the headers and the tag.
        min: usize,
    },
    /// No flows, or more than the addresses can tell apart.
    #[error("flow count {0} is out of range: 1 to {MAX_FLOWS}")]
    Flows(u32),
    /// A mismatch rate outside 0..=1.
    #[error("mismatch rate {0} is out of range: 0.0 to 1.0")]
    Mismatch(f64),
}

/// What one step of the generator produced: a pair, or with merging two primaries and one
/// secondary segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Tag of the first primary frame; the others follow it.
    pub first_tag: u64,
    /// Primary frames written.
    pub primaries: u32,
    /// Ethernet bytes of those primary frames.
    pub primary_bytes: u64,
    /// Whether the secondary was made to differ.
    pub mismatched: bool,
}

/// The generator.
pub struct Workload {
    spec: WorkloadSpec,
    udp: Vec<u8>,
    tcp: Vec<u8>,
    /// Next sequence number of every TCP connection.
    seq: Vec<u32>,
    next_tag: u64,
    units: u64,
    /// Accumulated mismatch rate; a pair mismatches each time it passes 1.
    owed: f64,
    frame: Vec<u8>,
    stream: Vec<u8>,
}

impl Workload {
    /// A generator for `spec`.
    pub fn new(spec: WorkloadSpec) -> Result<Self, WorkloadError> {
        let min = match spec.proto {
            Proto::Udp => UDP_PAYLOAD + TAG,
            Proto::Tcp | Proto::Mixed => TCP_PAYLOAD + TAG,
        };
        if spec.size < min || spec.size > MAX_SIZE {
            return Err(WorkloadError::Size {
                size: spec.size,
                proto: spec.proto,
                min,
            });
        }
        if spec.flows == 0 || spec.flows > MAX_FLOWS {
            return Err(WorkloadError::Flows(spec.flows));
        }
        if !(0.0..=1.0).contains(&spec.mismatch) {
            return Err(WorkloadError::Mismatch(spec.mismatch));
        }
        let net = Net::default();
        let pattern = |len: usize| (0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();
        let udp = frames::udp(
            &net,
            &frames::Udp {
                src_port: 0,
                dst_port: UDP_PORT,
                payload: pattern(spec.size.saturating_sub(UDP_PAYLOAD)),
            },
        )
        .data
        .to_vec();
        let tcp = frames::tcp(
            &net,
            &frames::Tcp {
                src_port: 0,
                dst_port: TCP_PORT,
                seq: 0,
                ack: Some(1),
                window: 65535,
                payload: pattern(spec.size.saturating_sub(TCP_PAYLOAD)),
                ..frames::Tcp::default()
            },
        )
        .data
        .to_vec();
        let tcp_flows = match spec.proto {
            Proto::Udp => 0,
            Proto::Tcp | Proto::Mixed => spec.flows as usize,
        };
        Ok(Workload {
            udp,
            tcp,
            seq: vec![1; tcp_flows],
            spec,
            next_tag: 0,
            units: 0,
            owed: 0.0,
            frame: Vec::new(),
            stream: Vec::new(),
        })
    }

    /// The spec this generator follows.
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// Tag the next primary frame will carry (= primary frames generated so far).
    pub fn next_tag(&self) -> u64 {
        self.next_tag
    }

    /// Appends the next unit in the filter framing: its primary frames to `primary`, the
    /// secondary's copy to `secondary`.
    pub fn next_unit(&mut self, primary: &mut Vec<u8>, secondary: &mut Vec<u8>) -> Unit {
        let n = self.units;
        self.units += 1;
        let (is_tcp, index) = match self.spec.proto {
            Proto::Udp => (false, n),
            Proto::Tcp => (true, n),
            Proto::Mixed => (n % 2 == 1, n / 2),
        };
        let flow = (index % u64::from(self.spec.flows)) as u32;
        self.owed += self.spec.mismatch;
        let mismatched = self.owed >= 1.0;
        if mismatched {
            self.owed -= 1.0;
        }
        let first_tag = self.next_tag;
        let (primaries, primary_bytes) = if is_tcp {
            self.tcp_unit(flow, mismatched, primary, secondary)
        } else {
            self.udp_unit(flow, mismatched, primary, secondary)
        };
        Unit {
            first_tag,
            primaries,
            primary_bytes,
            mismatched,
        }
    }

    fn take_tag(&mut self) -> u64 {
        let t = self.next_tag;
        self.next_tag += 1;
        t
    }

    fn udp_unit(
        &mut self,
        flow: u32,
        mismatched: bool,
        primary: &mut Vec<u8>,
        secondary: &mut Vec<u8>,
    ) -> (u32, u64) {
        let tag = self.take_tag();
        let at = append_frame(primary, &self.udp);
        let f = &mut primary[at..];
        set_flow(f, flow);
        f[L4 + 6..L4 + 8].fill(0);
        f[UDP_PAYLOAD..UDP_PAYLOAD + TAG].copy_from_slice(&tag.to_be_bytes());
        set_ip_id(f, tag as u16);
        let len = f.len() as u64;
        append_copy(secondary, &primary[at..], !(tag as u16), mismatched);
        (1, len)
    }

    fn tcp_unit(
        &mut self,
        flow: u32,
        mismatched: bool,
        primary: &mut Vec<u8>,
        secondary: &mut Vec<u8>,
    ) -> (u32, u64) {
        let segments = if self.spec.resegment == Resegment::Merge {
            2
        } else {
            1
        };
        let payload = self.spec.size - TCP_PAYLOAD;
        let slot = flow as usize;
        let seq0 = self.seq.get(slot).copied().unwrap_or(1);
        if let Some(s) = self.seq.get_mut(slot) {
            *s = seq0.wrapping_add((segments * payload) as u32);
        }
        if self.spec.resegment == Resegment::None {
            // The secondary's segment is the primary's but for the IP identification (and the
            // last byte when mismatched): copied from it rather than built again.
            let tag = self.take_tag();
            let at = append_frame(primary, &self.tcp);
            let f = &mut primary[at..];
            set_flow(f, flow);
            set_tcp(f, seq0);
            f[TCP_PAYLOAD..TCP_PAYLOAD + TAG].copy_from_slice(&tag.to_be_bytes());
            set_ip_id(f, tag as u16);
            let len = f.len() as u64;
            append_copy(secondary, &primary[at..], !(seq0 as u16), mismatched);
            return (1, len);
        }
        self.stream.clear();
        let mut bytes = 0;
        for k in 0..segments {
            let tag = self.take_tag();
            let seq = seq0.wrapping_add((k * payload) as u32);
            let f = &mut self.frame;
            f.clear();
            f.extend_from_slice(&self.tcp);
            set_flow(f, flow);
            set_tcp(f, seq);
            f[TCP_PAYLOAD..TCP_PAYLOAD + TAG].copy_from_slice(&tag.to_be_bytes());
            set_ip_id(f, tag as u16);
            encode_parts(f, None, primary);
            bytes += f.len() as u64;
            self.stream.extend_from_slice(&f[TCP_PAYLOAD..]);
        }
        if mismatched {
            if let Some(last) = self.stream.last_mut() {
                *last ^= 0xff;
            }
        }
        let total = self.stream.len();
        let split = (payload / 3).max(1);
        let cuts: &[(usize, usize)] = match self.spec.resegment {
            Resegment::None | Resegment::Merge => &[(0, total)],
            Resegment::Split => &[(0, split), (split, total)],
        };
        for &(from, to) in cuts {
            let f = &mut self.frame;
            f.clear();
            f.extend_from_slice(&self.tcp[..TCP_PAYLOAD]);
            f.extend_from_slice(&self.stream[from..to]);
            set_flow(f, flow);
            set_tcp(f, seq0.wrapping_add(from as u32));
            set_ip_id(f, !(seq0.wrapping_add(from as u32) as u16));
            encode_parts(f, None, secondary);
        }
        (segments as u32, bytes)
    }
}

/// Appends `frame` to `out` in the filter framing; returns where the appended frame's bytes
/// (after the length field) start, to be filled in there rather than built elsewhere and
/// copied.
fn append_frame(out: &mut Vec<u8>, frame: &[u8]) -> usize {
    encode_parts(frame, None, out);
    out.len() - frame.len()
}

/// Appends the secondary's copy of `frame`: its own IP identification `ip_id`, and its last
/// byte changed when `mismatched`.
fn append_copy(out: &mut Vec<u8>, frame: &[u8], ip_id: u16, mismatched: bool) {
    let at = append_frame(out, frame);
    let g = &mut out[at..];
    set_ip_id(g, ip_id);
    if mismatched {
        if let Some(last) = g.last_mut() {
            *last ^= 0xff;
        }
    }
}

/// Writes flow `flow`'s source address and port, and the IP total length for the frame's size.
fn set_flow(f: &mut [u8], flow: u32) {
    let [_, a, b, c] = flow.to_be_bytes();
    f[26..30].copy_from_slice(&[10, a.wrapping_add(1), b, c]);
    let port = 10_000 + (flow % 50_000) as u16;
    f[L4..L4 + 2].copy_from_slice(&port.to_be_bytes());
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    if f[23] == 17 {
        f[L4 + 4..L4 + 6].copy_from_slice(&(total - 20).to_be_bytes());
    }
}

fn set_tcp(f: &mut [u8], seq: u32) {
    f[L4 + 4..L4 + 8].copy_from_slice(&seq.to_be_bytes());
    f[L4 + 16..L4 + 18].fill(0);
}

/// Sets the IPv4 identification and recomputes the header checksum.
fn set_ip_id(f: &mut [u8], id: u16) {
    f[18..20].copy_from_slice(&id.to_be_bytes());
    f[24..26].fill(0);
    let sum: u32 = f[14..L4]
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    f[24..26].copy_from_slice(&(!(folded as u16)).to_be_bytes());
}

/// A dense number for the flow of a frame this generator made: twice its flow number, plus one
/// for TCP (both protocols use the same flow numbers); `None` for anything else.
pub fn flow_number(eth: &[u8]) -> Option<usize> {
    if eth.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let tcp = match *eth.get(23)? {
        17 => 0,
        6 => 1,
        _ => return None,
    };
    // The source address is 10.(a + 1).b.c for flow (a, b, c): see `set_flow`.
    let [a, b, c]: [u8; 3] = eth.get(27..30)?.try_into().ok()?;
    let flow = usize::from(a.wrapping_sub(1)) << 16 | usize::from(b) << 8 | usize::from(c);
    Some(flow * 2 + tcp)
}

/// The tag of a primary frame this generator made (Ethernet bytes, no vnet header); `None` for
/// anything else.
pub fn tag_of(eth: &[u8]) -> Option<u64> {
    if eth.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let at = match *eth.get(23)? {
        17 => UDP_PAYLOAD,
        6 => TCP_PAYLOAD,
        _ => return None,
    };
    let bytes: [u8; TAG] = eth.get(at..at + TAG)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod test {
    use super::*;
    use colo_core::packet::{Classified, classify};
    use colo_core::{Decoded, Decoder, Frame};

    fn decode(bytes: &[u8]) -> Vec<Frame> {
        let mut d = Decoder::new(false);
        d.feed(bytes);
        let mut out = Vec::new();
        while let Some(Decoded::Frame(f)) = d.next_frame().expect("valid framing") {
            out.push(f);
        }
        assert_eq!(d.buffered(), 0, "no partial frame left");
        out
    }

    fn generate(spec: WorkloadSpec, units: usize) -> (Vec<Unit>, Vec<Frame>, Vec<Frame>) {
        let mut w = Workload::new(spec).expect("valid spec");
        let (mut p, mut s) = (Vec::new(), Vec::new());
        let units = (0..units).map(|_| w.next_unit(&mut p, &mut s)).collect();
        (units, decode(&p), decode(&s))
    }

    fn tcp_payload(f: &Frame) -> (u32, Vec<u8>) {
        let d = &f.data;
        let seq = u32::from_be_bytes(d[38..42].try_into().expect("4 bytes"));
        (seq, d[TCP_PAYLOAD..].to_vec())
    }

    #[test]
    fn udp_frames_have_the_size_tags_and_flows_asked_for() {
        let spec = WorkloadSpec {
            size: 64,
            flows: 3,
            ..WorkloadSpec::default()
        };
        let (units, p, s) = generate(spec, 7);
        assert_eq!(p.len(), 7);
        assert_eq!(s.len(), 7);
        for (i, (u, f)) in units.iter().zip(&p).enumerate() {
            assert_eq!(u.first_tag, i as u64);
            assert_eq!(f.len(), 64);
            assert_eq!(tag_of(&f.data), Some(i as u64));
            let Classified::Comparable(m) = classify(f) else {
                panic!("frame {i} is not comparable");
            };
            let same_flow = classify(&p[(i + 3) % 7]);
            if i + 3 < 7 {
                let Classified::Comparable(n) = same_flow else {
                    panic!("comparable");
                };
                assert_eq!(m.key, n.key, "round-robin over 3 flows");
            }
            // The secondary differs in the IP header only.
            assert_ne!(f.data[..L4], s[i].data[..L4]);
            assert_eq!(f.data[L4..], s[i].data[L4..]);
        }
        let keys: std::collections::HashSet<_> = p
            .iter()
            .map(|f| match classify(f) {
                Classified::Comparable(m) => m.key,
                Classified::Uncompared(u) => panic!("{u}"),
            })
            .collect();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn ip_checksums_are_valid() {
        let (_, p, s) = generate(WorkloadSpec::default(), 5);
        for f in p.iter().chain(&s) {
            let h = etherparse::Ipv4HeaderSlice::from_slice(&f.data[14..]).expect("ipv4");
            assert_eq!(
                h.header_checksum(),
                h.to_header().calc_header_checksum(),
                "checksum"
            );
        }
    }

    #[test]
    fn mismatch_rate_is_spread_exactly() {
        let spec = WorkloadSpec {
            mismatch: 0.25,
            ..WorkloadSpec::default()
        };
        let (units, p, s) = generate(spec, 100);
        assert_eq!(units.iter().filter(|u| u.mismatched).count(), 25);
        for (u, (pf, sf)) in units.iter().zip(p.iter().zip(&s)) {
            assert_eq!(pf.data[L4..] != sf.data[L4..], u.mismatched);
        }
    }

    fn stream_of(frames: &[Frame]) -> Vec<(u32, Vec<u8>)> {
        frames.iter().map(tcp_payload).collect()
    }

    /// Concatenates one connection's payloads in sequence order, checking they are contiguous.
    fn joined(mut segs: Vec<(u32, Vec<u8>)>) -> Vec<u8> {
        segs.sort_by_key(|(seq, _)| *seq);
        let mut out = Vec::new();
        let mut next = segs.first().map(|(s, _)| *s);
        for (seq, data) in segs {
            assert_eq!(Some(seq), next, "contiguous stream");
            next = Some(seq + data.len() as u32);
            out.extend(data);
        }
        out
    }

    #[test]
    fn tcp_resegmentation_carries_the_same_stream() {
        for (reseg, per_unit) in [
            (Resegment::None, (1, 1)),
            (Resegment::Split, (1, 2)),
            (Resegment::Merge, (2, 1)),
        ] {
            let spec = WorkloadSpec {
                proto: Proto::Tcp,
                size: 200,
                flows: 1,
                resegment: reseg,
                ..WorkloadSpec::default()
            };
            let (units, p, s) = generate(spec, 6);
            assert_eq!(p.len(), 6 * per_unit.0, "{reseg:?}");
            assert_eq!(s.len(), 6 * per_unit.1, "{reseg:?}");
            assert!(units.iter().all(|u| u.primaries == per_unit.0 as u32));
            assert!(p.iter().all(|f| f.len() == 200));
            assert_eq!(joined(stream_of(&p)), joined(stream_of(&s)), "{reseg:?}");
            for (i, f) in p.iter().enumerate() {
                assert_eq!(tag_of(&f.data), Some(i as u64));
                assert!(matches!(classify(f), Classified::Comparable(_)));
            }
            for f in &s {
                let Classified::Comparable(m) = classify(f) else {
                    panic!("secondary segment not comparable");
                };
                assert_eq!(m.end as usize, f.len(), "IP length covers the payload");
            }
        }
    }

    #[test]
    fn mixed_alternates_protocols_and_tags_stay_sequential() {
        let spec = WorkloadSpec {
            proto: Proto::Mixed,
            size: 100,
            flows: 2,
            ..WorkloadSpec::default()
        };
        let (units, p, _) = generate(spec, 6);
        let protos: Vec<u8> = p.iter().map(|f| f.data[23]).collect();
        assert_eq!(protos, vec![17, 6, 17, 6, 17, 6]);
        let firsts: Vec<u64> = units.iter().map(|u| u.first_tag).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn many_flows_get_distinct_keys() {
        let spec = WorkloadSpec {
            flows: 100_000,
            ..WorkloadSpec::default()
        };
        let mut w = Workload::new(spec).expect("valid");
        let (mut p, mut s) = (Vec::new(), Vec::new());
        let mut keys = std::collections::HashSet::new();
        for _ in 0..100_000 {
            p.clear();
            w.next_unit(&mut p, &mut s);
            s.clear();
            let f = decode(&p).pop().expect("one frame");
            let Classified::Comparable(m) = classify(&f) else {
                panic!("comparable");
            };
            keys.insert(m.key);
        }
        assert_eq!(keys.len(), 100_000);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let e = Workload::new(WorkloadSpec {
            proto: Proto::Tcp,
            size: 60,
            ..WorkloadSpec::default()
        })
        .err()
        .expect("too small");
        assert_eq!(
            e.to_string(),
            "frame size 60 is out of range: Tcp frames need 62 to 9014 bytes"
        );
        assert!(matches!(
            Workload::new(WorkloadSpec {
                flows: 0,
                ..WorkloadSpec::default()
            }),
            Err(WorkloadError::Flows(0))
        ));
        assert!(matches!(
            Workload::new(WorkloadSpec {
                mismatch: 1.5,
                ..WorkloadSpec::default()
            }),
            Err(WorkloadError::Mismatch(_))
        ));
        assert_eq!(
            "udpp".parse::<Proto>().map_err(|e| e.to_string()),
            Err("unknown protocol mix 'udpp' (expected one of: udp, tcp, mixed)".into())
        );
    }

    #[test]
    fn foreign_frames_have_no_tag() {
        assert_eq!(tag_of(&[0u8; 10]), None);
        let arp = frames::arp(&Net::default());
        assert_eq!(tag_of(&arp.data), None);
    }
}
