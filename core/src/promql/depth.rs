//! How deep a query may nest, checked on its text before anything recursive reads it.
//!
//! pest's generated parser, the Pratt folding of operators, the planner, the evaluator and the
//! AST's own `Drop` all recurse once per level of the expression tree, so a query of a few
//! kilobytes (a thousand nested parentheses, a long `1+1+…` chain, thousands of unary minus
//! signs) would overflow a thread's stack and abort the process. Upstream Prometheus survives
//! such queries on Go's growable stacks; Pyrite refuses them with a parse error instead.
//!
//! The scan bounds the tree's depth from above, in one pass over the bytes: every bracket
//! (`(`, `[`, `{`) opens a level worth [`LEVEL_WEIGHT`], and every operator counts one at the
//! level it stands in (a chain of `n` operators nests `n` deep in the tree). Strings and comments
//! are skipped. The bound is what the deepest point of the text adds up to over its enclosing
//! levels; the limit, [`MAX_DEPTH`], is far beyond any query a person or Grafana writes, and every
//! thread that handles queries has a stack sized for it.
//!
//! The same pass bounds the tree's size: a balanced tree is shallow however large, and a
//! query of a few megabytes of `((1+1)+(1+1))…` parsed into a gigabyte of tokens and nodes. It
//! counts brackets, operators, commas, names and numbers, at most [`MAX_TERMS`] of them (string
//! contents, such as long regular expressions, do not count): every token that can become a
//! node, so that `a or a or …` cannot pass as a few terms.

use super::parser::ParseError;

/// The deepest expression tree Pyrite accepts.
pub const MAX_DEPTH: usize = 1000;

/// The most brackets, operators, commas, names and numbers a query may hold: some twenty
/// megabytes of tokens and nodes at the most, where dashboards' queries hold tens to hundreds.
pub const MAX_TERMS: usize = 100_000;

/// What a bracket adds to the depth: the node it opens (a call, an aggregation, a subquery)
/// and the parenthesised expression inside.
const LEVEL_WEIGHT: usize = 2;

/// Refuses `query` if its expression tree could be deeper than [`MAX_DEPTH`].
pub fn check(query: &str) -> Result<(), ParseError> {
    let b = query.as_bytes();
    // Operators counted at each open level, outermost first; the sum of the bound so far.
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut terms = 0usize;
    let mut i = 0;
    while i < b.len() {
        if matches!(
            b[i],
            b'(' | b'[' | b'{' | b',' | b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!'
        ) {
            terms += 1;
        }
        match b[i] {
            b'"' | b'\'' => i = skip_quoted(b, i),
            b'`' => i = b[i + 1..].iter().position(|&c| c == b'`').map_or(b.len(), |n| i + 1 + n),
            b'#' => i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n),
            b'(' | b'[' | b'{' => {
                levels.push(0);
                depth += LEVEL_WEIGHT;
            }
            b')' | b']' | b'}' if levels.len() > 1 => {
                let ops = levels.pop().unwrap_or(0);
                depth -= LEVEL_WEIGHT + ops;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' => {
                bump(&mut levels, &mut depth);
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => {
                // A name, keyword, number or duration: one token, one term.
                terms += 1;
                let len =
                    b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.')).count();
                let word = &b[i..i + len];
                if ["and", "or", "unless", "atan2"].iter().any(|k| word.eq_ignore_ascii_case(k.as_bytes())) {
                    bump(&mut levels, &mut depth);
                }
                i += len - 1;
            }
            _ => {}
        }
        let too_complex = if depth > MAX_DEPTH {
            Some(format!(
                "query too complex: its expression would nest more than {MAX_DEPTH} levels deep \
                 (parentheses, calls, operators)"
            ))
        } else if terms > MAX_TERMS {
            Some(format!("query too complex: more than {MAX_TERMS} brackets, operators, names and numbers"))
        } else {
            None
        };
        if let Some(message) = too_complex {
            // Both grow only at ASCII bytes, so `i` is a character boundary.
            let before = query.get(..i).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
            return Err(ParseError { line, column, message });
        }
        i += 1;
    }
    Ok(())
}

/// One more operator at the innermost open level.
fn bump(levels: &mut [usize], depth: &mut usize) {
    if let Some(ops) = levels.last_mut() {
        *ops += 1;
    }
    *depth += 1;
}

/// The index of the quote that closes the string opened at `start` (or the end of the input),
/// past backslash escapes.
fn skip_quoted(b: &[u8], start: usize) -> usize {
    let quote = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i.min(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn ordinary_queries_pass() {
        for q in [
            "sum by (le) (rate(http_request_duration_seconds_bucket{job=~\"a|b\", path!=\"/(((\"}[5m]))",
            "histogram_quantile(0.99, sum by (le) (rate(x[5m]))) > bool 1 or vector(0)",
            "-(-(-1)) + 2 ^ 3 ^ 4 # a comment with ((((((",
            "max_over_time(deriv(rate(x[5m])[30m:1m])[1h:5m]) offset -5m",
            "`((((((` and '\\'((((('",
        ] {
            assert_eq!(check(q), Ok(()), "{q}");
        }
        assert_eq!(check(&nested("(", "1", ")", 400)), Ok(()));
        assert_eq!(check(&vec!["1"; 900].join("+")), Ok(()));
    }

    #[test]
    fn deep_queries_are_refused_where_they_get_too_deep() {
        let e = check(&nested("(", "1", ")", 1000)).unwrap_err();
        assert_eq!((e.line, e.column), (1, 501));
        assert!(e.message.contains("more than 1000 levels"), "{}", e.message);
        for q in [
            vec!["1"; 1500].join("+"),
            format!("{}1", "-".repeat(5600)),
            nested("abs(", "up", ")", 1000),
            vec!["1"; 1200].join(" or "),
            vec!["2"; 1200].join("^"),
            nested("max_over_time(", "up", "[5m:1m])", 600),
        ] {
            assert!(check(&q).is_err(), "{}", &q[..40]);
        }
    }

    #[test]
    fn large_shallow_queries_are_refused_by_their_size() {
        fn balanced(n: usize) -> String {
            if n == 1 {
                return "1".into();
            }
            format!("({}+{})", balanced(n / 2), balanced(n - n / 2))
        }
        assert_eq!(check(&balanced(30_000)), Ok(()));
        let e = check(&balanced(40_000)).unwrap_err();
        assert!(e.message.contains("more than 100000 brackets, operators, names and numbers"), "{}", e.message);
        let args = format!("label_join(up, \"a\", \",\"{})", ", \"b\"".repeat(120_000));
        assert!(check(&args).is_err());
        // Names count: `a or a or …` in groups keeps depth and operators low.
        let group = format!("({})", vec!["a"; 500].join(" or "));
        assert_eq!(check(&vec![group.as_str(); 60].join(" or ")), Ok(()));
        assert!(check(&vec![group.as_str(); 120].join(" or ")).is_err());
        // Long strings do not count: a regular expression of many alternatives.
        let pods: Vec<String> = (0..100_000).map(|i| format!("pod-{i}")).collect();
        assert_eq!(check(&format!("up{{pod=~\"{}\"}}", pods.join("|"))), Ok(()));
    }

    #[test]
    fn closing_more_than_was_opened_is_left_to_the_parser() {
        assert_eq!(check(")))]]]}}}((("), Ok(()));
        assert_eq!(check("\"unterminated ((((("), Ok(()));
        assert_eq!(check("é(é"), Ok(()));
    }
}
