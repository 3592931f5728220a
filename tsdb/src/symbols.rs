//! String interning for label names and values.
//!
//! A head stores each distinct string once and refers to it by a `u32` id, so a million series
//! that share `job="node"` pay for that string once. Each string counts the series that use
//! it; when the head forgets the last of them the string is freed and its id may be handed out
//! again. Readers that hold symbol ids across pauses (a selection or a `status/tsdb` reading
//! in steps) look each up in the postings again before resolving it, so a freed id is skipped
//! and a reused one names a pair that exists.

use std::collections::HashMap;
use std::sync::Arc;

use pyrite_core::labels::{Label, Labels, Projection};

/// A per-shard symbol table.
#[derive(Debug, Default)]
pub struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    /// By id: the string and how many references the head holds to it; None when freed.
    strings: Vec<Option<(Arc<str>, u32)>>,
    free: Vec<u32>,
}

/// The strings of a [`Symbols`] by id as they were when taken ([`Symbols::table`]): what a
/// block being written on another thread reads its label strings from.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable(Vec<Option<Arc<str>>>);

impl SymbolTable {
    /// The string behind `id` ("" for an id that was free).
    pub fn resolve(&self, id: u32) -> &str {
        self.0.get(id as usize).and_then(Option::as_deref).unwrap_or("")
    }
}

impl Symbols {
    /// The id of `s`, interning it if new, with one more reference.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            if let Some((_, refs)) = &mut self.strings[id as usize] {
                *refs += 1;
            }
            return id;
        }
        let rc: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = Some((rc.clone(), 1));
                id
            }
            None => {
                self.strings.push(Some((rc.clone(), 1)));
                (self.strings.len() - 1) as u32
            }
        };
        self.ids.insert(rc, id);
        id
    }

    /// Drops one reference to `id`, freeing the string when it was the last.
    pub fn release(&mut self, id: u32) {
        let Some(slot) = self.strings.get_mut(id as usize) else { return };
        let Some((s, refs)) = slot else { return };
        *refs -= 1;
        if *refs == 0 {
            self.ids.remove(s);
            *slot = None;
            self.free.push(id);
        }
    }

    /// The id of `s` if it is interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// Number of strings interned.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every string by id, shared, for readers on other threads.
    pub fn table(&self) -> SymbolTable {
        SymbolTable(self.strings.iter().map(|s| s.as_ref().map(|(s, _)| s.clone())).collect())
    }

    /// The label set behind `(name, value)` id pairs stored in label order.
    pub fn labels(&self, pairs: &[(u32, u32)]) -> Labels {
        self.projected(pairs, &Projection::All)
    }

    /// The labels of `labels` behind `(name, value)` id pairs stored in label order: only
    /// those are built.
    pub fn projected(&self, pairs: &[(u32, u32)], labels: &Projection) -> Labels {
        Labels::from_sorted(
            pairs
                .iter()
                .map(|&(n, v)| (self.resolve(n), v))
                .filter(|(name, _)| labels.keeps(name))
                .map(|(name, v)| Label { name: name.to_string(), value: self.resolve(v).to_string() })
                .collect(),
        )
    }

    /// The string behind an id handed out by this table and not released since.
    pub fn resolve(&self, id: u32) -> &str {
        self.strings[id as usize].as_ref().map_or("", |(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent() {
        let mut s = Symbols::default();
        let a = s.intern("job");
        let b = s.intern("node");
        assert_eq!(s.intern("job"), a);
        assert_ne!(a, b);
        assert_eq!(s.resolve(b), "node");
        assert_eq!(s.lookup("nope"), None);
    }

    #[test]
    fn a_string_is_freed_with_its_last_reference_and_its_id_reused() {
        let mut s = Symbols::default();
        let a = s.intern("pod-1");
        s.intern("pod-1");
        s.release(a);
        assert_eq!(s.lookup("pod-1"), Some(a), "one reference is left");
        s.release(a);
        assert_eq!((s.lookup("pod-1"), s.len()), (None, 0));
        assert_eq!(s.intern("pod-2"), a, "the freed id is handed out again");
        assert_eq!(s.resolve(a), "pod-2");
    }
}
