//! The series notation of upstream's test formats — promqltest's `load` blocks and promtool's
//! rule unit tests share it: a series description (`name{label="value"}`) and an expanding value
//! list (`1+2x3 _ stale`). One reader for both, so the two test formats cannot drift apart.

use std::sync::Arc;

use crate::histogram::{self, FloatHistogram};
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
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    Gap,
    Value(f64),
    Histogram(Arc<FloatHistogram>),
}

/// Splits a value list into its items: blank-separated, except that a histogram's braces
/// (`{{schema:0 buckets:[1 2]}}`, also in `{{A}}+{{B}}x3`) hold blanks of their own.
fn items(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let mut end = 0;
        while end < rest.len() {
            if rest[end..].starts_with("{{") {
                let close = rest[end..].find("}}").ok_or_else(|| format!("unclosed histogram in {text:?}"))?;
                end += close + 2;
            } else if rest[end..].starts_with(char::is_whitespace) {
                break;
            } else {
                end += rest[end..].chars().next().map_or(1, char::len_utf8);
            }
        }
        out.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Ok(out)
}

/// `body` and the `N` of a trailing `xN`, if any.
fn repetition(tok: &str) -> Result<(&str, Option<usize>), String> {
    match tok.rfind('x') {
        Some(i) if i + 1 < tok.len() && tok[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            Ok((&tok[..i], Some(tok[i + 1..].parse::<usize>().map_err(|_| format!("bad repetition {tok:?}"))?)))
        }
        _ => Ok((tok, None)),
    }
}

/// Expands `{{A}}`, `{{A}}xN` and `{{A}}+{{B}}xN` (or `-`): A, then B added (subtracted) N
/// times, each step a histogram of its own.
fn histograms(tok: &str, out: &mut Vec<Point>) -> Result<(), String> {
    let (body, times) = repetition(tok)?;
    let first_end = body.find("}}").map_or(body.len(), |i| i + 2);
    let start = histogram::parse_histogram(&body[..first_end])?;
    let delta = match &body[first_end..] {
        "" => None,
        rest if times.is_some() && (rest.starts_with("+{{") || rest.starts_with("-{{")) => {
            Some((rest.starts_with('-'), histogram::parse_histogram(&rest[1..])?))
        }
        _ => return Err(format!("bad histogram sequence {tok:?}")),
    };
    let mut h = start;
    out.push(Point::Histogram(Arc::new(h.clone())));
    for _ in 0..times.unwrap_or(0) {
        match &delta {
            Some((true, d)) => drop(h.sub(d).map_err(|e| format!("{tok:?}: {e}"))?),
            Some((false, d)) => drop(h.add(d).map_err(|e| format!("{tok:?}: {e}"))?),
            None => {}
        }
        out.push(Point::Histogram(Arc::new(h.clone())));
    }
    Ok(())
}

/// The points of a value list as samples: the first at `start`, one every `interval`, gaps
/// left out.
pub fn timed(points: Vec<Point>, start: i64, interval: i64) -> Vec<(i64, Point)> {
    let time = |i: usize| start.saturating_add((i as i64).saturating_mul(interval));
    points.into_iter().enumerate().filter(|(_, p)| *p != Point::Gap).map(|(i, p)| (time(i), p)).collect()
}

/// Expands a value list: numbers, gaps, staleness markers and native histograms.
pub fn values(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for tok in items(text)? {
        if tok.starts_with("{{") {
            histograms(tok, &mut out)?;
            continue;
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
            let n: usize = n.parse().map_err(|_| format!("bad gap repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(Point::Gap, n));
            continue;
        }
        // <a>, <a>xN, <a>+<b>xN, <a>-<b>xN
        let (body, times) = repetition(tok)?;
        let split = body
            .char_indices()
            .skip(1)
            .find(|&(i, c)| (c == '+' || c == '-') && !matches!(body.as_bytes()[i - 1], b'e' | b'E'))
            .map(|(i, _)| i);
        let (start, delta) = match (split, times) {
            (Some(i), Some(_)) => {
                let a = number(&body[..i]).ok_or_else(|| format!("bad number in {tok:?}"))?;
                let b = number(&body[i + 1..]).ok_or_else(|| format!("bad number in {tok:?}"))?;
                (a, if &body[i..i + 1] == "-" { -b } else { b })
            }
            _ => (number(body).ok_or_else(|| format!("bad value {tok:?}"))?, 0.0),
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
        assert!(values("{{schema:0 sum:1").is_err());
    }

    #[test]
    fn histograms_expand_as_their_steps() {
        let v = values("1 {{schema:0 count:1 sum:2 buckets:[1]}}+{{count:1 sum:1 buckets:[1]}}x2 _ {{}}x1").unwrap();
        assert_eq!(v.len(), 7);
        let counts: Vec<f64> =
            v.iter().filter_map(|p| if let Point::Histogram(h) = p { Some(h.count) } else { None }).collect();
        assert_eq!(counts, [1.0, 2.0, 3.0, 0.0, 0.0]);
        assert!(matches!(&v[3], Point::Histogram(h) if h.sum == 4.0 && h.positive_buckets == [3.0]));
        assert!(values("{{count:1}}+{{count:1}}").is_err(), "a sum without a repetition");
    }

    #[test]
    fn series_descriptions() {
        assert_eq!(series_labels("{}").unwrap(), Labels::default());
        assert_eq!(series_labels("a{b='c'}").unwrap().to_string(), r#"{__name__="a", b="c"}"#);
        assert!(series_labels("a{b=~'c'}").is_err());
    }
}
