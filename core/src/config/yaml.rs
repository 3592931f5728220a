//! The one way Pyrite reads YAML (configuration, rule files, file_sd, rule unit tests):
//! serde_norway (the maintained fork of the deprecated serde_yaml 0.9: same API, same libyaml
//! port, same messages) after a check of how deeply flow collections nest. Only the first
//! document of a file is read, as Go's `yaml.Unmarshal` reads it.
//!
//! libyaml's scanner takes time quadratic in the nesting of flow collections (`[[[[…`): 200 KB
//! of `[` cost a minute of CPU before serde_norway's own limit of 128 levels refused the
//! document. The check finds the same refusal in one pass: it counts `[` and `{` where a flow
//! collection may open (at the start of a line's content, or after `:`, `-`, `?`, `,`, `[` or
//! `{` and a space), skipping quoted strings and comments, and refuses a document nested deeper
//! than serde_norway would accept. A bracket inside a plain scalar (`regex: a[0-9]`) does not
//! stand where a collection opens and is not counted.
//!
//! Aliases are then weighed: serde_norway copies an anchored node for every alias of it, so
//! 1 MB that anchors a 1 MiB string and names it 8,000 times would take 8 GiB (the process
//! died on such a config at a reload). A first pass walks the document as serde_norway expands
//! it without keeping anything, and refuses one that expands to more than [`MAX_EXPANDED`]
//! bytes, as Go's YAML refuses "excessive aliasing". The walk reads values untyped, so in a
//! document it walks a core-schema tag that does not fit its value (`!!int abc`) is refused
//! where a string field alone would take it.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

/// Deepest nesting serde_norway accepts.
const MAX_DEPTH: usize = 128;

/// Most bytes a document may expand to through its aliases (its scalars, and [`NODE_BYTES`]
/// a node), beyond [`PER_BYTE`] for each byte of its own: a document without aliases never
/// reaches that (a node takes at least two bytes of text), and Go's YAML allows millions of
/// nodes through aliases.
const MAX_EXPANDED: usize = 256 << 20;
const PER_BYTE: usize = 64;

#[derive(Debug, Error)]
pub enum YamlError {
    #[error("line {line}: collections nested more than {MAX_DEPTH} levels deep")]
    TooDeep { line: usize },
    #[error("the document's aliases expand it past {0} bytes")]
    ExcessiveAliasing(usize),
    #[error("{0}")]
    Parse(#[from] serde_norway::Error),
}

/// Parses `text` as YAML into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check_depth(text)?;
    // Only a document with an anchor and an alias can expand.
    if text.contains('&') && text.contains('*') {
        check_expansion(text)?;
    }
    match first_document(text) {
        Some(first) => Ok(T::deserialize(first)?),
        None => Ok(serde_norway::from_str(text)?),
    }
}

/// The first document of `text`, which is all Go's `yaml.Unmarshal` reads (upstream's
/// configuration, rule files and file_sd): a file may go on with `---` and more. None if it
/// holds none.
fn first_document(text: &str) -> Option<serde_norway::Deserializer<'_>> {
    serde_norway::Deserializer::from_str(text).next()
}

/// Walks `text` as serde_norway expands its aliases, counting the bytes of its scalars and
/// [`NODE_BYTES`] for each node (what a parsed node takes), and refuses it past its budget.
fn check_expansion(text: &str) -> Result<(), YamlError> {
    let limit = MAX_EXPANDED.saturating_add(text.len().saturating_mul(PER_BYTE));
    let left = Cell::new(limit);
    let Some(first) = first_document(text) else { return Ok(()) };
    match Weigh(&left).deserialize(first) {
        Ok(()) => Ok(()),
        Err(_) if left.get() == 0 => Err(YamlError::ExcessiveAliasing(limit)),
        // The parser's own error, which the parse proper would give as well: the walk takes
        // any value, so that no value can stop it short of the aliases.
        Err(e) => Err(YamlError::Parse(e)),
    }
}

/// What a node weighs besides its text: about the size of a parsed `serde_norway::Value`.
const NODE_BYTES: usize = 80;

/// A deserializer's visitor that keeps nothing and takes each node's weight off a budget,
/// failing once it is spent.
#[derive(Clone, Copy)]
struct Weigh<'a>(&'a Cell<usize>);

