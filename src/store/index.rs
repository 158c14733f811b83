//! The index of a store shard: key hash to slot number, open addressing.
//!
//! Each entry is one `u32`: 0 when empty, else `tag | (slot + 1)`. With
//! `2^bits` entries, the low `bits` bits hold the slot number plus one and
//! the high bits a tag cut from the hash, so most probes that meet another
//! key are refused without reading its slot. The table is at most 3/4 full,
//! so slot numbers always fit and a probe always ends at an empty entry.
//!
//! Probing is linear: a lookup reads one or two cache lines of the index and
//! then the one slot it finds. Removal shifts later entries back instead of
//! leaving tombstones.
//!
//! The caller owns the keys: operations that must place or move other
//! entries ask `hash_of(slot)` for a slot's hash.

/// Smallest table: 64 entries (one 256-byte block).
const MIN_BITS: u32 = 6;
/// Largest table: 2^31 entries, so the tag keeps at least one bit.
const MAX_BITS: u32 = 31;

#[derive(Debug, Default)]
pub struct SlotIndex {
    entries: Box<[u32]>,
    bits: u32,
    len: usize,
}

impl SlotIndex {
    /// Slots indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the table lives and the mask of its positions, for prefetching
    /// without the lock (null when nothing is indexed).
    pub fn layout(&self) -> (*const u32, usize) {
        if self.entries.is_empty() {
            (std::ptr::null(), 0)
        } else {
            (self.entries.as_ptr(), self.entries.len() - 1)
        }
    }

    /// The position a hash starts probing at, in a table with `mask`.
    pub fn home(hash: u64, mask: usize) -> usize {
        hash as usize & mask
    }

    fn low_mask(bits: u32) -> u32 {
        (1u32 << bits) - 1
    }

    /// The tag of `hash` in a table of `2^bits` entries: hash bits 38 and
    /// up (clear of the home position's bits and of the shard's, 32..38).
    fn tag(hash: u64, bits: u32) -> u32 {
        ((hash >> 38) as u32) << bits
    }

    /// The slot of the entry for `hash` that `eq` accepts.
    pub fn find(&self, hash: u64, eq: impl FnMut(usize) -> bool) -> Option<usize> {
        let pos = self.position(hash, eq)?;
        Some((self.entries[pos] & Self::low_mask(self.bits)) as usize - 1)
    }

    /// The first slot whose entry carries `hash`'s tag: most likely the
    /// key's, without reading any slot (for prefetching).
    pub fn candidate(&self, hash: u64) -> Option<usize> {
        let low = Self::low_mask(self.bits);
        let tag = Self::tag(hash, self.bits);
        let pos = self.position_by(hash, |e| e & !low == tag)?;
        Some((self.entries[pos] & low) as usize - 1)
    }

    /// The position of the entry for `hash` that `eq` accepts.
    fn position(&self, hash: u64, mut eq: impl FnMut(usize) -> bool) -> Option<usize> {
        let low = Self::low_mask(self.bits);
        let tag = Self::tag(hash, self.bits);
        self.position_by(hash, |e| e & !low == tag && eq((e & low) as usize - 1))
    }

