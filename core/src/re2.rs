//! Regular expressions as PromQL means them: RE2's syntax, read by Rust's `regex`, fully
//! anchored, and bounded in size.
//!
//! The two engines agree on nearly all syntax, but RE2's Perl classes (`\d`, `\s`, `\w` and
//! their negations) are ASCII, where `regex` makes them Unicode. So `\d` matched Arabic-Indic
//! digits that Prometheus does not, and `\w{150}` compiled to some 10 MB where RE2's program
//! takes kilobytes: a query of a hundred such matchers asked for a gigabyte. The classes are
//! rewritten to their ASCII sets before compiling.
//!
//! Within one request ([`for_request`], around the parsing of its queries or selectors)
//! the expressions compile within [`REQUEST_BUDGET`] together, each counted at what it was
//! allowed: [`SMALL`] for most, up to `regex`'s default of 10 MiB for the few larger ones (a
//! Grafana "All" of hundreds of pods). An expression repeated in a request compiles once.
//!
//! [`expand`] fills a replacement's `$` references in as Go's `Regexp.Expand` does, for
//! `label_replace` and relabeling, and [`replace_all`] is Go's `ReplaceAllString` with it
//! (`labelmap`, templates' `reReplaceAll`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexBuilder};

/// The most one expression may take compiled (`regex`'s default; about: it counts its
/// automata).
pub const SIZE_LIMIT: usize = 10 << 20;

/// What the expressions of one request may take together.
pub const REQUEST_BUDGET: usize = 64 << 20;

/// An expression is first compiled within this, and counted at it if it fits.
pub const SMALL: usize = 16 << 10;

/// The request whose expressions this thread compiles now, if any: what they may still take,
/// and those compiled so far by pattern.
struct Request {
    left: usize,
    compiled: HashMap<String, Regex>,
}

thread_local! {
    static REQUEST: RefCell<Option<Request>> = const { RefCell::new(None) };
}

/// Runs `parse`, whose regular expressions are one request's: they compile within
/// [`REQUEST_BUDGET`] together. Parsing is synchronous, so the budget is this thread's while
/// `parse` runs. Outside one — configuration, rule files — an expression is bounded alone.
pub fn for_request<T>(parse: impl FnOnce() -> T) -> T {
    let _budget = Budget(REQUEST.replace(Some(Request { left: REQUEST_BUDGET, compiled: HashMap::new() })));
    parse()
}

/// A request's budget in force; the one before it comes back when it ends.
struct Budget(Option<Request>);

impl Drop for Budget {
    fn drop(&mut self) {
        REQUEST.set(self.0.take());
    }
}

/// `pattern` anchored at both ends, `.` matching newlines too (PromQL's `^(?s:…)$`).
pub fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    let text = anchored_text(pattern);
    let build = |limit: usize| RegexBuilder::new(&text).size_limit(limit).build();
    REQUEST.with_borrow_mut(|request| {
        let Some(request) = request else { return build(SIZE_LIMIT) };
        if let Some(re) = request.compiled.get(pattern) {
            return Ok(re.clone());
        }
        let (re, counted) = match build(SMALL.min(request.left)) {
            Ok(re) => (re, SMALL),
            Err(regex::Error::CompiledTooBig(_)) if request.left > SMALL => {
                let limit = SIZE_LIMIT.min(request.left);
                (build(limit)?, limit)
            }
            Err(regex::Error::CompiledTooBig(_)) => {
                return Err(regex::Error::Syntax(format!(
                    "the request's regular expressions would take more than {REQUEST_BUDGET} bytes compiled"
                )))
            }
            Err(e) => return Err(e),
        };
        request.left -= counted.min(request.left);
        request.compiled.insert(pattern.to_string(), re.clone());
        Ok(re)
    })
}

/// `pattern` as Go's `regexp.Compile` reads it, unanchored (templates' `match` and
/// `reReplaceAll`), within [`SIZE_LIMIT`].
pub fn unanchored(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&ascii_perl_classes(pattern)).size_limit(SIZE_LIMIT).build()
}

