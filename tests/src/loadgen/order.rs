//! Whether the output kept each flow's order: a released primary frame must carry a later tag
//! than every frame of its flow released before it (tags grow in sending order).
//!
//! A flow is what the comparator keys on for the generator's frames: the IPv4 protocol,
//! addresses and ports. Only first copies are checked; duplicates are counted elsewhere.

use std::collections::HashMap;

/// IP protocol, source and destination address, source and destination port.
type FlowId = [u8; 13];

/// The latest tag released per flow, and how many releases came after a later one.
#[derive(Debug, Default)]
pub struct Order {
    last: HashMap<FlowId, u64>,
    reordered: u64,
}

impl Order {
    /// Records the release of the frame tagged `tag` (Ethernet bytes `eth`); false when it came
    /// out after a frame of its flow that was sent later.
    pub fn release(&mut self, eth: &[u8], tag: u64) -> bool {
        let Some(id) = flow_id(eth) else {
            return true;
        };
        match self.last.get_mut(&id) {
            Some(last) if *last > tag => {
                self.reordered += 1;
                false
            }
            Some(last) => {
                *last = tag;
                true
            }
            None => {
                self.last.insert(id, tag);
                true
            }
        }
    }

    /// Releases that came out of their flow's order.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

fn flow_id(eth: &[u8]) -> Option<FlowId> {
    let mut id = [0u8; 13];
    id[0] = *eth.get(23)?;
    id[1..].copy_from_slice(eth.get(26..38)?);
    Some(id)
}

#[cfg(test)]
mod test {
    use super::*;

    fn frame(port: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[23] = 17;
        f[35] = port;
        f
    }

    #[test]
    fn a_later_tag_first_is_a_reordering_per_flow_only() {
        let mut o = Order::default();
        assert!(o.release(&frame(1), 5));
        assert!(o.release(&frame(2), 3), "another flow has its own order");
        assert!(o.release(&frame(1), 7));
        assert!(!o.release(&frame(1), 6));
        assert!(o.release(&frame(1), 8));
        assert_eq!(o.reordered(), 1);
        assert!(o.release(&[0u8; 10], 1), "not a frame of the generator");
    }
}