    /// The first position on `hash`'s probe path whose entry `accept` takes.
    fn position_by(&self, hash: u64, mut accept: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut pos = Self::home(hash, mask);
        loop {
            let e = self.entries[pos];
            if e == 0 {
                return None;
            }
            if accept(e) {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Bytes of the table.
    pub fn bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<u32>()
    }

    /// Bytes of the table once one more slot is indexed.
    pub fn bytes_after_insert(&self) -> usize {
        let wanted = self.len + 1;
        if wanted * 4 > self.entries.len() * 3 {
            (1usize << Self::bits_for(wanted)) * std::mem::size_of::<u32>()
        } else {
            self.bytes()
        }
    }

    /// Indexes `slot` under `hash` (the caller knows it is not indexed yet).
    pub fn insert(&mut self, hash: u64, slot: usize, hash_of: impl Fn(usize) -> u64) {
        let wanted = self.len + 1;
        if wanted * 4 > self.entries.len() * 3 {
            self.rebuild(Self::bits_for(wanted), &hash_of);
        }
        Self::place(&mut self.entries, self.bits, hash, slot);
        self.len = wanted;
    }

    /// Points the entry for `hash` at slot `from` to slot `to` instead.
    pub fn repoint(&mut self, hash: u64, from: usize, to: usize) {
        if let Some(pos) = self.position(hash, |s| s == from) {
            self.entries[pos] = Self::tag(hash, self.bits) | (to as u32 + 1);
        }
    }

    /// Drops the entry for `hash` at `slot`; later entries of the same run
    /// move back so no probe stops early.
    pub fn remove(&mut self, hash: u64, slot: usize, hash_of: impl Fn(usize) -> u64) {
        let Some(mut hole) = self.position(hash, |s| s == slot) else {
            return;
        };
        let mask = self.entries.len() - 1;
        let low = Self::low_mask(self.bits);
        let mut next = (hole + 1) & mask;
        loop {
            let e = self.entries[next];
            if e == 0 {
                break;
            }
            let home = Self::home(hash_of((e & low) as usize - 1), mask);
            // The entry may fill the hole if the hole lies on its probe path
            // (between its home and where it sits).
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.entries[hole] = e;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.entries[hole] = 0;
        self.len -= 1;
    }

    /// Shrinks the table to fit its entries, if that halves it at least.
    pub fn shrink(&mut self, hash_of: impl Fn(usize) -> u64) {
        if self.len == 0 {
            *self = SlotIndex::default();
            return;
        }
        let bits = Self::bits_for(self.len);
        if bits < self.bits {
            self.rebuild(bits, &hash_of);
        }
    }

    /// The table size (in bits) that holds `n` entries at most 3/4 full.
    fn bits_for(n: usize) -> u32 {
        let mut bits = MIN_BITS;
        while bits < MAX_BITS && n.saturating_mul(4) > (3usize << bits) {
            bits += 1;
        }
        bits
    }

    fn rebuild(&mut self, bits: u32, hash_of: &impl Fn(usize) -> u64) {
        let mut entries = vec![0u32; 1 << bits].into_boxed_slice();
        let low = Self::low_mask(self.bits);
        for &e in self.entries.iter().filter(|&&e| e != 0) {
            let slot = (e & low) as usize - 1;
            Self::place(&mut entries, bits, hash_of(slot), slot);
        }
        self.entries = entries;
        self.bits = bits;
    }

    fn place(entries: &mut [u32], bits: u32, hash: u64, slot: usize) {
        let mask = entries.len() - 1;
        let mut pos = Self::home(hash, mask);
        while entries[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        entries[pos] = Self::tag(hash, bits) | (slot as u32 + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Slot numbers stand for keys; this "hash" is deliberately poor in the
    /// low bits so runs and wrap-around happen often.
    fn hash_of_key(key: u64) -> u64 {
        key.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0x3f | (key % 3)
    }

    /// A shard in miniature: dense slots of keys, swap-removed like the store's.
    #[derive(Default)]
    struct Model {
        index: SlotIndex,
        slots: Vec<u64>,
    }

    impl Model {
        fn find(&self, key: u64) -> Option<usize> {
            let slots = &self.slots;
            self.index.find(hash_of_key(key), |s| slots[s] == key)
        }

        fn insert(&mut self, key: u64) {
            self.slots.push(key);
            let slots = &self.slots;
            self.index
                .insert(hash_of_key(key), slots.len() - 1, |s| hash_of_key(slots[s]));
        }

        fn remove(&mut self, key: u64) {
            let i = self.find(key).unwrap();
            let slots = &self.slots;
            self.index
                .remove(hash_of_key(key), i, |s| hash_of_key(slots[s]));
            let last = self.slots.len() - 1;
            if i != last {
                self.index.repoint(hash_of_key(self.slots[last]), last, i);
            }
            self.slots.swap_remove(i);
        }
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut m = Model::default();
        assert_eq!(m.find(1), None);
        for key in 0..1000 {
            m.insert(key);
        }
        assert_eq!(m.index.len(), 1000);
        for key in 0..1000 {
            assert_eq!(m.find(key), Some(key as usize));
        }
        assert_eq!(m.find(1000), None);
        // Grown to hold 1000 at most 3/4 full: 2048 entries.
        assert_eq!(m.index.layout().1, 2047);
    }

    #[test]
    fn removal_keeps_every_other_key_reachable_and_shrink_gives_memory_back() {
        let mut m = Model::default();
        for key in 0..500 {
            m.insert(key);
        }
        for key in (0..500).filter(|k| k % 5 != 0) {
            m.remove(key);
        }
        for key in 0..500 {
            assert_eq!(m.find(key).is_some(), key % 5 == 0, "key {key}");
        }
        let before = m.index.layout().1;
        let slots = &m.slots;
        m.index.shrink(|s| hash_of_key(slots[s]));
        assert!(m.index.layout().1 < before);
        for key in (0..500).step_by(5) {
            assert_eq!(m.slots[m.find(key).unwrap()], key);
        }
    }

    #[test]
    fn an_empty_index_holds_no_table() {
        let mut m = Model::default();
        m.insert(7);
        m.remove(7);
        m.index.shrink(|_| 0);
        assert_eq!(m.index.layout(), (std::ptr::null(), 0));
        assert_eq!(m.find(7), None);
    }

    proptest! {
        /// Against a HashMap: any sequence of inserts and removes leaves the
        /// index finding exactly the keys present, at their slots.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u64..300), 1..600)) {
            let mut m = Model::default();
            let mut present: HashMap<u64, ()> = HashMap::new();
            for (insert, key) in ops {
                if insert && !present.contains_key(&key) {
                    m.insert(key);
                    present.insert(key, ());
                } else if !insert && present.remove(&key).is_some() {
                    m.remove(key);
                }
            }
            prop_assert_eq!(m.index.len(), present.len());
            for key in 0..300u64 {
                let found = m.find(key);
                prop_assert_eq!(found.is_some(), present.contains_key(&key));
                if let Some(i) = found {
                    prop_assert_eq!(m.slots[i], key);
                }
            }
        }
    }
}
