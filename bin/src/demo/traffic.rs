//! What the demo's two synthetic guests send: the outgoing traffic of one VM as its primary
//! and its secondary replica would produce it.
//!
//! The replicas run the same software, so they send the same data, but not the same frames:
//! each has its own IP ID counter and TCP timestamp clock, segments TCP streams its own way and
//! schedules its flows in its own order. None of that is a difference colo-compare must react
//! to. A few phases end with a real divergence (a DNS TTL, an HTTP `Date` header, a reply only
//! the primary sends) so that the demo shows checkpoints being requested and served.

use bytes::Bytes;
use etherparse::{IpHeaders, IpNumber, Ipv4Header, PacketBuilder, TcpOptionElement};
use thiserror::Error;

/// A frame could not be built (a bug in the script, not an input problem).
#[derive(Debug, Error)]
#[error("building a demo frame: {0}")]
pub struct BuildError(String);

fn build_error(e: impl std::fmt::Display) -> BuildError {
    BuildError(e.to_string())
}

type Built<T> = Result<T, BuildError>;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GATEWAY_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0xdc, 0xba];
const GUEST_IP: [u8; 4] = [10, 0, 0, 2];
const GATEWAY_IP: [u8; 4] = [10, 0, 0, 1];

/// A divergence planted at the end of a phase.
pub struct Divergence {
    /// What differs, for the report.
    pub description: &'static str,
    /// The primary's frame that diverges; the phase ends once it has been released.
    pub primary_frame: Bytes,
}

/// A stretch of traffic both guests send before meeting again.
pub struct Phase {
    /// What happens in it.
    pub name: &'static str,
    /// The primary guest's frames (Ethernet, no vnet header), in sending order.
    pub primary: Vec<Bytes>,
    /// The secondary guest's frames, in sending order.
    pub secondary: Vec<Bytes>,
    /// The divergence the phase ends with, if any; its frames are the last ones sent.
    pub divergence: Option<Divergence>,
}

/// The whole demo traffic.
pub struct Script {
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

impl Script {
    /// Frames the primary guest sends in total.
    pub fn primary_frames(&self) -> usize {
        self.phases.iter().map(|p| p.primary.len()).sum()
    }

    /// Frames the secondary guest sends in total.
    pub fn secondary_frames(&self) -> usize {
        self.phases.iter().map(|p| p.secondary.len()).sum()
    }

    /// The planted divergences, in order.
    pub fn divergences(&self) -> impl Iterator<Item = &Divergence> {
        self.phases.iter().filter_map(|p| p.divergence.as_ref())
    }
}

/// One replica's own habits.
struct Replica {
    ip_id: u16,
    clock: u32,
    /// TCP segment sizes, used in turn (a replica with other offload settings cuts streams
    /// differently).
    segments: &'static [usize],
}

impl Replica {
    fn ipv4(&mut self, dst: [u8; 4], protocol: IpNumber) -> Built<IpHeaders> {
        let mut h = Ipv4Header::new(0, 64, protocol, GUEST_IP, dst).map_err(build_error)?;
        h.identification = self.ip_id;
        h.dont_fragment = true;
        self.ip_id = self.ip_id.wrapping_add(1);
        Ok(IpHeaders::Ipv4(h, Default::default()))
    }

    fn tsval(&mut self) -> u32 {
        self.clock = self.clock.wrapping_add(3);
        self.clock
    }
}

fn finish(builder_write: impl FnOnce(&mut Vec<u8>) -> Built<()>) -> Built<Bytes> {
    let mut out = Vec::with_capacity(1600);
    builder_write(&mut out)?;
    Ok(Bytes::from(out))
}

/// A TCP connection the guest serves; both replicas agree on its sequence numbers.
struct Conn {
    client: [u8; 4],
    client_port: u16,
    port: u16,
    isn: u32,
    /// Stream bytes sent so far.
    sent: u32,
    /// The client's next sequence number, which the guest acknowledges.
    ack: u32,
    tsecr: u32,
}

impl Conn {
    fn new(client: [u8; 4], client_port: u16, port: u16, isn: u32, client_isn: u32) -> Self {
        Conn {
            client,
            client_port,
            port,
            isn,
            sent: 0,
            ack: client_isn.wrapping_add(1),
            tsecr: client_isn / 7,
        }
    }