/// The text [`anchored`] compiles for `pattern`: `^(?s:…)$`, with RE2's classes.
pub(crate) fn anchored_text(pattern: &str) -> String {
    format!("^(?s:{})$", ascii_perl_classes(pattern))
}

/// `pattern` with each Perl class written as RE2 reads it, an ASCII set.
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    // Bracketed classes open (nested ones count), so that a class inside one is written as
    // its ranges, or as a nested class when negated.
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(class @ ('d' | 's' | 'w' | 'D' | 'S' | 'W')) => {
                    let set = match class.to_ascii_lowercase() {
                        'd' => "0-9",
                        's' => "\\t\\n\\f\\r\\x20",
                        _ => "0-9A-Za-z_",
                    };
                    // Inside brackets a class is its ranges; negated, it nests as a class.
                    let (open, close) = match (class.is_ascii_uppercase(), depth > 0) {
                        (false, true) => ("", ""),
                        (false, false) => ("[", "]"),
                        (true, _) => ("[^", "]"),
                    };
                    out.extend([open, set, close]);
                    // RE2 reads a `-` after a class in brackets as itself (`[\w-.]`), where
                    // after the ranges written here it would make a range.
                    if depth > 0 && chars.as_str().starts_with('-') && !chars.as_str().starts_with("-]") {
                        chars.next();
                        out.push_str("\\-");
                    }
                }
                // RE2's word boundaries are ASCII too.
                Some(boundary @ ('b' | 'B')) if depth == 0 => {
                    out.extend(["(?-u:\\", if boundary == 'b' { "b)" } else { "B)" }]);
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' => {
                depth += 1;
                out.push('[');
                // A `]` (or `^]`) right after the opening bracket is a literal member.
                let rest = chars.as_str();
                let literal = if rest.starts_with("^]") { 2 } else { usize::from(rest.starts_with(']')) };
                for _ in 0..literal {
                    out.extend(chars.next());
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Appends `template` to `dst` with its references filled in from `caps`, as Go's
/// `Regexp.Expand`: `$$` is `$`; `$name` takes the longest run of letters, digits and `_`, and
/// `${name}` the run up to a `}`; a name of digits without a leading zero is a group's number,
/// any other a group's name; a group that did not match, or does not exist, adds nothing; and
/// a `$` that starts no such reference (`${}`, `${a-b}`, `$-`) is copied as it is. Rust's own
/// expansion differs there: it takes `${a-b}` as a name, `$01` as group 1, and drops `${}`.
pub fn expand(caps: &Captures<'_>, template: &str, dst: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        dst.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            dst.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = reference(rest) else {
            dst.push('$');
            continue;
        };
        rest = after;
        let number = (!name.starts_with('0') || name == "0").then(|| name.parse::<usize>().ok()).flatten();
        let group = match number {
            Some(i) => caps.get(i),
            None => caps.name(name),
        };
        dst.push_str(group.map_or("", |m| m.as_str()));
    }
    dst.push_str(rest);
}

/// `text` with every match of `re` replaced by `template` expanded as [`expand`] does, as Go's
/// `Regexp.ReplaceAllString`.
pub fn replace_all(re: &Regex, text: &str, template: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        out.push_str(&text[last..whole.start()]);
        expand(&caps, template, &mut out);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    out
}

