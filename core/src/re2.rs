//! Regular expressions as PromQL means them: RE2's syntax, read by Rust's `regex`, fully
//! anchored, and bounded in size.
//!
//! The two engines agree on nearly all syntax, but RE2's Perl classes (`\d`, `\s`, `\w` and
//! their negations) are ASCII, where `regex` makes them Unicode. So `\d` matched Arabic-Indic
//! digits that Prometheus does not, and `\w{150}` compiled to some 10 MB where RE2's program
//! takes kilobytes: a query of a few hundred such matchers asked for gigabytes. The classes
//! are rewritten to their ASCII sets before compiling, and each expression is held to
//! [`SIZE_LIMIT`].

use regex::{Regex, RegexBuilder};

/// The most a compiled expression may take (about: `regex` counts its automata). Far past
/// any selector's needs once Perl classes are ASCII.
pub const SIZE_LIMIT: usize = 1 << 20;

/// `pattern` anchored at both ends, `.` matching newlines too (PromQL's `^(?s:…)$`).
pub fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?s:{})$", ascii_perl_classes(pattern))).size_limit(SIZE_LIMIT).build()
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
                        's' => "\\t\\n\\f\\r ",
                        _ => "0-9A-Za-z_",
                    };
                    // Inside brackets a class is its ranges; negated, it nests as a class.
                    let (open, close) = match (class.is_ascii_uppercase(), depth > 0) {
                        (false, true) => ("", ""),
                        (false, false) => ("[", "]"),
                        (true, _) => ("[^", "]"),
                    };
                    out.extend([open, set, close]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert_eq!(ascii_perl_classes(r"\w+"), r"[0-9A-Za-z_]+");
        assert_eq!(ascii_perl_classes(r"[\d.-]"), r"[0-9.-]");
        assert_eq!(ascii_perl_classes(r"[^\W]"), r"[^[^0-9A-Za-z_]]");
        assert_eq!(ascii_perl_classes(r"a\\w\.b"), r"a\\w\.b");
        assert_eq!(ascii_perl_classes(r"[]\d][\s]"), r"[]0-9][\t\n\f\r ]");
        let digits = anchored(r"\d+").unwrap();
        assert!(digits.is_match("2024") && !digits.is_match("٢٠٢٤"), "Arabic-Indic digits are not \\d in RE2");
        assert!(anchored(r"\w{150}").is_ok(), "small once ASCII");
        assert!(anchored(r"\pL{1000}").is_err(), "Unicode classes stay Unicode, and bounded");
        assert!(anchored("a\nb").unwrap().is_match("a\nb") && anchored("a.b").unwrap().is_match("a\nb"));
    }
}
