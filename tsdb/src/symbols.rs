//! String interning for label names and values.
//!
//! A head stores each distinct string once and refers to it by a `u32` id, so a million series
//! that share `job="node"` pay for that string once. Ids are dense and never reused.

use std::collections::HashMap;
use std::rc::Rc;

use pyrite_core::labels::{Label, Labels};

/// A per-shard symbol table. Not `Send`: it belongs to one shard thread.
#[derive(Debug, Default)]
pub struct Symbols {
    ids: HashMap<Rc<str>, u32>,
    strings: Vec<Rc<str>>,
}

impl Symbols {
    /// The id of `s`, interning it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let rc: Rc<str> = Rc::from(s);
        self.strings.push(rc.clone());
        self.ids.insert(rc, id);
        id
    }

    /// The id of `s` if it was ever interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// Number of strings interned.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Every string, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.strings.iter().map(|s| &**s)
    }

    /// The label set behind `(name, value)` id pairs stored in label order.
    pub fn labels(&self, pairs: &[(u32, u32)]) -> Labels {
        Labels::from_sorted(
            pairs
                .iter()
                .map(|&(n, v)| Label { name: self.resolve(n).to_string(), value: self.resolve(v).to_string() })
                .collect(),
        )
    }

    /// The string behind an id handed out by this table.
    pub fn resolve(&self, id: u32) -> &str {
        &self.strings[id as usize]
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
}
