//! The one way Pyrite reads YAML (configuration, rule files, file_sd, rule unit tests):
//! serde_norway (the maintained fork of the deprecated serde_yaml 0.9: same API, same libyaml
//! port, same messages) after a check of how deeply flow collections nest.
//!
//! libyaml's scanner takes time quadratic in the nesting of flow collections (`[[[[…`): 200 KB
//! of `[` cost a minute of CPU before serde_norway's own limit of 128 levels refused the
//! document. The check finds the same refusal in one pass: it counts `[` and `{` where a flow
//! collection may open (at the start of a line's content, or after `:`, `-`, `?`, `,`, `[` or
//! `{` and a space), skipping quoted strings and comments, and refuses a document nested deeper
//! than serde_norway would accept. A bracket inside a plain scalar (`regex: a[0-9]`) does not
//! stand where a collection opens and is not counted.

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Deepest nesting serde_norway accepts.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Error)]
pub enum YamlError {
    #[error("line {line}: collections nested more than {MAX_DEPTH} levels deep")]
    TooDeep { line: usize },
    #[error("{0}")]
    Parse(#[from] serde_norway::Error),
}

/// Parses `text` as YAML into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check_depth(text)?;
    Ok(serde_norway::from_str(text)?)
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
