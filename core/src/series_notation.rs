//! The series notation of upstream's test formats — promqltest's `load` blocks and promtool's
//! rule unit tests share it: a series description (`name{label="value"}`) and an expanding value
//! list (`1+2x3 _ stale`). One reader for both, so the two test formats cannot drift apart.

use crate::labels::{Labels, MatchOp};
use crate::promql::{self, Expr};

/// A series description (`name{a="x"}`, `{__name__="n"}`, `{}`) as labels.
pub fn series_labels(text: &str) -> Result<Labels, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact == "{}" {
        return Ok(Labels::default());
    }
    match promql::parse(text) {
        Ok(Expr::VectorSelector(vs)) => {
            let mut pairs = Vec::new();
            for m in vs.matchers {
                if m.op != MatchOp::Equal {
                    return Err(format!("series description {text:?} may only use '='"));
                }
                pairs.push((m.name, m.value));
            }
            Ok(Labels::from_pairs(pairs))
        }
        Ok(_) => Err(format!("{text:?} is not a series description")),
        Err(e) => Err(format!("series description {text:?}: {e}")),
    }
}

/// Go's ParseFloat for the notation's numbers (decimal, exponent, Inf, NaN, signs, `_`).
pub fn number(s: &str) -> Option<f64> {
    let s = s.replace('_', "");
    let unsigned = s.trim_start_matches(['+', '-']);
    match unsigned.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(hex) = unsigned.strip_prefix("0x").or_else(|| unsigned.strip_prefix("0X")) {
        let v = i64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if s.starts_with('-') { -v } else { v });
    }
    s.parse().ok()
}

/// One position of a value list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Gap,
    Value(f64),
}

/// Expands a value list. Err(None) marks a native histogram (not representable).
pub fn values(text: &str) -> Result<Vec<Point>, Option<String>> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok.starts_with("{{") {
            return Err(None);
        }
        if tok == "_" {
            out.push(Point::Gap);
            continue;
        }
        if tok == "stale" {
            out.push(Point::Value(crate::value::stale_nan()));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| Some(format!("bad gap repetition {tok:?}")))?;
            out.extend(std::iter::repeat_n(Point::Gap, n));
            continue;
        }
        // <a>, <a>xN, <a>+<b>xN, <a>-<b>xN
        let (body, times) = match tok.rfind('x') {
            Some(i) if tok[i + 1..].bytes().all(|b| b.is_ascii_digit()) && i + 1 < tok.len() => {
                (&tok[..i], Some(tok[i + 1..].parse::<usize>().map_err(|_| Some(format!("bad repetition {tok:?}")))?))
            }
            _ => (tok, None),
        };
        let split = body
            .char_indices()
            .skip(1)
            .find(|&(i, c)| (c == '+' || c == '-') && !matches!(body.as_bytes()[i - 1], b'e' | b'E'))
            .map(|(i, _)| i);
        let (start, delta) = match (split, times) {
            (Some(i), Some(_)) => {
                let a = number(&body[..i]).ok_or_else(|| Some(format!("bad number in {tok:?}")))?;
                let b = number(&body[i + 1..]).ok_or_else(|| Some(format!("bad number in {tok:?}")))?;
                (a, if &body[i..i + 1] == "-" { -b } else { b })
            }
            _ => (number(body).ok_or_else(|| Some(format!("bad value {tok:?}")))?, 0.0),
        };
        let mut v = start;
        out.push(Point::Value(v));
        for _ in 0..times.unwrap_or(0) {
            v += delta;
            out.push(Point::Value(v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_notation() {
        let v = |s: &str| values(s).unwrap();
        assert_eq!(v("1x3").len(), 4);
        assert_eq!(v("_x3"), vec![Point::Gap; 3]);
        assert_eq!(v("0+10x2"), vec![Point::Value(0.0), Point::Value(10.0), Point::Value(20.0)]);
        assert_eq!(v("5-1x1 _ -2"), vec![Point::Value(5.0), Point::Value(4.0), Point::Gap, Point::Value(-2.0)]);
        assert_eq!(v("1e+3"), vec![Point::Value(1000.0)]);
        assert_eq!(v("-1e-3+1e-3x1"), vec![Point::Value(-0.001), Point::Value(0.0)]);
        assert!(values("{{schema:0 sum:1}}").is_err());
    }

    #[test]
    fn series_descriptions() {
        assert_eq!(series_labels("{}").unwrap(), Labels::default());
        assert_eq!(series_labels("a{b='c'}").unwrap().to_string(), r#"{__name__="a", b="c"}"#);
        assert!(series_labels("a{b=~'c'}").is_err());
    }
}
