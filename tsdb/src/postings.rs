//! The inverted index: label name → label value → the series that carry that pair.
//!
//! Series ids are the head's dense `u32` ids, kept in roaring bitmaps so that intersections of
//! large postings lists are cheap. Names and values are symbol ids of the head's
//! [`Symbols`](super::symbols::Symbols) table.
//!
//! Matcher semantics follow Prometheus: a matcher is applied to the label's value, or to "" when
//! the series lacks the label, so `job!=""` selects series that have a `job` and `job=~".*"`
//! selects every series.

use std::collections::{HashMap, HashSet};

use roaring::{MultiOps, RoaringBitmap};

use super::symbols::Symbols;
use pyrite_core::labels::{MatchOp, Matcher};
use pyrite_core::value_regex::Shape;

#[derive(Debug, Default)]
pub struct Postings {
    by_name: HashMap<u32, HashMap<u32, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Postings {
    pub fn add(&mut self, series: u32, labels: &[(u32, u32)]) {
        self.all.insert(series);
        for &(name, value) in labels {
            self.by_name.entry(name).or_default().entry(value).or_default().insert(series);
        }
    }

    /// Removes `series` (which carries `labels`) from the index; pairs left with no series go.
    pub fn remove(&mut self, series: u32, labels: &[(u32, u32)]) {
        self.all.remove(series);
        for &(name, value) in labels {
            let Some(values) = self.by_name.get_mut(&name) else { continue };
            if let Some(ids) = values.get_mut(&value) {
                ids.remove(series);
                if ids.is_empty() {
                    values.remove(&value);
                }
            }
            if values.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }

    /// Adds a whole postings list for one pair (an index read from disk).
    pub fn insert(&mut self, name: u32, value: u32, series: RoaringBitmap) {
        self.all |= &series;
        *self.by_name.entry(name).or_default().entry(value).or_default() |= series;
    }

    /// Every series in the index.
    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    /// The series matching all matchers (every series when there are none). A matcher that
    /// takes "" (`!=`, most `!~`) removes the series whose value fails it from those picked so
    /// far, in place, as upstream subtracts them: a selector of thousands of them costs
    /// thousands of look-ups, not copies of every series. A matcher repeated counts once.
    pub fn select(&self, symbols: &Symbols, matchers: &[Matcher]) -> RoaringBitmap {
        // Cheap, selective matchers first: equality on a non-empty value is a single lookup.
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| match m.op {
            MatchOp::Equal if !m.value.is_empty() => 0,
            MatchOp::Regex => 1,
            _ => 2,
        });
        let mut seen = HashSet::new();
        ordered.retain(|m| seen.insert((&m.name, m.op, &m.value)));
        let mut result: Option<RoaringBitmap> = None;
        for m in ordered {
            let (decided, takes_empty) = self.deciding(symbols, m);
            let picked = match (result, takes_empty) {
                (None, false) => decided,
                (None, true) => &self.all - decided,
                (Some(acc), false) => acc & decided,
                (Some(mut acc), true) => {
                    acc -= decided;
                    acc
                }
            };
            if picked.is_empty() {
                return picked;
            }
            result = Some(picked);
        }
        result.unwrap_or_else(|| self.all.clone())
    }

    /// The series whose value for `m.name` (or "" if absent) decides `m`, and whether `m`
    /// takes "": one that does selects every series but those, one that does not only those.
    /// Either way one union, over the values that decide.
    fn deciding(&self, symbols: &Symbols, m: &Matcher) -> (RoaringBitmap, bool) {
        let values = symbols.lookup(&m.name).and_then(|n| self.by_name.get(&n));
        let postings_of = |v: &str| symbols.lookup(v).and_then(|v| values.and_then(|vals| vals.get(&v)));
        let takes_empty = m.matches("");
        // Where the value or the pattern's shape tells, the values that decide are known
        // without trying each: the same ones for `=` and `!=`, `=~` and `!~`.
        let decided = match (m.op, m.regex_shape()) {
            (MatchOp::Equal | MatchOp::NotEqual, _) if !m.value.is_empty() => {
                postings_of(&m.value).cloned().unwrap_or_default()
            }
            (_, Some(Shape::OneOf(listed))) if !listed.contains(&String::new()) => {
                listed.iter().filter_map(|v| postings_of(v)).union()
            }
            (_, Some(Shape::Any)) => RoaringBitmap::new(),
            (_, Some(Shape::NotEmpty)) => {
                let empty = symbols.lookup("");
                values.into_iter().flatten().filter(|&(&v, _)| Some(v) != empty).map(|(_, series)| series).union()
            }
            _ => values
                .into_iter()
                .flatten()
                .filter(|&(&value, _)| m.matches(symbols.resolve(value)) != takes_empty)
                .map(|(_, series)| series)
                .union(),
        };
        (decided, takes_empty)
    }

    /// The label names (symbol ids) in the index.
    pub fn names(&self) -> Vec<u32> {
        self.by_name.keys().copied().collect()
    }

    /// The values (symbol ids) of label `name` in the index.
    pub fn values_of(&self, name: u32) -> Vec<u32> {
        self.by_name.get(&name).map_or_else(Vec::new, |values| values.keys().copied().collect())
    }

    /// How many series carry the pair, if any does.
    pub fn count(&self, name: u32, value: u32) -> Option<u64> {
        self.by_name.get(&name)?.get(&value).map(RoaringBitmap::len)
    }

    /// How many (name, value) pairs the index holds, or those of `name` only.
    pub fn num_pairs(&self, name: Option<u32>) -> usize {
        match name {
            Some(name) => self.by_name.get(&name).map_or(0, HashMap::len),
            None => self.by_name.values().map(HashMap::len).sum(),
        }
    }

    /// The label names (symbol ids) carried by at least one series in `series`.
    pub fn label_names(&self, series: &RoaringBitmap) -> Vec<u32> {
        self.by_name
            .iter()
            .filter(|(_, values)| values.values().any(|s| !s.is_disjoint(series)))
            .map(|(&name, _)| name)
            .collect()
    }

    /// The values (symbol ids) of `name` among `series`.
    pub fn label_values(&self, name: u32, series: &RoaringBitmap) -> Vec<u32> {
        self.by_name
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|(_, s)| !s.is_disjoint(series))
            .map(|(&value, _)| value)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(series: &[&[(&str, &str)]]) -> (Symbols, Postings) {
        let mut symbols = Symbols::default();
        let mut postings = Postings::default();
        for (id, labels) in series.iter().enumerate() {
            let pairs: Vec<(u32, u32)> = labels.iter().map(|(n, v)| (symbols.intern(n), symbols.intern(v))).collect();
            postings.add(id as u32, &pairs);
        }
        (symbols, postings)
    }

    fn ids(p: &Postings, s: &Symbols, ms: &[Matcher]) -> Vec<u32> {
        p.select(s, ms).iter().collect()
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let (s, p) = index(&[
            &[("__name__", "up"), ("job", "api")],
            &[("__name__", "up"), ("job", "web")],
            &[("__name__", "up")],
            &[("__name__", "down"), ("job", "api")],
        ]);
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap();
        assert_eq!(ids(&p, &s, &[m("__name__", MatchOp::Equal, "up")]), vec![0, 1, 2]);
        assert_eq!(ids(&p, &s, &[m("__name__", MatchOp::Equal, "up"), m("job", MatchOp::NotEqual, "api")]), vec![1, 2]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::Equal, "")]), vec![2]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::NotEqual, "")]), vec![0, 1, 3]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::Regex, "a.*")]), vec![0, 3]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::Regex, "a.*|")]), vec![0, 2, 3]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::NotRegex, "a.*")]), vec![1, 2]);
        assert_eq!(ids(&p, &s, &[m("nope", MatchOp::Equal, "x")]), Vec::<u32>::new());
        assert_eq!(ids(&p, &s, &[m("nope", MatchOp::Regex, ".*")]), vec![0, 1, 2, 3]);
        assert_eq!(ids(&p, &s, &[m("job", MatchOp::Equal, "never-interned")]), Vec::<u32>::new());
    }

    /// Patterns whose values are known (a few exact ones, `.*`, `.+`) select the series whose
    /// value, or "", the pattern matches, for `=~` and `!~`, with an empty value indexed too.
    #[test]
    fn shaped_patterns_select_as_the_pattern_matches_each_value() {
        let jobs = [Some("api"), Some("web"), None, Some("API"), Some("")];
        let series: Vec<Vec<(&str, &str)>> =
            jobs.iter().map(|job| [("__name__", "up")].into_iter().chain(job.map(|j| ("job", j))).collect()).collect();
        let (s, p) = index(&series.iter().map(Vec::as_slice).collect::<Vec<_>>());
        for pattern in ["api|web", "(?i)api", "never|api", "|api", ".*", ".+"] {
            let re = pyrite_core::re2::anchored(pattern).unwrap();
            for op in [MatchOp::Regex, MatchOp::NotRegex] {
                let m = Matcher::new("job", op, pattern).unwrap();
                assert!(m.regex_shape().is_some(), "{m}");
                let expected: Vec<u32> = (0..jobs.len() as u32)
                    .filter(|&id| re.is_match(jobs[id as usize].unwrap_or("")) == (op == MatchOp::Regex))
                    .collect();
                assert_eq!(ids(&p, &s, std::slice::from_ref(&m)), expected, "{m}");
            }
        }
    }

    #[test]
    fn a_removed_series_leaves_no_trace() {
        let (s, mut p) = index(&[&[("__name__", "up"), ("job", "api")], &[("__name__", "up"), ("job", "web")]]);
        let web = [
            (s.lookup("__name__").unwrap(), s.lookup("up").unwrap()),
            (s.lookup("job").unwrap(), s.lookup("web").unwrap()),
        ];
        p.remove(1, &web);
        assert_eq!(p.all().iter().collect::<Vec<_>>(), vec![0]);
        let pairs: Vec<_> = p
            .names()
            .into_iter()
            .flat_map(|n| p.values_of(n).into_iter().map(move |v| (n, v)))
            .map(|(n, v)| (s.resolve(n), s.resolve(v), p.count(n, v)))
            .collect();
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert!(pairs.iter().all(|&(_, v, c)| v != "web" && c == Some(1)));
        let job = s.lookup("job").unwrap();
        assert_eq!(p.count(job, s.lookup("web").unwrap()), None);
    }
}
