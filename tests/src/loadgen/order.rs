//! Whether the output kept each flow's order: a released primary frame must carry a later tag
//! than every frame of its flow released before it (tags grow in sending order).
//!
//! A flow is what the comparator keys on for the generator's frames: the IPv4 protocol,
//! addresses and ports. Only first copies are checked; duplicates are counted elsewhere.

use std::collections::HashMap;

use crate::loadgen::workload::flow_number;

/// IP protocol, source and destination address, source and destination port.
type FlowId = [u8; 13];

/// The latest tag released per flow, and how many releases came after a later one.
#[derive(Debug, Default)]
pub struct Order {
    last: HashMap<FlowId, u64>,
    /// The generator's own frames, by flow number: latest tag + 1, 0 for none yet. A map
    /// lookup per frame made the generator the bottleneck with 100k flows.
    numbered: Vec<u64>,
    reordered: u64,
}

impl Order {
    /// Records the release of the frame tagged `tag` (Ethernet bytes `eth`); false when it came
    /// out after a frame of its flow that was sent later.
    pub fn release(&mut self, eth: &[u8], tag: u64) -> bool {
        if let Some(n) = flow_number(eth) {
            if self.numbered.len() <= n {
                self.numbered.resize(n + 1, 0);
            }
            let last = &mut self.numbered[n];
            if *last > tag {
                self.reordered += 1;
                return false;
            }
            *last = tag + 1;
            return true;
        }
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

    #[test]
    fn the_generators_frames_are_checked_per_flow_too() {
        use crate::loadgen::workload::{Proto, Workload, WorkloadSpec};
        let mut w = Workload::new(WorkloadSpec {
            proto: Proto::Mixed,
            size: 100,
            flows: 3,
            ..WorkloadSpec::default()
        })
        .expect("valid");
        let (mut p, mut s) = (Vec::new(), Vec::new());
        let frames: Vec<Vec<u8>> = (0..12)
            .map(|_| {
                p.clear();
                w.next_unit(&mut p, &mut s);
                p[4..].to_vec()
            })
            .collect();
        // Units alternate UDP and TCP over 3 flows each: tags 0 and 6 share a flow.
        let mut o = Order::default();
        assert!(o.release(&frames[6], 6));
        assert!(o.release(&frames[1], 1), "TCP flow 0 is another flow");
        assert!(o.release(&frames[2], 2), "UDP flow 1 is another flow");
        assert!(!o.release(&frames[0], 0));
        assert_eq!(o.reordered(), 1);
    }
}
