//! The tracker's flow index: flow key to slot number, one 8-byte word per flow.
//!
//! Every frame looks its flow up. A map that stores the keys takes 56 bytes per flow, and with
//! many flows its random accesses miss the caches (and, in a VM, the TLB) on every frame; even a
//! table of bare slot numbers with separate control bytes (hashbrown's layout) costs two
//! dependent misses per lookup. Here each word holds a slot number and a fingerprint of its
//! key's hash, in one array probed linearly, so a lookup usually costs one cache line; the key
//! itself is compared in the flow slot, which the frame touches right after anyway.

use std::hash::BuildHasher;

use crate::flow::FlowKey;

/// Set in every used word; an all-zero word is free.
const USED: u64 = 1 << 63;
/// The fingerprint's bits, above the slot number.
const FINGERPRINT: u64 = ((1 << 31) - 1) << 32;
/// The smallest table.
const MIN_WORDS: usize = 16;

/// Slot numbers of the tracked flows, found by key.
#[derive(Default)]
pub(crate) struct FlowIndex {
    /// A power-of-two number of words, at most three quarters used.
    words: Vec<u64>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

fn slot_of(word: u64) -> u32 {
    // The low 32 bits are the slot number.
    (word & u64::from(u32::MAX)) as u32
}

impl FlowIndex {
    /// Flows indexed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The hash of `key`, for [`FlowIndex::touch`], [`FlowIndex::get`] and [`FlowIndex::insert`].
    pub(crate) fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Where probing for `hash` starts, and the word's fingerprint part for it.
    fn place(&self, hash: u64) -> (usize, u64) {
        let mask = self.words.len().wrapping_sub(1);
        ((hash as usize) & mask, (hash >> 1) & FINGERPRINT)
    }

    /// The slot of the flow `key`, whose hash is `hash`; `key_of` tells the key a slot holds.
    pub(crate) fn get<'a>(
        &self,
        key: &FlowKey,
        hash: u64,
        key_of: impl Fn(u32) -> Option<&'a FlowKey>,
    ) -> Option<u32> {
        if self.words.is_empty() {
            return None;
        }
        let mask = self.words.len() - 1;
        let (mut at, fingerprint) = self.place(hash);
        loop {
            let word = self.words[at];
            if word == 0 {
                return None;
            }
            if word & FINGERPRINT == fingerprint && key_of(slot_of(word)) == Some(key) {
                return Some(slot_of(word));
            }
            at = (at + 1) & mask;
        }
    }

    /// Reads the word where probing for `hash` starts, so that looking it up soon after finds
    /// it in the cache: a prefetch, without `unsafe`. Touching several keys in a row lets
    /// their cache misses overlap.
    pub(crate) fn touch(&self, hash: u64) {
        if !self.words.is_empty() {
            let (at, _) = self.place(hash);
            std::hint::black_box(self.words[at]);
        }
    }

