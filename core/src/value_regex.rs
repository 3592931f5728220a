//! A label matcher's regular expression, and the values it matches when an index can find
//! them without trying the expression on each value it holds.
//!
//! A regex matcher is tried against every value of its label: hundreds of thousands on a
//! high-cardinality label, at some 40 to 150 ns each, most of it reading the value from
//! memory. Three shapes need none of it, and dashboards send them most: a few exact values
//! (`api|web|db`, a Grafana variable with several values; `api`; `(?i)ok`), which an index
//! looks up; `.*` (Grafana's "All"), every value; `.+`, every value but "".
//!
//! The shapes are read from the pattern's syntax tree as `regex` parses it, so they mean what
//! the compiled regex means; a pattern with an assertion (`\b`, `^`) inside has no shape.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// An anchored regex over label values, and its [`Shape`] where it has one.
#[derive(Debug, Clone)]
pub struct ValueRegex {
    regex: Regex,
    shape: Option<Arc<Shape>>,
}

/// The values a pattern matches, where an index can tell them without the regex.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Exactly these values, sorted.
    OneOf(Vec<String>),
    /// Every value, "" too (`.*`).
    Any,
    /// Every value but "" (`.+`).
    NotEmpty,
}

impl ValueRegex {
    /// `pattern` compiled as [`crate::re2::anchored`] compiles it.
    pub fn new(pattern: &str) -> Result<ValueRegex, regex::Error> {
        let regex = crate::re2::anchored(pattern)?;
        Ok(ValueRegex { regex, shape: shape_of(pattern) })
    }

    pub fn is_match(&self, value: &str) -> bool {
        match self.shape.as_deref() {
            Some(Shape::OneOf(values)) => values.binary_search_by(|v| v.as_str().cmp(value)).is_ok(),
            Some(Shape::Any) => true,
            Some(Shape::NotEmpty) => !value.is_empty(),
            None => self.regex.is_match(value),
        }
    }

    pub fn shape(&self) -> Option<&Shape> {
        self.shape.as_deref()
    }
}

/// Most patterns whose shapes a thread keeps; past them, it forgets them all.
const MOST_SHAPES_KEPT: usize = 1024;

/// The longest pattern whose shape a thread keeps: a pattern of megabytes may compile small,
/// and a thousand of them would stay on the shard's thread.
const LONGEST_KEPT: usize = 1024;

thread_local! {
    /// The shapes of the patterns this thread read lately: one request may repeat a pattern a
    /// hundred thousand times, and reading a shape takes microseconds.
    static SHAPES: RefCell<HashMap<String, Option<Arc<Shape>>>> = RefCell::new(HashMap::new());
}

fn shape_of(pattern: &str) -> Option<Arc<Shape>> {
    SHAPES.with_borrow_mut(|shapes| {
        if let Some(known) = shapes.get(pattern) {
            return known.clone();
        }
        let hir = regex_syntax::Parser::new().parse(&crate::re2::anchored_text(pattern)).ok();
        let found = hir.as_ref().and_then(between_anchors).and_then(|hir| shape(&hir)).map(Arc::new);
        if pattern.len() <= LONGEST_KEPT {
            if shapes.len() >= MOST_SHAPES_KEPT {
                shapes.clear();
            }
            shapes.insert(pattern.to_string(), found.clone());
        }
        found
    })
}

/// What the compiled text holds between its anchors: `^(?s:…)$`. A pattern can close the
/// group and open another (`a)|(b`: `^(?s:a)|(b)$`, as upstream compiles it too), which
/// anchors each side on its own: no shape then.
fn between_anchors(hir: &Hir) -> Option<Hir> {
    let HirKind::Concat(items) = hir.kind() else { return None };
    match items.as_slice() {
        [first, inner @ .., last]
            if *first.kind() == HirKind::Look(Look::Start) && *last.kind() == HirKind::Look(Look::End) =>
        {
            Some(Hir::concat(inner.to_vec()))
        }
        _ => None,
    }
}

