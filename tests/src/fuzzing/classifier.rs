//! Fuzz target: the packet classifier on arbitrary frames.
//!
//! Every frame a peer sends is classified before anything else looks at it, and the offsets
//! the classifier hands out are what comparators index with (D-TCP-3). So: it must never
//! panic; every offset must lie within the frame and in order; every accessor of a comparable
//! packet must work; and a vnet header in front of the same Ethernet bytes must change nothing
//! but the offsets.

use colo_core::packet::{Classified, MAX_VNET_HDR, classify};
use colo_core::{Frame, L4Id, Packet, Timestamp};

use super::input::Input;

/// Runs the target on one input; panics when a property breaks.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let vnet_len = match input.u8() {
        b @ 0..=0xef => u32::from(b) % (MAX_VNET_HDR + 4),
        _ => input.u32(),
    };
    let frame = Frame::with_vnet(vnet_len, input.rest().to_vec());
    let verdict = classify(&frame);
    assert_eq!(
        classify(&frame),
        verdict,
        "classification is not deterministic"
    );
    match verdict {
        Classified::Comparable(meta) => {
            let (l3, l4, end) = (meta.l3 as usize, meta.l4 as usize, meta.end as usize);
            assert!(
                vnet_len as usize <= l3 && l3 <= l4 && l4 <= end && end <= frame.len(),
                "offsets out of order or outside the frame: vnet {vnet_len} l3 {l3} l4 {l4} \
                 end {end} len {}",
                frame.len()
            );
            if let Some(tcp) = meta.tcp {
                let p = tcp.payload as usize;
                assert!(
                    l4 <= p && p <= end,
                    "tcp payload at {p} outside {l4}..{end}"
                );
                assert!(!meta.key.fragment, "a fragment has no TCP header to trust");
            }
            if meta.key.fragment {
                assert_eq!(meta.key.l4, L4Id::None, "a fragment's ports are not read");
            }
            let packet = match Packet::parse(frame.clone(), Timestamp::ZERO) {
                Ok(p) => p,
                Err((_, why)) => panic!("classify said comparable, parse said {why}"),
            };
            exercise(&packet);
        }
        Classified::Uncompared(why) => {
            assert!(!why.to_string().is_empty() && !why.name().is_empty());
        }
    }
    if vnet_len != 0 && vnet_len <= MAX_VNET_HDR {
        if let Some(eth) = frame.data.get(vnet_len as usize..) {
            let plain = classify(&Frame::new(eth.to_vec()));
            assert_eq!(
                shifted(plain, vnet_len),
                verdict,
                "a vnet header changed the classification"
            );
        }
    }
}

/// Every accessor of a comparable packet, over the whole frame.
fn exercise(packet: &Packet) {
    let len = packet.len();
    assert!(packet.ip_payload().len() <= packet.from_l4().len());
    assert!(packet.tcp_payload().len() <= packet.ip_payload().len());
    assert!(packet.tcp_payload_offset() <= len);
    assert_eq!(
        packet.ethernet().len(),
        len - packet.frame.vnet_len as usize
    );
    for offset in 0..=len + 1 {
        assert!(!packet.field_at(offset).is_empty());
    }
    assert!(!packet.key().to_string().is_empty());
}

/// The classification of a frame without vnet header, as it reads behind a `vnet`-byte one.
fn shifted(verdict: Classified, vnet: u32) -> Classified {
    match verdict {
        Classified::Comparable(mut m) => {
            m.l3 += vnet;
            m.l4 += vnet;
            m.end += vnet;
            if let Some(t) = m.tcp.as_mut() {
                t.payload += vnet;
            }
            Classified::Comparable(m)
        }
        other => other,
    }
}
