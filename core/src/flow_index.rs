//! The tracker's flow index: flow key to slot number, holding nothing but slot numbers.
//!
//! Every frame looks its flow up. A map that stores the keys takes 56 bytes per flow, and with
//! many flows its random accesses miss the caches (and, in a VM, the TLB) on every frame. This
//! index stores 4 bytes per flow, so 100k flows fit in a core's L2 cache, and compares a
//! candidate's key in its flow slot, which the frame touches right after anyway.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::flow::FlowKey;

/// Slot numbers of the tracked flows, found by key.
#[derive(Default)]
pub(crate) struct FlowIndex {
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl FlowIndex {
    /// Flows indexed.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The slot of the flow `key`; `key_of` tells the key a slot holds.
    pub(crate) fn get<'a>(
        &self,
        key: &FlowKey,
        key_of: impl Fn(u32) -> Option<&'a FlowKey>,
    ) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&slot| key_of(slot) == Some(key))
            .copied()
    }

    /// Indexes `slot` under `key`, which must not be indexed yet; `key_of` tells the key of
    /// every indexed slot (for growing the table).
    pub(crate) fn insert<'a>(
        &mut self,
        key: &FlowKey,
        slot: u32,
        key_of: impl Fn(u32) -> Option<&'a FlowKey>,
    ) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        self.table
            .insert_unique(hash, slot, |&s| key_of(s).map_or(0, |k| hasher.hash_one(k)));
    }

    /// Forgets `slot`, indexed under `key`.
    pub(crate) fn remove(&mut self, key: &FlowKey, slot: u32) {
        let hash = self.hasher.hash_one(key);
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::flow::L4Id;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 17,
            l4: L4Id::Ports { src: port, dst: 53 },
            vlan: None,
            inner_vlan: None,
            fragment: false,
        }
    }

    #[test]
    fn finds_grows_and_forgets() {
        let mut slots: Vec<Option<FlowKey>> = Vec::new();
        let mut index = FlowIndex::default();
        for port in 0..5000u16 {
            slots.push(Some(key(port)));
            let slot = u32::from(port);
            index.insert(&key(port), slot, |s| slots.get(s as usize)?.as_ref());
        }
        assert_eq!(index.len(), 5000);
        let find = |index: &FlowIndex, slots: &[Option<FlowKey>], port: u16| {
            index.get(&key(port), |s| slots.get(s as usize)?.as_ref())
        };
        assert_eq!(find(&index, &slots, 4321), Some(4321));
        assert_eq!(find(&index, &slots, 6000), None);
        index.remove(&key(4321), 4321);
        slots[4321] = None;
        assert_eq!(find(&index, &slots, 4321), None);
        assert_eq!(find(&index, &slots, 4322), Some(4322));
        assert_eq!(index.len(), 4999);
        // A reused slot is found under its new key only.
        slots[4321] = Some(key(9999));
        index.insert(&key(9999), 4321, |s| slots.get(s as usize)?.as_ref());
        assert_eq!(find(&index, &slots, 9999), Some(4321));
        assert_eq!(find(&index, &slots, 4321), None);
    }
}