fn shape(hir: &Hir) -> Option<Shape> {
    if !hir.properties().look_set().is_empty() {
        return None;
    }
    one_of(hir).or_else(|| match ungrouped(hir).kind() {
        HirKind::Repetition(rep) if rep.max.is_none() && any_char(&rep.sub) => match rep.min {
            0 => Some(Shape::Any),
            1 => Some(Shape::NotEmpty),
            _ => None,
        },
        _ => None,
    })
}

/// The values `hir` matches when they are a few, all known (the extractor's limits bound
/// them): its literals are then each a whole match, and together every match.
fn one_of(hir: &Hir) -> Option<Shape> {
    let seq = Extractor::new().extract(hir);
    if !seq.is_exact() {
        return None;
    }
    let mut values = seq
        .literals()?
        .iter()
        .map(|literal| String::from_utf8(literal.as_bytes().to_vec()).ok())
        .collect::<Option<Vec<_>>>()?;
    values.sort_unstable();
    values.dedup();
    Some(Shape::OneOf(values))
}

/// `hir` without the groups around it.
fn ungrouped(mut hir: &Hir) -> &Hir {
    while let HirKind::Capture(capture) = hir.kind() {
        hir = &capture.sub;
    }
    hir
}

/// Whether `hir` is `.` under `(?s)`: any one character.
fn any_char(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            matches!(class.ranges(), [range] if range.start() == '\0' && range.end() == char::MAX)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shape answers as the regex does, on values chosen to tell them apart.
    #[test]
    fn shapes_agree_with_the_regex() {
        let values = [
            "",
            "a",
            "ab",
            "ax",
            "xb",
            "api",
            "API",
            "web",
            "db",
            "apiapi",
            "ok",
            "Ok",
            "oK",
            "OK",
            "o\u{212a}",
            "o\nk",
            "\n",
            "x",
            "xx",
            "xxx",
            "héllo",
        ];
        let patterns = [
            ("api|web|db", "one of"),
            ("api", "one of"),
            ("(?i)ok", "one of"),
            ("", "one of"),
            ("|api", "one of"),
            ("a(b|)", "one of"),
            ("(api)", "one of"),
            (".*", "any"),
            ("(.*)", "any"),
            (".*?", "any"),
            (".+", "not empty"),
            ("a+", "none"),
            (".+api", "none"),
            (".*api", "none"),
            ("\\bapi", "none"),
            ("a.b", "none"),
            ("[a-z]+", "none"),
            ("(?-s:.*)", "none"),
            ("x{0,3}|api", "none"),
            (".{2,}", "none"),
            ("a)|(b", "none"),
            ("a)(b", "one of"),
        ];
        for (pattern, expected) in patterns {
            let matcher = ValueRegex::new(pattern).unwrap();
            let found = match matcher.shape() {
                Some(Shape::OneOf(_)) => "one of",
                Some(Shape::Any) => "any",
                Some(Shape::NotEmpty) => "not empty",
                None => "none",
            };
            assert_eq!(found, expected, "{pattern}");
            for value in values {
                assert_eq!(matcher.is_match(value), matcher.regex.is_match(value), "{pattern:?} on {value:?}");
            }
        }
    }

    #[test]
    fn one_of_lists_every_match_sorted() {
        let values = |p| match ValueRegex::new(p).unwrap().shape() {
            Some(Shape::OneOf(values)) => Some(values.clone()),
            _ => None,
        };
        assert_eq!(values("web|api|web"), Some(vec!["api".to_string(), "web".to_string()]));
        // o or O, then k, K or the Kelvin sign, which folds to k.
        assert_eq!(values("(?i)ok").map(|v| v.len()), Some(6));
        // More values than the extractor enumerates: the regex decides.
        assert_eq!(values("[a-z][a-z][a-z]"), None);
    }
}
