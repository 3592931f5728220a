//! Reading promqltest scripts (`../shared/conformance/promqltest/FORMAT.md`).
//!
//! Parsing is per command: a block Pyrite cannot represent (start timestamps) is kept with a
//! note instead of failing the whole file, because the evals that depend on it are skipped by
//! category anyway.

use pyrite_core::labels::Labels;
use pyrite_core::promql::{self, Expr};
use pyrite_core::series_notation::{number, series_labels, timed, values, Point};

/// A series with its samples (or points) as (timestamp in ms, value): floats or histograms.
pub type SeriesPoints = (Labels, Vec<(i64, Point)>);

/// One command of a script.
#[derive(Debug)]
pub enum Command {
    Load { series: Vec<SeriesPoints> },
    Clear,
    Eval(Box<Eval>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EvalKind {
    Instant { at: i64 },
    Range { from: i64, to: i64, step: i64 },
}

/// A condition on an error or annotation text: any, exactly this, or matching this regex.
#[derive(Debug, Clone, PartialEq)]
pub enum Fail {
    Any,
    Message(String),
    Regex(String),
}

/// Expectations about warn or info annotations (§7.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    /// One entry per `expect warn` (or `info`) line.
    pub expected: Vec<Fail>,
    /// `eval_warn`/`eval_info`: at least one, texts not checked.
    pub any: bool,
    pub forbidden: bool,
}

#[derive(Debug)]
pub struct Eval {
    /// 1-based line of the eval header.
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    pub fail: Option<Fail>,
    pub warn: Annotations,
    pub info: Annotations,
    pub ordered: bool,
    /// `expect range vector from S to E step P`.
    pub range_vector: Option<(i64, i64, i64)>,
    pub string: Option<String>,
    /// Expected series with one point per position (a gap where there is no value).
    pub series: Vec<(Labels, Vec<Point>)>,
    /// Whether an expected histogram states its counter-reset hint, which is then compared
    /// (§9); this runner records it for the eval as a whole.
    pub hints_stated: bool,
    pub scalar: Option<f64>,
}

fn err<T>(line: usize, m: impl Into<String>) -> Result<T, String> {
    Err(format!("line {line}: {}", m.into()))
}

/// A Prometheus duration as the scripts write it, in ms.
pub fn duration(s: &str) -> Option<i64> {
    pyrite_core::config::Duration::parse(s).ok().map(|d| d.millis())
}

/// Splits `name{labels} rest` into the series text and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'{') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'{') {
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            match (bytes[i], quote) {
                (b'\\', Some(_)) => i += 1,
                (b'"' | b'\'' | b'`', None) => quote = Some(bytes[i]),
                (q, Some(open)) if q == open => quote = None,
                (b'}', None) => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    (line[..i].trim(), line[i..].trim())
}

fn parse_load(lines: &[(usize, &str)], interval: i64) -> Result<Vec<SeriesPoints>, String> {
    let mut series: Vec<SeriesPoints> = Vec::new();
    for &(n, line) in lines {
        let (desc, rest) = split_series(line);
        if desc.ends_with("@st") || rest.starts_with("@st") {
            continue; // start timestamps: the evals that need them are skipped
        }
        let labels = series_labels(desc).map_err(|e| format!("line {n}: {e}"))?;
        let points = values(rest).or_else(|e| err(n, e))?;
        series.retain(|(l, _)| *l != labels);
        series.push((labels, timed(points, 0, interval)));
    }
    Ok(series)
}

fn parse_expect(eval: &mut Eval, n: usize, rest: &str) -> Result<(), String> {
    let (kind, cond) = rest.split_once(' ').map(|(k, c)| (k, c.trim())).unwrap_or((rest, ""));
    let condition = || -> Fail {
        if let Some(m) = cond.strip_prefix("msg:") {
            Fail::Message(m.trim().to_string())
        } else if let Some(r) = cond.strip_prefix("regex:") {
            Fail::Regex(r.trim().to_string())
        } else {
            Fail::Any
        }
    };
    match kind {
        "fail" => eval.fail = Some(condition()),
        "warn" => eval.warn.expected.push(condition()),
        "info" => eval.info.expected.push(condition()),
        "no_warn" => eval.warn.forbidden = true,
        "no_info" => eval.info.forbidden = true,
        "ordered" => eval.ordered = true,
        "range" => {
            // range vector from S to E step P
            let w: Vec<&str> = cond.split_whitespace().collect();
            match w.as_slice() {
                ["vector", "from", s, "to", e, "step", p] => {
                    let d = |x: &str| duration(x).ok_or_else(|| format!("line {n}: bad duration {x:?}"));
                    eval.range_vector = Some((d(s)?, d(e)?, d(p)?));
                }
                _ => return err(n, format!("bad expect range line {rest:?}")),
            }
        }
        "string" => eval.string = Some(unquote_go(cond).ok_or_else(|| format!("line {n}: bad string {cond:?}"))?),
        other => return err(n, format!("unknown expectation {other:?}")),
    }
    Ok(())
}

/// A Go quoted string literal.
fn unquote_go(s: &str) -> Option<String> {
    match promql::parse(s) {
        Ok(Expr::String(v)) => Some(v),
        _ => None,
    }
}

fn parse_eval(header: (usize, &str), body: &[(usize, &str)]) -> Result<Eval, String> {
    let (n, h) = header;
    let (head, rest) = h.split_once(' ').ok_or_else(|| format!("line {n}: bad eval header"))?;
    let mut eval = Eval {
        line: n,
        expr: String::new(),
        kind: EvalKind::Instant { at: 0 },
        fail: None,
        warn: Annotations::default(),
        info: Annotations::default(),
        ordered: false,
        range_vector: None,
        string: None,
        series: Vec::new(),
        hints_stated: false,
        scalar: None,
    };
    match head {
        "eval" => {}
        "eval_fail" => eval.fail = Some(Fail::Any),
        "eval_ordered" => eval.ordered = true,
        "eval_warn" => eval.warn.any = true,
        "eval_info" => eval.info.any = true,
        other => return err(n, format!("unknown command {other:?}")),
    }
    let words: Vec<&str> = rest.splitn(6, ' ').collect();
    match words.as_slice() {
        ["instant", "at", t, expr @ ..] => {
            eval.kind = EvalKind::Instant { at: duration(t).ok_or_else(|| format!("line {n}: bad time {t:?}"))? };
            eval.expr = expr.join(" ");
        }
        ["range", "from", f, "to", t, tail] => {
            let (step_kw, tail) = tail.split_once(' ').ok_or_else(|| format!("line {n}: bad range header"))?;
            let (step, expr) = tail.split_once(' ').ok_or_else(|| format!("line {n}: bad range header"))?;
            if step_kw != "step" {
                return err(n, "range eval without step");
            }
            let d = |x: &str| duration(x).ok_or_else(|| format!("line {n}: bad duration {x:?}"));
            eval.kind = EvalKind::Range { from: d(f)?, to: d(t)?, step: d(step)? };
            eval.expr = expr.to_string();
        }
        _ => return err(n, format!("bad eval header {h:?}")),
    }
    for &(ln, line) in body {
        if let Some(rest) = line.strip_prefix("expect ") {
            parse_expect(&mut eval, ln, rest.trim())?;
            continue;
        }
        if let Some(m) = line.strip_prefix("expected_fail_message ") {
            eval.fail = Some(Fail::Message(m.trim().to_string()));
            continue;
        }
        if let Some(r) = line.strip_prefix("expected_fail_regexp ") {
            eval.fail = Some(Fail::Regex(r.trim().to_string()));
            continue;
        }
        if !line.contains(char::is_whitespace) {
            if let Some(v) = number(line) {
                eval.scalar = Some(v);
                continue;
            }
        }
        let (desc, rest) = split_series(line);
        let labels = series_labels(desc).map_err(|e| format!("line {ln}: {e}"))?;
        eval.hints_stated |= rest.contains("counter_reset_hint:");
        eval.series.push((labels, values(rest).or_else(|e| err(ln, e))?));
    }
    Ok(eval)
}

/// Parses a whole script into commands.
pub fn parse(text: &str) -> Result<Vec<Command>, String> {
    // Lines are trimmed; comments become empty lines and so end blocks (§1).
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = l.trim_matches([' ', '\t']);
            (i + 1, if l.starts_with('#') { "" } else { l })
        })
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = lines[i];
        i += 1;
        if line.is_empty() {
            continue;
        }
        let mut body = Vec::new();
        let word = line.split_whitespace().next().unwrap_or("");
        if word.eq_ignore_ascii_case("clear") {
            commands.push(Command::Clear);
            continue;
        }
        while i < lines.len() && !lines[i].1.is_empty() {
            let is_scalar = !lines[i].1.contains(char::is_whitespace) && number(lines[i].1).is_some();
            let ends = is_scalar || lines[i].1.starts_with("expected_fail_");
            body.push(lines[i]);
            i += 1;
            if word.starts_with("eval") && ends {
                break; // a bare number (or deprecated fail line) ends the body (§5.2)
            }
        }
        match word {
            "load" | "load_with_nhcb" => {
                let d = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(duration)
                    .ok_or_else(|| format!("line {n}: bad load interval"))?;
                let mut series = parse_load(&body, d)?;
                if word == "load_with_nhcb" {
                    let histograms = super::nhcb::histograms_of(&series).map_err(|e| format!("line {n}: {e}"))?;
                    series.extend(histograms);
                }
                commands.push(Command::Load { series });
            }
            w if w.starts_with("eval") => commands.push(Command::Eval(Box::new(parse_eval((n, line), &body)?))),
            other => return err(n, format!("unknown command {other:?}")),
        }
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_descriptions() {
        let (d, r) = split_series("{job=\"a b\", x=\"}\"}\t1 2");
        assert_eq!((d, r), ("{job=\"a b\", x=\"}\"}", "1 2"));
    }
}
