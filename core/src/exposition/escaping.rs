//! How `/federate` writes a metric or label name outside the legacy character set, which
//! remote write may store (upstream 3.x's receivers take any UTF-8 name): as the answer's
//! negotiated `escaping` says, upstream's `model.EscapeMetricFamily` and `EscapeName`. A metric
//! name of the legacy set (`[a-zA-Z_:][a-zA-Z0-9_:]*`) and a label name of the legacy label-name
//! set (`[a-zA-Z_][a-zA-Z0-9_]*`) are written as they are by every scheme; `allow-utf-8` writes
//! any name as it is, one outside its set quoted in the text format.
//!
//! One difference, deliberate: upstream checks label names against the metric-name set too, so
//! it writes a label `a:b` as it is, which no scraper reads (prometheus/prometheus#18380);
//! Pyrite escapes the `:` of a label name (or quotes the name, with `allow-utf-8`).

use std::borrow::Cow;
use std::fmt::Write;

use crate::labels::{is_valid_label_name, is_valid_metric_name};

/// An `escaping` a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: names as they are.
    AllowUtf8,
    /// `underscores`, upstream's default: each character outside the set becomes `_`.
    Underscores,
    /// `dots`: `.` becomes `_dot_`, `_` becomes `__`, another character outside the set `__`.
    Dots,
    /// `values`: `U__`, then `_` as `__` and each character outside the set as `_<hex>_`.
    Values,
}

impl Escaping {
    /// Every scheme, as an `Accept` header names them.
    pub const ALL: [Escaping; 4] = [Escaping::AllowUtf8, Escaping::Underscores, Escaping::Dots, Escaping::Values];

    /// Its name in a media type's `escaping` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }

    /// A metric name as this scheme writes it (see the module doc).
    pub fn escape(self, name: &str) -> Cow<'_, str> {
        self.escape_as(name, true)
    }

    /// A label name as this scheme writes it: a `:` is escaped too (see the module doc).
    pub fn escape_label(self, name: &str) -> Cow<'_, str> {
        self.escape_as(name, false)
    }

    /// `name` escaped, `:` kept if `colon`; borrowed exactly when it is unchanged.
    fn escape_as(self, name: &str, colon: bool) -> Cow<'_, str> {
        let legacy = if colon { is_valid_metric_name(name) } else { is_valid_label_name(name) };
        if self == Escaping::AllowUtf8 || legacy {
            return Cow::Borrowed(name);
        }
        // Go's `isValidLegacyRune`: a digit is valid past the first byte.
        let valid = |i: usize, c: char| {
            c.is_ascii_alphabetic() || c == '_' || (colon && c == ':') || (c.is_ascii_digit() && i > 0)
        };
        let mut out = String::with_capacity(name.len() + 8);
        if self == Escaping::Values {
            out.push_str("U__");
        }
        for (i, c) in name.char_indices() {
            match (self, c) {
                (Escaping::Dots | Escaping::Values, '_') => out.push_str("__"),
                (Escaping::Dots, '.') => out.push_str("_dot_"),
                (_, c) if valid(i, c) => out.push(c),
                (Escaping::Underscores, _) => out.push('_'),
                (Escaping::Dots, _) => out.push_str("__"),
                (_, c) => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "_{:x}_", u32::from(c));
                }
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_kept_by_every_scheme() {
        for escaping in Escaping::ALL {
            for name in ["http_requests_total", "a:b", "_x9"] {
                assert_eq!(escaping.escape(name), name, "{escaping:?}");
            }
        }
    }

    #[test]
    fn a_colon_is_escaped_in_label_names_only() {
        let want = ["a:b", "a_b", "a__b", "U__a_3a_b"];
        for (escaping, want) in Escaping::ALL.into_iter().zip(want) {
            assert_eq!(escaping.escape("a:b"), "a:b");
            assert_eq!(escaping.escape_label("a:b"), want, "{escaping:?}");
            assert_eq!(escaping.escape_label("c.d"), escaping.escape("c.d"));
        }
    }

    #[test]
    fn other_names_are_escaped_as_upstream_escapes_them() {
        let cases = [
            ("a.b_c-d", ["a.b_c-d", "a_b_c_d", "a_dot_b__c__d", "U__a_2e_b__c_2d_d"]),
            ("9lives", ["9lives", "_lives", "__lives", "U___39_lives"]),
            ("température", ["température", "temp_rature", "temp__rature", "U__temp_e9_rature"]),
            (
                "http.server.duration",
                [
                    "http.server.duration",
                    "http_server_duration",
                    "http_dot_server_dot_duration",
                    "U__http_2e_server_2e_duration",
                ],
            ),
        ];
        for (name, want) in cases {
            for (escaping, want) in Escaping::ALL.into_iter().zip(want) {
                assert_eq!(escaping.escape(name), want, "{name} with {escaping:?}");
            }
        }
    }
}
