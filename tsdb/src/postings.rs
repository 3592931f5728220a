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

    /// The series matching all matchers (every series when there are none), in one go; see
    /// [`Selecting`] for the rules, and for a selection in steps.
    pub fn select(&self, symbols: &Symbols, matchers: &[Matcher]) -> RoaringBitmap {
        Selecting::new(matchers).step(self, symbols, usize::MAX).unwrap_or_default()
    }

    /// About how many values selecting with `matchers` would try one by one against a
    /// pattern: those of each label whose matcher its value or its pattern's shape does not
    /// decide at once; an eighth of them for those that compare each with "" instead.
    pub fn selection_cost(&self, symbols: &Symbols, matchers: &[Matcher]) -> usize {
        let values = |m: &Matcher| symbols.lookup(&m.name).and_then(|n| self.by_name.get(&n)).map_or(0, HashMap::len);
        Selecting::new(matchers)
            .matchers
            .into_iter()
            .map(|m| match deciding(m) {
                Deciding::Value(_) | Deciding::Listed(_) | Deciding::None => 0,
                Deciding::NotEmpty => values(m) / 8,
                Deciding::EachTried => values(m),
            })
            .sum()
    }

    /// The series whose value for `m.name` (or "" if absent) decides `m`, where the value or
    /// the pattern's shape tells which values those are without trying each. None when each
    /// value is to be tried.
    fn at_once(&self, symbols: &Symbols, m: &Matcher) -> Option<RoaringBitmap> {
        let values = symbols.lookup(&m.name).and_then(|n| self.by_name.get(&n));
        let postings_of = |v: &str| symbols.lookup(v).and_then(|v| values.and_then(|vals| vals.get(&v)));
        match deciding(m) {
            Deciding::Value(v) => Some(postings_of(v).cloned().unwrap_or_default()),
            Deciding::Listed(listed) => Some(listed.iter().filter_map(|v| postings_of(v)).union()),
            Deciding::None => Some(RoaringBitmap::new()),
            Deciding::NotEmpty | Deciding::EachTried => None,
        }
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

    /// The label names carried by at least one series of `series` (series of this index), if
    /// finding them looks at no more than `most` postings lists; else None (a name with a value
    /// per series makes that as long as reading each series' labels). When `series` is every
    /// series, they are the index's names, and `most` bounds how many.
    pub fn label_names_among<'s>(
        &self,
        symbols: &'s Symbols,
        series: &RoaringBitmap,
        most: usize,
    ) -> Option<Vec<&'s str>> {
        let resolve = |ids: Vec<u32>| ids.into_iter().map(|n| symbols.resolve(n)).collect();
        if self.all.is_subset(series) {
            return (self.by_name.len() <= most).then(|| resolve(self.names()));
        }
        let mut looked = 0;
        let mut names = Vec::new();
        for (&name, values) in &self.by_name {
            for ids in values.values() {
                looked += 1;
                if looked > most {
                    return None;
                }
                if !ids.is_disjoint(series) {
                    names.push(name);
                    break;
                }
            }
        }
        Some(resolve(names))
    }

    /// The values of label `name` among `series` (series of this index), if `name` has at most
    /// `most` values; else None, as [`Postings::label_names_among`].
    pub fn label_values_among<'s>(
        &self,
        symbols: &'s Symbols,
        name: &str,
        series: &RoaringBitmap,
        most: usize,
    ) -> Option<Vec<&'s str>> {
        let Some(values) = symbols.lookup(name).and_then(|n| self.by_name.get(&n)) else { return Some(Vec::new()) };
        let every = self.all.is_subset(series);
        let among = values.iter().filter(|(_, ids)| every || !ids.is_disjoint(series));
        (values.len() <= most).then(|| among.map(|(&value, _)| symbols.resolve(value)).collect())
    }
}

/// Which values of its label decide a matcher: those that it takes if it does not take "",
/// those it refuses if it does. The same ones for `=` and `!=`, `=~` and `!~`.
enum Deciding<'a> {
    /// One value (`=` and `!=` on a value).
    Value(&'a str),
    /// A few exact values, "" not among them (`api|web`).
    Listed(&'a [String]),
    /// None (`.*`).
    None,
    /// Every value but "" (`.+`, `=""`, `!=""`).
    NotEmpty,
    /// Those the pattern is tried on one by one.
    EachTried,
}

fn deciding(m: &Matcher) -> Deciding<'_> {
    match (m.op, m.regex_shape()) {
        (MatchOp::Equal | MatchOp::NotEqual, _) if !m.value.is_empty() => Deciding::Value(&m.value),
        (MatchOp::Equal | MatchOp::NotEqual, _) => Deciding::NotEmpty,
        (_, Some(Shape::OneOf(listed))) if !listed.contains(&String::new()) => Deciding::Listed(listed),
        (_, Some(Shape::Any)) => Deciding::None,
        (_, Some(Shape::NotEmpty)) => Deciding::NotEmpty,
        _ => Deciding::EachTried,
    }
}