    fn segment(&self, r: &mut Replica, offset: u32, payload: &[u8], flags: Flags) -> Built<Bytes> {
        let ip = r.ipv4(self.client, IpNumber::TCP)?;
        let seq = match flags {
            Flags::Syn => self.isn,
            _ => self.isn.wrapping_add(1).wrapping_add(offset),
        };
        let ts = TcpOptionElement::Timestamp(r.tsval(), self.tsecr);
        let tcp = PacketBuilder::ethernet2(GUEST_MAC, GATEWAY_MAC)
            .ip(ip)
            .tcp(self.port, self.client_port, seq, 502)
            .ack(self.ack);
        let tcp = match flags {
            Flags::Syn => tcp.syn().options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                ts,
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ]),
            Flags::Fin => tcp
                .fin()
                .options(&[TcpOptionElement::Noop, TcpOptionElement::Noop, ts]),
            Flags::Data => tcp
                .psh()
                .options(&[TcpOptionElement::Noop, TcpOptionElement::Noop, ts]),
        }
        .map_err(build_error)?;
        finish(|out| tcp.write(out, payload).map_err(build_error))
    }

    /// The SYN-ACK answering the client's SYN.
    fn accept(&self, r: &mut Replica) -> Built<Vec<Bytes>> {
        Ok(vec![self.segment(r, 0, &[], Flags::Syn)?])
    }

    /// `data` cut into the replica's segment sizes.
    fn write(&self, r: &mut Replica, data: &[u8]) -> Built<Vec<Bytes>> {
        let mut frames = Vec::new();
        let mut at = 0;
        let mut turn = 0;
        while at < data.len() {
            let size = r.segments[turn % r.segments.len()].min(data.len() - at);
            let offset = self.sent.wrapping_add(at as u32);
            frames.push(self.segment(r, offset, &data[at..at + size], Flags::Data)?);
            at += size;
            turn += 1;
        }
        Ok(frames)
    }

    /// One application message per segment, as interactive protocols send them.
    fn messages(&self, r: &mut Replica, sizes: &[usize], seed: u8) -> Built<Vec<Bytes>> {
        let mut frames = Vec::new();
        let mut offset = self.sent;
        for (i, &size) in sizes.iter().enumerate() {
            let payload = pattern(seed.wrapping_add(i as u8), size);
            frames.push(self.segment(r, offset, &payload, Flags::Data)?);
            offset = offset.wrapping_add(size as u32);
        }
        Ok(frames)
    }

    fn close(&self, r: &mut Replica) -> Built<Vec<Bytes>> {
        Ok(vec![self.segment(r, self.sent, &[], Flags::Fin)?])
    }
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    Data,
    Fin,
}

/// Deterministic bytes that look like encrypted or compressed data.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

fn http_headers(date: &str, length: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: {date}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\
         Connection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

fn dns_answer(id: u16, name: &str, addr: [u8; 4], ttl: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&[0, 4]);
    m.extend_from_slice(&addr);
    m
}