/// The name of a reference at the start of `s` (just after its `$`), and what follows it.
fn reference(s: &str) -> Option<(&str, &str)> {
    let (braced, s) = match s.strip_prefix('{') {
        Some(inner) => (true, inner),
        None => (false, s),
    };
    // Go's `unicode.IsLetter` and `unicode.IsDigit`: letters and decimal digits of any
    // script, not `²` or combining marks.
    static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]*").expect("a valid expression"));
    let end = NAME.find(s).map_or(0, |m| m.end());
    let (name, after) = s.split_at(end);
    if name.is_empty() {
        return None;
    }
    match braced {
        true => after.strip_prefix('}').map(|after| (name, after)),
        false => Some((name, after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert_eq!(ascii_perl_classes(r"\w+"), r"[0-9A-Za-z_]+");
        assert_eq!(ascii_perl_classes(r"[\d.-]"), r"[0-9.-]");
        assert_eq!(ascii_perl_classes(r"[^\W]"), r"[^[^0-9A-Za-z_]]");
        assert_eq!(ascii_perl_classes(r"a\\w\.b"), r"a\\w\.b");
        assert_eq!(ascii_perl_classes(r"[]\d][\s]"), r"[]0-9][\t\n\f\r\x20]");
        // A `-` after a class in brackets is itself, as RE2 reads it.
        assert_eq!(ascii_perl_classes(r"[\w-.]"), r"[0-9A-Za-z_\-.]");
        assert_eq!(ascii_perl_classes(r"[\s-z]"), r"[\t\n\f\r\x20\-z]");
        assert_eq!(ascii_perl_classes(r"[\d-]"), r"[0-9-]");
        let dotted = anchored(r"[\w-.]+").unwrap();
        assert!(dotted.is_match("a-b.c") && !dotted.is_match("a~b"));
        assert!(!anchored(r"[\s-z]").unwrap().is_match("m"), "not a range from space to z");
        assert_eq!(ascii_perl_classes(r"\bx\B"), r"(?-u:\b)x(?-u:\B)");
        assert!(anchored(r"a\bé").unwrap().is_match("aé"), "é is no word character in RE2");
        let digits = anchored(r"\d+").unwrap();
        assert!(digits.is_match("2024") && !digits.is_match("٢٠٢٤"), "Arabic-Indic digits are not \\d in RE2");
        assert!(anchored(r"\w{150}").is_ok(), "small once ASCII");
        assert!(anchored(r"\pL{1000}").is_err(), "Unicode classes stay Unicode, and bounded");
        assert!(anchored("a\nb").unwrap().is_match("a\nb") && anchored("a.b").unwrap().is_match("a\nb"));
    }

    #[test]
    fn a_requests_expressions_compile_within_its_budget_and_repeats_once() {
        // Each larger than SMALL counts at what it may take, 10 MiB while the budget lasts:
        // six in full, the seventh in the 4 MiB left, then none.
        let large = |i: usize| format!(r"\pL{{{}}}", 20 + i);
        for_request(|| {
            for i in 0..7 {
                assert!(anchored(&large(i)).is_ok(), "{i}");
                assert!(anchored(&large(i)).is_ok(), "a repeat is not counted again");
            }
            let e = anchored(&large(7)).unwrap_err().to_string();
            assert!(e.contains("would take more than 67108864 bytes compiled"), "{e}");
        });
        assert!(anchored(&large(7)).is_ok(), "outside a request, bounded alone");
    }

    /// Go's `Regexp.Expand` on `(?P<first>b)(i)(g)?x?` against "bi": what upstream's
    /// `label_replace` gives for each replacement.
    #[test]
    fn replacements_expand_as_gos_regexp_expand() {
        let re = anchored("(?P<first>b)(i)(g)?").unwrap();
        let caps = re.captures("bi").unwrap();
        let cases = [
            ("$1-$2", "b-i"),
            ("${1}x", "bx"),
            ("$1x", ""),
            ("$first.$3.$9", "b.."),
            ("${first}", "b"),
            ("$$1", "$1"),
            ("a$", "a$"),
            ("${}", "${}"),
            ("a${}b", "a${}b"),
            ("${ 1}", "${ 1}"),
            ("${a-b}", "${a-b}"),
            ("${{1}}", "${{1}}"),
            ("${1", "${1"),
            ("$-", "$-"),
            ("$01", ""),
            ("${01}", ""),
            ("$0", "bi"),
            ("$1\u{b2}", "b\u{b2}"),
        ];
        for (template, want) in cases {
            let mut got = String::new();
            expand(&caps, template, &mut got);
            assert_eq!(got, want, "{template}");
        }
        // Go's ReplaceAllString: every match, the text between kept.
        let re = Regex::new("a(x*)").unwrap();
        assert_eq!(replace_all(&re, "-ax-axx-b", "<$1>${}"), "-<x>${}-<xx>${}-b");
    }
}
