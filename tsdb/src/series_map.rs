//! How a head finds its series: by id ([`DenseById`]) and by label hash ([`ByHash`]), in as
//! little memory per series as the millions a shard holds allow.
//!
//! A hash map keeps its values in its slots, and after it grows up to half of them are empty:
//! with a series (about 150 bytes) in each slot, a head of a million series paid about as much
//! for empty slots as for its series. Here the values sit packed in one vector and the map from
//! id to position holds 8 bytes per slot. Likewise, nearly every label hash names one series,
//! so [`ByHash`] keeps one id per hash inline and the rare collisions apart, instead of a
//! vector (and an allocation) per hash.

use std::collections::hash_map::Entry;

use super::head::ById;

/// Values by sparse `u32` ids, stored densely; removing one moves the last into its place,
/// so iteration order is not insertion order.
#[derive(Debug)]
pub struct DenseById<T> {
    values: Vec<T>,
    /// The id of each value, by position.
    ids: Vec<u32>,
    positions: ById<u32, u32>,
}

impl<T> Default for DenseById<T> {
    fn default() -> Self {
        DenseById { values: Vec::new(), ids: Vec::new(), positions: ById::default() }
    }
}

impl<T> DenseById<T> {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.positions.contains_key(&id)
    }

    pub fn get(&self, id: u32) -> Option<&T> {
        self.positions.get(&id).map(|&at| &self.values[at as usize])
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.positions.get(&id).map(|&at| &mut self.values[at as usize])
    }

    /// Adds `value` as `id`, replacing the value `id` had.
    pub fn insert(&mut self, id: u32, value: T) {
        match self.positions.entry(id) {
            Entry::Occupied(at) => self.values[*at.get() as usize] = value,
            Entry::Vacant(slot) => {
                // Positions are u32: a shard holds fewer series than ids exist.
                slot.insert(self.values.len() as u32);
                self.values.push(value);
                self.ids.push(id);
            }
        }
    }

    pub fn remove(&mut self, id: u32) -> Option<T> {
        let at = self.positions.remove(&id)? as usize;
        let value = self.values.swap_remove(at);
        self.ids.swap_remove(at);
        if let Some(&moved) = self.ids.get(at) {
            self.positions.insert(moved, at as u32);
        }
        Some(value)
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.iter().copied()
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }

    /// The values in their order of storage, to visit a slice at a time.
    pub fn as_slice(&self) -> &[T] {
        &self.values
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.ids.iter().copied().zip(&self.values)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.ids.iter().copied().zip(&mut self.values)
    }

    /// Gives memory back once most of it is unused (after many series were removed).
    pub fn shrink(&mut self) {
        if self.values.capacity() > 2 * self.values.len() + 1024 {
            self.values.shrink_to_fit();
            self.ids.shrink_to_fit();
            self.positions.shrink_to_fit();
        }
    }
}

/// Series ids by the hash of their labels.
#[derive(Debug, Default)]
pub struct ByHash {
    first: ById<u64, u32>,
    /// The ids after the first of a hash that several series share.
    more: ById<u64, Vec<u32>>,
}

impl ByHash {
    /// The ids with this hash.
    pub fn get(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        self.first.get(&hash).copied().into_iter().chain(self.more.get(&hash).into_iter().flatten().copied())
    }

    pub fn insert(&mut self, hash: u64, id: u32) {
        match self.first.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(id);
            }
            Entry::Occupied(_) => self.more.entry(hash).or_default().push(id),
        }
    }

    pub fn remove(&mut self, hash: u64, id: u32) {
        let Entry::Occupied(mut first) = self.first.entry(hash) else { return };
        let Entry::Occupied(mut more) = self.more.entry(hash) else {
            if *first.get() == id {
                first.remove();
            }
            return;
        };
        if *first.get() == id {
            first.insert(more.get_mut().swap_remove(0));
        } else {
            more.get_mut().retain(|&other| other != id);
        }
        if more.get().is_empty() {
            more.remove();
        }
    }

    pub fn shrink(&mut self) {
        if self.first.capacity() > 2 * self.first.len() + 1024 {
            self.first.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_moves_the_last_value_and_keeps_every_id_right() {
        let mut m = DenseById::default();
        for id in [7, 3, 90, 12] {
            m.insert(id, id * 10);
        }
        assert_eq!(m.remove(3), Some(30));
        assert_eq!(m.remove(3), None);
        m.insert(90, 91);
        assert_eq!((m.len(), m.get(12), m.get(90), m.get(7), m.get(3)), (3, Some(&120), Some(&91), Some(&70), None));
        *m.get_mut(7).unwrap() += 1;
        let mut all: Vec<(u32, u32)> = m.iter().map(|(id, &v)| (id, v)).collect();
        all.sort();
        assert_eq!(all, vec![(7, 71), (12, 120), (90, 91)]);
        assert!(m.contains(12) && !m.contains(3));
    }

    #[test]
    fn ids_sharing_a_hash_are_all_found_and_removed_one_by_one() {
        let mut h = ByHash::default();
        h.insert(1, 10);
        h.insert(1, 11);
        h.insert(1, 12);
        h.insert(2, 20);
        let ids = |h: &ByHash, hash| h.get(hash).collect::<Vec<_>>();
        assert_eq!(ids(&h, 1), vec![10, 11, 12]);
        h.remove(1, 10);
        assert_eq!(ids(&h, 1), vec![11, 12]);
        h.remove(1, 11);
        h.remove(1, 99);
        assert_eq!(ids(&h, 1), vec![12]);
        h.remove(1, 12);
        assert_eq!((ids(&h, 1), ids(&h, 2)), (vec![], vec![20]));
        assert!(h.more.is_empty());
    }
}