/// A selection from [`Postings`] that may go in steps, so that a selector of many patterns
/// over a label of a great many values does not hold the shard's thread while each value is
/// tried: a step tries about `budget` values.
///
/// Cheap, selective matchers go first (equality on a value is one look-up). A matcher that
/// takes "" (`!=`, most `!~`) removes the series whose value fails it from those picked so
/// far, in place, as upstream subtracts them: a selector of thousands of them costs thousands
/// of look-ups, not copies of every series. A matcher repeated counts once.
///
/// A head's postings may change between steps. The selection is then of the series its
/// matchers saw: a series added after a matcher was tried is missed (it came after the
/// selection began), and one removed may be in it (readers skip it).
pub struct Selecting<'m> {
    matchers: Vec<&'m Matcher>,
    next: usize,
    picked: Option<RoaringBitmap>,
    scan: Option<Scan>,
}

/// A matcher being tried value by value.
struct Scan {
    /// The values (symbol ids) of its label still to try.
    values: Vec<u32>,
    /// The series of the values tried that decide it.
    decided: RoaringBitmap,
    /// Every series as the scan began, when the matcher is the first and takes "".
    all: Option<RoaringBitmap>,
}

impl Scan {
    fn start(postings: &Postings, symbols: &Symbols, m: &Matcher, keep_all: bool) -> Scan {
        Scan {
            values: symbols.lookup(&m.name).map_or_else(Vec::new, |n| postings.values_of(n)),
            decided: RoaringBitmap::new(),
            all: keep_all.then(|| postings.all.clone()),
        }
    }

    /// Tries up to `budget` more values, taking what it tried from `budget`; true once every
    /// value was tried. A value gone meanwhile is skipped.
    fn go_on(&mut self, postings: &Postings, symbols: &Symbols, m: &Matcher, budget: &mut usize) -> bool {
        let takes_empty = m.matches("");
        let values = symbols.lookup(&m.name).and_then(|n| postings.by_name.get(&n));
        // Where every value but "" decides, values are told apart without running the pattern.
        let not_empty = matches!(deciding(m), Deciding::NotEmpty).then(|| symbols.lookup(""));
        let from = self.values.len().saturating_sub(*budget);
        *budget -= self.values.len() - from;
        let deciding = self.values.drain(from..).filter_map(|value| {
            let series = values.and_then(|v| v.get(&value))?;
            let decides = match not_empty {
                Some(empty) => Some(value) != empty,
                None => m.matches(symbols.resolve(value)) != takes_empty,
            };
            decides.then_some(series)
        });
        self.decided |= deciding.union();
        self.values.is_empty()
    }
}