fn udp(r: &mut Replica, dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Built<Bytes> {
    let ip = r.ipv4(dst, IpNumber::UDP)?;
    let b = PacketBuilder::ethernet2(GUEST_MAC, GATEWAY_MAC)
        .ip(ip)
        .udp(sport, dport);
    finish(|out| b.write(out, payload).map_err(build_error))
}

fn echo_reply(r: &mut Replica, dst: [u8; 4], id: u16, seq: u16) -> Built<Bytes> {
    let ip = r.ipv4(dst, IpNumber::ICMP)?;
    let b = PacketBuilder::ethernet2(GUEST_MAC, GATEWAY_MAC)
        .ip(ip)
        .icmpv4_echo_reply(id, seq);
    // The payload is the requester's, echoed: the same from both replicas.
    let payload = pattern(seq as u8, 56);
    finish(|out| b.write(out, &payload).map_err(build_error))
}

/// The guest answering the gateway's ARP request (not IP: released uncompared).
fn arp_reply() -> Bytes {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&GUEST_IP);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&GATEWAY_IP);
    f.resize(60, 0);
    Bytes::from(f)
}

/// The flows of one phase; each replica sends them interleaved in its own order.
#[derive(Default)]
struct Flows {
    flows: Vec<(Vec<Bytes>, Vec<Bytes>)>,
}

impl Flows {
    fn add(&mut self, primary: Vec<Bytes>, secondary: Vec<Bytes>) {
        self.flows.push((primary, secondary));
    }

    /// The primary takes the flows round-robin in order, the secondary in reverse order, so
    /// the two interleave their flows differently while keeping each flow's own order.
    fn into_phase(self, name: &'static str, divergence: Option<Planted>) -> Phase {
        let (primary, secondary): (Vec<_>, Vec<_>) = self.flows.into_iter().unzip();
        let mut p = round_robin(primary);
        let mut s = round_robin(secondary.into_iter().rev().collect());
        let divergence = divergence.map(|d| {
            p.push(d.primary.clone());
            s.extend(d.secondary);
            Divergence {
                description: d.description,
                primary_frame: d.primary,
            }
        });
        Phase {
            name,
            primary: p,
            secondary: s,
            divergence,
        }
    }
}

struct Planted {
    description: &'static str,
    primary: Bytes,
    secondary: Option<Bytes>,
}