    /// Indexes `slot` under a key whose hash is `hash` and which is not indexed yet; `key_of`
    /// tells the key of every indexed slot (for growing the table).
    pub(crate) fn insert<'a>(
        &mut self,
        hash: u64,
        slot: u32,
        key_of: impl Fn(u32) -> Option<&'a FlowKey>,
    ) {
        if (self.len + 1) * 4 > self.words.len() * 3 {
            self.grow(&key_of);
        }
        self.put(hash, slot);
        self.len += 1;
    }

    /// Stores a word for `slot` in the first free place from `hash`'s.
    fn put(&mut self, hash: u64, slot: u32) {
        let mask = self.words.len() - 1;
        let (mut at, fingerprint) = self.place(hash);
        while self.words[at] != 0 {
            at = (at + 1) & mask;
        }
        self.words[at] = USED | fingerprint | u64::from(slot);
    }

    fn grow<'a>(&mut self, key_of: &impl Fn(u32) -> Option<&'a FlowKey>) {
        let size = (self.words.len() * 2).max(MIN_WORDS);
        let old = std::mem::replace(&mut self.words, vec![0; size]);
        for word in old.into_iter().filter(|&w| w != 0) {
            let slot = slot_of(word);
            let hash = key_of(slot).map_or(0, |k| self.hash(k));
            self.put(hash, slot);
        }
    }

    /// Forgets `slot`, indexed under `key`; `key_of` tells the key of every other indexed slot
    /// (the words after it may move up to keep probing sequences unbroken).
    pub(crate) fn remove<'a>(
        &mut self,
        key: &FlowKey,
        slot: u32,
        key_of: impl Fn(u32) -> Option<&'a FlowKey>,
    ) {
        if self.words.is_empty() {
            return;
        }
        let mask = self.words.len() - 1;
        let (mut hole, _) = self.place(self.hash(key));
        loop {
            let word = self.words[hole];
            if word == 0 {
                return;
            }
            if slot_of(word) == slot {
                break;
            }
            hole = (hole + 1) & mask;
        }
        // Backward-shift deletion: a later word whose home is not between the hole and it
        // moves into the hole, so that no probing sequence crosses a free word.
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let word = self.words[at];
            if word == 0 {
                break;
            }
            let home = key_of(slot_of(word)).map_or(at, |k| self.place(self.hash(k)).0);
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                self.words[hole] = word;
                hole = at;
            }
        }
        self.words[hole] = 0;
        self.len -= 1;
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

    fn find(index: &FlowIndex, slots: &[Option<FlowKey>], port: u16) -> Option<u32> {
        index.get(&key(port), index.hash(&key(port)), |s| {
            slots.get(s as usize)?.as_ref()
        })
    }

    #[test]
    fn finds_grows_and_forgets() {
        let mut slots: Vec<Option<FlowKey>> = Vec::new();
        let mut index = FlowIndex::default();
        assert_eq!(find(&index, &slots, 1), None);
        for port in 0..5000u16 {
            slots.push(Some(key(port)));
            index.insert(index.hash(&key(port)), u32::from(port), |s| {
                slots.get(s as usize)?.as_ref()
            });
        }
        assert_eq!(index.len(), 5000);
        assert_eq!(find(&index, &slots, 4321), Some(4321));
        assert_eq!(find(&index, &slots, 6000), None);
        index.remove(&key(4321), 4321, |s| slots.get(s as usize)?.as_ref());
        slots[4321] = None;
        assert_eq!(find(&index, &slots, 4321), None);
        assert_eq!(index.len(), 4999);
        // A reused slot is found under its new key only.
        slots[4321] = Some(key(9999));
        index.insert(index.hash(&key(9999)), 4321, |s| {
            slots.get(s as usize)?.as_ref()
        });
        assert_eq!(find(&index, &slots, 9999), Some(4321));
        assert_eq!(find(&index, &slots, 4321), None);
    }

    proptest::proptest! {
        /// Against a plain map, through any sequence of inserts and removals (a small table,
        /// so that probing sequences collide and removals shift words).
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((0u16..64, proptest::bool::ANY), 1..400)) {
            let mut slots: Vec<Option<FlowKey>> = vec![None; 64];
            let mut index = FlowIndex::default();
            let mut model = std::collections::HashMap::new();
            for (port, add) in ops {
                let slot = u32::from(port);
                match (add, model.contains_key(&port)) {
                    (true, false) => {
                        slots[port as usize] = Some(key(port));
                        let hash = index.hash(&key(port));
                        index.insert(hash, slot, |s| slots.get(s as usize)?.as_ref());
                        model.insert(port, slot);
                    }
                    (false, true) => {
                        index.remove(&key(port), slot, |s| slots.get(s as usize)?.as_ref());
                        slots[port as usize] = None;
                        model.remove(&port);
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(index.len(), model.len());
                for p in 0..64u16 {
                    proptest::prop_assert_eq!(find(&index, &slots, p), model.get(&p).copied());
                }
            }
        }
    }
}