impl<'m> Selecting<'m> {
    pub fn new(matchers: &'m [Matcher]) -> Selecting<'m> {
        let mut ordered: Vec<&Matcher> = matchers.iter().collect();
        ordered.sort_by_key(|m| match m.op {
            MatchOp::Equal if !m.value.is_empty() => 0,
            MatchOp::Regex => 1,
            _ => 2,
        });
        let mut seen = HashSet::new();
        ordered.retain(|m| seen.insert((&m.name, m.op, &m.value)));
        Selecting { matchers: ordered, next: 0, picked: None, scan: None }
    }

    /// Goes on for about `budget` (at least one) values tried; the series picked, once done
    /// (not to be stepped again after).
    pub fn step(&mut self, postings: &Postings, symbols: &Symbols, budget: usize) -> Option<RoaringBitmap> {
        debug_assert!(self.next <= self.matchers.len(), "a selection stepped after it was done");
        let mut budget = budget.max(1);
        while let Some(&m) = self.matchers.get(self.next) {
            let takes_empty = m.matches("");
            let at_once = if self.scan.is_none() { postings.at_once(symbols, m) } else { None };
            let (decided, all) = match at_once {
                Some(decided) => {
                    budget = budget.saturating_sub(1);
                    (decided, None)
                }
                None => {
                    let first = self.picked.is_none();
                    let scan = self.scan.get_or_insert_with(|| Scan::start(postings, symbols, m, first && takes_empty));
                    if !scan.go_on(postings, symbols, m, &mut budget) {
                        return None;
                    }
                    let Scan { decided, all, .. } = self.scan.take().expect("the scan just ended");
                    (decided, all)
                }
            };
            let picked = match (self.picked.take(), takes_empty) {
                (None, false) => decided,
                (None, true) => all.as_ref().unwrap_or(&postings.all) - decided,
                (Some(acc), false) => acc & decided,
                (Some(mut acc), true) => {
                    acc -= decided;
                    acc
                }
            };
            self.next += 1;
            if picked.is_empty() {
                self.next = self.matchers.len() + 1;
                return Some(picked);
            }
            self.picked = Some(picked);
            if budget == 0 && self.next < self.matchers.len() {
                return None;
            }
        }
        self.next = self.matchers.len() + 1;
        Some(self.picked.take().unwrap_or_else(|| postings.all.clone()))
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

    /// Names and values among every series come from the index's keys, among some from the
    /// postings lists that hold one of them; past the lists allowed to look at, None.
    #[test]
    fn label_names_and_values_among_series_from_the_postings_within_a_bound() {
        let (s, p) = index(&[&[("a", "1"), ("b", "x")], &[("a", "2")], &[("a", "3"), ("c", "y")]]);
        fn sorted(listed: Option<Vec<&str>>) -> Option<String> {
            listed.map(|mut v| (v.sort(), v.join(",")).1)
        }
        let every: RoaringBitmap = (0..3).collect();
        let some: RoaringBitmap = [1, 2].into_iter().collect();
        assert_eq!(sorted(p.label_names_among(&s, &every, 3)), Some("a,b,c".into()));
        assert_eq!(p.label_names_among(&s, &every, 2), None, "three names");
        assert_eq!(sorted(p.label_names_among(&s, &some, 5)), Some("a,c".into()));
        assert_eq!(p.label_names_among(&s, &some, 2), None, "a's first value, then b's and c's lists");
        assert_eq!(sorted(p.label_values_among(&s, "a", &some, 3)), Some("2,3".into()));
        assert_eq!(sorted(p.label_values_among(&s, "a", &every, 3)), Some("1,2,3".into()));
        assert_eq!(p.label_values_among(&s, "a", &some, 2), None, "a has three values");
        assert_eq!(p.label_values_among(&s, "nope", &some, 0), Some(Vec::new()));
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

    /// The selection of `ms` stepped with `budget`, and how many steps it took.
    fn stepped(p: &Postings, s: &Symbols, ms: &[Matcher], budget: usize) -> (Vec<u32>, usize) {
        let mut selecting = Selecting::new(ms);
        let mut steps = 1;
        loop {
            match selecting.step(p, s, budget) {
                Some(picked) => return (picked.iter().collect(), steps),
                None => steps += 1,
            }
        }
    }

    #[test]
    fn a_selection_in_steps_picks_what_one_in_one_go_picks() {
        let series: Vec<Vec<(String, String)>> = (0..40)
            .map(|i| {
                let mut labels = vec![("__name__".to_string(), format!("m{}", i % 3)), ("i".into(), format!("v{i}"))];
                if i % 4 != 0 {
                    labels.push(("job".into(), format!("j{}", i % 5)));
                }
                labels
            })
            .collect();
        let pairs: Vec<Vec<(&str, &str)>> =
            series.iter().map(|l| l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()).collect();
        let (s, p) = index(&pairs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap();
        let selectors = [
            vec![m("i", MatchOp::Regex, "v1.*")],
            vec![m("i", MatchOp::NotRegex, "v1.*")],
            vec![m("job", MatchOp::NotRegex, "j[12]"), m("i", MatchOp::Regex, "v[0-2].")],
            vec![
                m("__name__", MatchOp::Equal, "m1"),
                m("i", MatchOp::Regex, "v.*[3-7]"),
                m("job", MatchOp::Regex, ".+"),
            ],
            vec![m("job", MatchOp::NotEqual, "j1"), m("i", MatchOp::NotRegex, ".*9")],
            vec![m("i", MatchOp::Regex, "v9.*"), m("i", MatchOp::Regex, "x.*")],
            vec![],
        ];
        for ms in &selectors {
            let whole = ids(&p, &s, ms);
            for budget in [1, 3, 7, 1000] {
                let (picked, steps) = stepped(&p, &s, ms, budget);
                assert_eq!(picked, whole, "{ms:?} by {budget}");
                if budget == 1 && ms.iter().any(|m| m.name == "i" && m.op != MatchOp::Equal) {
                    assert!(steps >= 40, "{ms:?}: {steps} steps of one value over the 40 of `i`");
                }
            }
        }
        // `i`'s 40 values are tried against the pattern; `job`'s 5 are compared with "" (`.+`),
        // which costs an eighth; `=` is one look-up.
        assert_eq!(p.selection_cost(&s, &selectors[3]), 40);
        // `j[12]` is two values, looked up.
        assert_eq!(p.selection_cost(&s, &selectors[2]), 40);
    }

    /// A series added while the first matcher, which takes "", is tried value by value is not
    /// picked: its value was never tried.
    #[test]
    fn a_series_added_during_a_stepped_selection_is_left_out() {
        let (mut s, mut p) = index(&[&[("job", "api")], &[("job", "web")], &[("job", "db")]]);
        let ms = [Matcher::new("job", MatchOp::NotRegex, "w.*").unwrap()];
        let mut selecting = Selecting::new(&ms);
        assert_eq!(selecting.step(&p, &s, 1), None);
        let pair = [(s.intern("job"), s.intern("wiki"))];
        p.add(3, &pair);
        let picked: Vec<u32> = loop {
            if let Some(picked) = selecting.step(&p, &s, 1) {
                break picked.iter().collect();
            }
        };
        assert_eq!(picked, vec![0, 2]);
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