fn round_robin(flows: Vec<Vec<Bytes>>) -> Vec<Bytes> {
    let mut iters: Vec<_> = flows.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Both replicas run the same step.
fn both<T>(
    p: &mut Replica,
    s: &mut Replica,
    mut step: impl FnMut(&mut Replica) -> Built<T>,
) -> Built<(T, T)> {
    Ok((step(p)?, step(s)?))
}

/// The demo traffic: five phases, three of them ending with a divergence.
pub fn script() -> Built<Script> {
    let mut p = Replica {
        ip_id: 0x3a10,
        clock: 0x0010_0000,
        segments: &[1448],
    };
    let mut s = Replica {
        ip_id: 0xc102,
        clock: 0x7f20_0000,
        segments: &[1000, 1448, 512, 1200, 700],
    };
    let mut web = Conn::new([10, 0, 0, 10], 51514, 80, 0x1f00_0000, 0x6a00_0000);
    let mut tls = Conn::new([10, 0, 0, 11], 40022, 443, 0x8c00_1000, 0x0300_2000);
    let mut ssh = Conn::new([10, 0, 0, 12], 60122, 22, 0x4400_0400, 0x2200_0800);
    let resolver = [10, 0, 0, 13];
    let pinger = [10, 0, 0, 10];
    let mut dns_id = 0x1a2bu16;
    let mut dns = |p: &mut Replica, s: &mut Replica, flows: &mut Flows, ttl: (u32, u32)| {
        dns_id = dns_id.wrapping_add(0x0101);
        let port = 40000 + (dns_id % 20000);
        let answer = |ttl| dns_answer(dns_id, "updates.example.com", [93, 184, 216, 34], ttl);
        let fp = udp(p, resolver, 53, port, &answer(ttl.0))?;
        let fs = udp(s, resolver, 53, port, &answer(ttl.1))?;
        flows.add(vec![fp.clone()], vec![fs.clone()]);
        Ok::<_, BuildError>((fp, fs))
    };
    let pings = |p: &mut Replica, s: &mut Replica, seqs: std::ops::Range<u16>| {
        both(p, s, |r| {
            seqs.clone()
                .map(|q| echo_reply(r, pinger, 0x0b7e, q))
                .collect()
        })
    };
    let mut phases = Vec::new();

    // 1: three TCP sessions open and start sending; DNS answers, pings and an ARP reply.
    let mut f = Flows::default();
    let (a, b) = both(&mut p, &mut s, |r| {
        let mut v = web.accept(r)?;
        let mut body = http_headers("Tue, 04 Mar 2025 10:00:00 GMT", 8192);
        body.extend(pattern(1, 8192));
        v.extend(web.write(r, &body)?);
        Ok(v)
    })?;
    web.sent += (http_headers("Tue, 04 Mar 2025 10:00:00 GMT", 8192).len() + 8192) as u32;
    f.add(a, b);
    let (a, b) = both(&mut p, &mut s, |r| {
        let mut v = tls.accept(r)?;
        v.extend(tls.write(r, &pattern(2, 60_000))?);
        Ok(v)
    })?;
    tls.sent += 60_000;
    f.add(a, b);
    let sizes = [36, 52, 100, 44, 180, 68];
    let (a, b) = both(&mut p, &mut s, |r| {
        let mut v = ssh.accept(r)?;
        v.extend(ssh.messages(r, &sizes, 3)?);
        Ok(v)
    })?;
    ssh.sent += sizes.iter().sum::<usize>() as u32;
    f.add(a, b);
    for _ in 0..4 {
        dns(&mut p, &mut s, &mut f, (300, 300))?;
    }
    let (a, b) = pings(&mut p, &mut s, 1..5)?;
    f.add(a, b);
    f.add(vec![arp_reply()], vec![arp_reply()]);
    phases.push(f.into_phase("three TCP sessions open, DNS, ping, ARP", None));

    // 2: more of the same, ending with a DNS answer whose TTL differs by one second.
    let mut f = Flows::default();
    let (a, b) = both(&mut p, &mut s, |r| tls.write(r, &pattern(4, 40_000)))?;
    tls.sent += 40_000;
    f.add(a, b);
    let (a, b) = pings(&mut p, &mut s, 5..8)?;
    f.add(a, b);
    for _ in 0..2 {
        dns(&mut p, &mut s, &mut f, (300, 300))?;
    }
    let mut last = Flows::default();
    let (fp, fs) = dns(&mut p, &mut s, &mut last, (300, 299))?;
    phases.push(f.into_phase(
        "bulk TLS and DNS",
        Some(Planted {
            description: "a DNS answer's TTL (300 s on the primary, 299 s on the secondary)",
            primary: fp,
            secondary: Some(fs),
        }),
    ));

    // 3: a second HTTP response whose Date header differs by one second.
    let mut f = Flows::default();
    let sizes = [48, 96, 60, 212];
    let (a, b) = both(&mut p, &mut s, |r| ssh.messages(r, &sizes, 5))?;
    ssh.sent += sizes.iter().sum::<usize>() as u32;
    f.add(a, b);
    let (a, b) = both(&mut p, &mut s, |r| tls.write(r, &pattern(6, 40_000)))?;
    tls.sent += 40_000;
    f.add(a, b);
    web.ack = web.ack.wrapping_add(78);
    let fp = web.segment(
        &mut p,
        web.sent,
        &http_headers("Tue, 04 Mar 2025 10:00:02 GMT", 12_000),
        Flags::Data,
    )?;
    let fs = web.segment(
        &mut s,
        web.sent,
        &http_headers("Tue, 04 Mar 2025 10:00:03 GMT", 12_000),
        Flags::Data,
    )?;
    web.sent += http_headers("Tue, 04 Mar 2025 10:00:02 GMT", 12_000).len() as u32;
    phases.push(f.into_phase(
        "interactive SSH and bulk TLS",
        Some(Planted {
            description: "an HTTP response's Date header (10:00:02 on the primary, 10:00:03 on the secondary)",
            primary: fp,
            secondary: Some(fs),
        }),
    ));

    // 4: the HTTP body, DNS and pings, then an echo reply only the primary sends.
    let mut f = Flows::default();
    let (a, b) = both(&mut p, &mut s, |r| web.write(r, &pattern(7, 12_000)))?;
    web.sent += 12_000;
    f.add(a, b);
    for _ in 0..2 {
        dns(&mut p, &mut s, &mut f, (300, 300))?;
    }
    let (a, b) = pings(&mut p, &mut s, 8..11)?;
    f.add(a, b);
    let lonely = echo_reply(&mut p, [10, 0, 0, 14], 0x51c3, 1)?;
    phases.push(f.into_phase(
        "HTTP body, DNS, ping",
        Some(Planted {
            description: "an echo reply only the primary sends (the secondary never saw the request)",
            primary: lonely,
            secondary: None,
        }),
    ));

    // 5: the sessions finish and close.
    let mut f = Flows::default();
    let (mut a, mut b) = both(&mut p, &mut s, |r| tls.write(r, &pattern(8, 30_000)))?;
    tls.sent += 30_000;
    let (ca, cb) = both(&mut p, &mut s, |r| tls.close(r))?;
    a.extend(ca);
    b.extend(cb);
    f.add(a, b);
    let sizes = [36, 36, 52];
    let (mut a, mut b) = both(&mut p, &mut s, |r| ssh.messages(r, &sizes, 9))?;
    ssh.sent += sizes.iter().sum::<usize>() as u32;
    let (ca, cb) = both(&mut p, &mut s, |r| ssh.close(r))?;
    a.extend(ca);
    b.extend(cb);
    f.add(a, b);
    let (a, b) = both(&mut p, &mut s, |r| web.close(r))?;
    f.add(a, b);
    let (a, b) = pings(&mut p, &mut s, 11..13)?;
    f.add(a, b);
    for _ in 0..2 {
        dns(&mut p, &mut s, &mut f, (300, 300))?;
    }
    phases.push(f.into_phase("sessions finish and close", None));

    Ok(Script { phases })
}

#[cfg(test)]
mod test {
    use super::*;
    use colo_core::{Classified, Frame, Uncompared};

    #[test]
    fn every_frame_classifies_and_only_the_plants_differ_in_content() {
        let script = script().expect("the script builds");
        assert!(script.primary_frames() > 150, "{}", script.primary_frames());
        assert!(script.secondary_frames() > script.primary_frames());
        assert_eq!(script.divergences().count(), 3);
        let classify = |f: &Bytes| colo_core::packet::classify(&Frame::new(f.clone()));
        let mut arp = 0;
        for phase in &script.phases {
            for f in phase.primary.iter().chain(&phase.secondary) {
                match classify(f) {
                    Classified::Comparable(_) => {}
                    Classified::Uncompared(Uncompared::NotIp { ethertype: 0x0806 }) => arp += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(arp, 2);
        // The same TCP bytes, cut differently: the first phase's TLS stream on both sides.
        let tls = |frames: &[Bytes]| -> (usize, Vec<u8>) {
            let mut count = 0;
            let mut bytes = Vec::new();
            for f in frames {
                if let Classified::Comparable(m) = classify(f) {
                    if m.key.ports() == Some((443, 40022)) {
                        count += 1;
                        bytes.extend_from_slice(&f[m.tcp.map_or(0, |t| t.payload as usize)..]);
                    }
                }
            }
            (count, bytes)
        };
        let first = &script.phases[0];
        let (p_count, p_bytes) = tls(&first.primary);
        let (s_count, s_bytes) = tls(&first.secondary);
        assert_eq!(p_bytes.len(), 60_000);
        assert_eq!(p_bytes, s_bytes);
        assert_ne!(p_count, s_count);
    }
}
