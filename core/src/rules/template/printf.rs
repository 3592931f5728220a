//! Go's `printf` for templates: gotmpl's, except for floats where its formatting differs from
//! Go's `fmt`. `%v` of a float is Go's `%g` (`1e+21`, not `1000000000000000000000`), and ±Inf
//! and NaN are `+Inf`, `-Inf` and `NaN` under every float verb (`{{ printf "%.2f" $value }}` of
//! a ratio over zero), never Rust's `inf`. Such a directive is formatted here, flags and width
//! included, and handed to gotmpl's `printf` as a string; everything else is gotmpl's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use gotmpl::{Template, Value};

use super::go_float;

/// `printf FORMAT ARGS...` as Go's.
pub(super) fn printf(args: &[Value]) -> gotmpl::Result<Value> {
    let Some((Value::String(format), rest)) = args.split_first() else { return builtin(args) };
    match floats_formatted(format, rest) {
        Some((format, rest)) => builtin(&[vec![Value::String(format.into())], rest].concat()),
        None => builtin(args),
    }
}

thread_local! {
    /// `{{printf .A0 .A1 …}}` by number of arguments: how gotmpl's own `printf` is reached.
    static BUILTIN: RefCell<HashMap<usize, Template>> = RefCell::default();
}

/// gotmpl's `printf` of `args`.
fn builtin(args: &[Value]) -> gotmpl::Result<Value> {
    let data = Value::Map(Arc::new((0..args.len()).map(|i| (Arc::from(format!("A{i}")), args[i].clone())).collect()));
    BUILTIN.with(|cache| {
        let mut cache = cache.borrow_mut();
        let template = match cache.entry(args.len()) {
            std::collections::hash_map::Entry::Occupied(t) => t.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let call: String = (0..args.len()).map(|i| format!(" .A{i}")).collect();
                slot.insert(Template::new("printf").parse(&format!("{{{{printf{call}}}}}"))?)
            }
        };
        Ok(Value::String(template.execute_to_string(&data)?.into()))
    })
}

/// A directive's flags, width and precision.
#[derive(Default)]
struct Spec {
    plus: bool,
    minus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: usize,
    precision: Option<usize>,
}

/// `format` and `args` with each float directive whose output differs from Go's replaced by
/// `%s` of Go's output; None when there is none (or the format indexes its arguments or takes
/// a width from them, left to gotmpl whole).
fn floats_formatted(format: &str, args: &[Value]) -> Option<(String, Vec<Value>)> {
    let (mut out, mut rewritten, mut next, mut changed) = (String::new(), Vec::new(), 0, false);
    let mut chars = format.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, flag)) = chars.peek() {
            match flag {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let indexed = |chars: &mut Chars| chars.peek().is_some_and(|(_, c)| matches!(c, '[' | '*'));
        if indexed(&mut chars) {
            return None;
        }
        spec.width = digits(&mut chars);
        if chars.next_if(|(_, c)| *c == '.').is_some() {
            if indexed(&mut chars) {
                return None;
            }
            spec.precision = Some(digits(&mut chars));
        }
        if indexed(&mut chars) {
            return None;
        }
        let Some((at, verb)) = chars.next() else {
            out.push_str(&format[start..]);
            break;
        };
        let directive = &format[start..at + verb.len_utf8()];
        if verb == '%' {
            out.push_str(directive);
            continue;
        }
        let arg = args.get(next);
        next += 1;
        match arg {
            Some(&Value::Float(f)) if "vfFeEgG".contains(verb) && (verb == 'v' && !spec.sharp || !f.is_finite()) => {
                out.push_str("%s");
                rewritten.push(Value::String(go_directive(f, &spec).into()));
                changed = true;
            }
            _ => {
                out.push_str(directive);
                rewritten.extend(arg.cloned());
            }
        }
    }
    rewritten.extend(args.iter().skip(next).cloned());
    changed.then_some((out, rewritten))
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// The most a width or precision is taken as, as gotmpl clamps them: a template's
/// `%999999999v` must not allocate a gigabyte, and Rust's formatter panics past it.
const MOST_WIDTH: usize = u16::MAX as usize;

/// The number the digits next in `chars` write (0 if none), at most [`MOST_WIDTH`].
fn digits(chars: &mut Chars) -> usize {
    let mut n: usize = 0;
    while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(d as usize - '0' as usize);
    }
    n.min(MOST_WIDTH)
}

/// `f` under a float directive as Go's `fmt` writes it: `%g` for a finite one (`%v`), signs
/// as the flags ask, padded to the width (with zeros after the sign for a finite one).
fn go_directive(f: f64, spec: &Spec) -> String {
    let mut text = match f {
        f if f.is_nan() && spec.plus => "+NaN".to_string(),
        f if f.is_nan() && spec.space => " NaN".to_string(),
        f if f.is_nan() => "NaN".to_string(),
        f if f == f64::INFINITY && spec.space && !spec.plus => " Inf".to_string(),
        f => go_float(f, spec.precision.map(|p| p.max(1))),
    };
    if f.is_finite() && !text.starts_with('-') {
        if spec.plus {
            text.insert(0, '+');
        } else if spec.space {
            text.insert(0, ' ');
        }
    }
    let short = spec.width.saturating_sub(text.chars().count());
    if spec.minus {
        text.extend(std::iter::repeat_n(' ', short));
    } else if spec.zero && f.is_finite() {
        let signed = text.starts_with(['+', '-', ' ']);
        text.insert_str(usize::from(signed), &"0".repeat(short));
    } else {
        text.insert_str(0, &" ".repeat(short));
    }
    text
}