impl Weigh<'_> {
    fn take<E: serde::de::Error>(self, bytes: usize) -> Result<(), E> {
        match self.0.get().checked_sub(bytes.saturating_add(NODE_BYTES)) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => {
                self.0.set(0);
                Err(E::custom("excessive aliasing"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Weigh<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Weigh<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.take(0)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.take(0)
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.take(0)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.take(v.len())
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.take(v.len())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.take(0)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.take(0)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.take(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.take(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): its value is weighed as any other.
        use serde::de::VariantAccess;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

fn check_depth(text: &str) -> Result<(), YamlError> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1;
    // The last byte that was not a space or tab, on this line (None at a line's start).
    let mut before: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                before = None;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if before.is_none() || matches!(b.get(i.wrapping_sub(1)), Some(b' ' | b'\t')) => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'"' | b'\'' if opens_node(before, b, i) => {
                i = skip_quoted(b, i, &mut line);
                before = Some(c);
            }
            b'[' | b'{' if opens_node(before, b, i) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(YamlError::TooDeep { line });
                }
                before = Some(c);
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                before = Some(c);
            }
            _ => before = Some(c),
        }
        i += 1;
    }
    Ok(())
}

/// Whether a node may start at `i`: at a line's content start, right after `[`, `{` or `,`,
/// or after `:`, `-` or `?` followed by a space.
fn opens_node(before: Option<u8>, b: &[u8], i: usize) -> bool {
    match before {
        None | Some(b'[' | b'{' | b',') => true,
        Some(b':' | b'-' | b'?') => matches!(b.get(i.wrapping_sub(1)), Some(b' ' | b'\t')),
        Some(_) => false,
    }
}

/// The index of the quote closing the string opened at `start` (`''` and `\"` escape).
fn skip_quoted(b: &[u8], start: usize, line: &mut usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\n' => *line += 1,
            b'\\' if quote == b'"' => i += 1,
            c if c == quote => {
                if quote == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Go's `yaml.Unmarshal`, which upstream's configuration and rule files go through.
    #[test]
    fn only_the_first_document_is_read() {
        let first: std::collections::BTreeMap<String, u32> = from_str("a: 1\n---\nb: [\n").unwrap();
        assert_eq!(first, [("a".to_string(), 1)].into());
        assert!(from_str::<std::collections::BTreeMap<String, u32>>("a: [\n---\nb: 2\n").is_err());
    }

    /// An anchored megabyte named by thousands of aliases is refused before it is copied for
    /// each (red team: 2.6 GB, then the process aborted); a few aliases are fine.
    #[test]
    fn an_alias_bomb_is_refused_and_plain_aliases_are_kept() {
        let big = "x".repeat(1 << 20);
        let bomb = format!("a: &big {big}\nb: [{}]\n", vec!["*big"; 8000].join(", "));
        let e = from_str::<serde_norway::Value>(&bomb).unwrap_err();
        assert!(matches!(e, YamlError::ExcessiveAliasing(_)), "{e}");
        let fine = "base: &b {x: 1, y: [a, b]}\nuse: [*b, *b, *b]\nstar: 'a*b'\n";
        let value: serde_norway::Value = from_str(fine).expect("parses");
        assert_eq!(value["use"][2]["y"][1].as_str(), Some("b"));
        assert!(from_str::<serde_norway::Value>("a: &a x\nb: *missing").is_err(), "the parse's own error");
        // A number past 64 bits (which a string field takes) does not stop the walk short.
        let hidden = format!("name: 99999999999999999999\n{bomb}");
        assert!(matches!(from_str::<serde_norway::Value>(&hidden), Err(YamlError::ExcessiveAliasing(_))));
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_once() {
        let deep = format!("scrape_configs: {}", "[".repeat(200_000));
        let started = std::time::Instant::now();
        let e = from_str::<serde_norway::Value>(&deep).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(e.to_string(), "line 1: collections nested more than 128 levels deep");
        let deep_maps = format!("a:\n{}", "  - {x: ".repeat(200));
        assert!(matches!(from_str::<serde_norway::Value>(&deep_maps), Err(YamlError::TooDeep { line: 2 })));
    }

    #[test]
    fn ordinary_yaml_with_brackets_in_scalars_passes() {
        let text = concat!(
            "scrape_configs:\n",
            "  - job_name: 'a[[[[b'   # comment [[[[[\n",
            "    static_configs: [{targets: ['x:1', \"y:2\"], labels: {a: \"[[[\"}}]\n",
            "    metric_relabel_configs:\n",
            "      - regex: (foo[0-9]+)\\[[[[[[\n",
            "        source_labels: [__name__]\n",
        );
        let nested = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        for yaml in [text.to_string(), "- [[[[[[b]]]]]]\n".repeat(200), nested, format!("x: {}", "a[".repeat(500))] {
            from_str::<serde_norway::Value>(&yaml).unwrap_or_else(|e| panic!("{e}: {}", &yaml[..60.min(yaml.len())]));
        }
    }
}
