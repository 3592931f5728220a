//! Evaluator tests: known answers, and identical answers on 1 and on several shards.

use super::*;
use crate::promql::{parse, parse_with, plan, ParseOptions};

/// One shard's series, held as plain vectors (the storage engine is not this crate's). Reads
/// return only the labels asked for, as the shards' head does.
struct Shard(Vec<SeriesSamples>);

impl SeriesSource for Shard {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let matching = self.0.iter().filter(|s| matchers.iter().all(|m| m.matches(s.labels.get(&m.name))));
        Ok(matching
            .map(|s| SeriesSamples {
                labels: s.labels.filtered(|n| labels.keeps(n)),
                samples: s.samples.iter().copied().filter(|x| (mint..=maxt).contains(&x.t)).collect(),
                histograms: s.histograms.iter().filter(|x| (mint..=maxt).contains(&x.t)).cloned().collect(),
            })
            .filter(|s| !s.is_empty())
            .collect())
    }
}

/// Loads `series` (labels, samples in time order) into `shards` shards, each series on its owner.
fn heads(series: &[(Labels, Vec<(i64, f64)>)], shards: usize) -> Vec<Shard> {
    let mut heads: Vec<Shard> = (0..shards).map(|_| Shard(Vec::new())).collect();
    for (labels, samples) in series {
        let samples = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        heads[labels.owner(shards)].0.push(SeriesSamples::floats(labels.clone(), samples));
    }
    heads
}

/// Runs `query` (every optional syntax enabled) across `heads`, one head per shard.
fn query(heads: &[Shard], query: &str, params: EvalParams) -> Result<QueryResult, EvalError> {
    let expr = parse_with(query, ParseOptions::all()).unwrap();
    let p = plan(&expr, &params)?;
    let outputs = heads.iter().map(|h| evaluate_fragments(&p, &params, h, &p.limits)).collect::<Result<Vec<_>, _>>()?;
    p.finish(&params, outputs)
}

fn run(heads: &[Shard], q: &str, params: EvalParams) -> Result<Value, EvalError> {
    query(heads, q, params).map(|r| r.value)
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Counters `http_requests_total{job, instance}` growing at `rate` per second, every 15 s for 1 h.
fn counters() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut out = Vec::new();
    for (job, n) in [("api", 7), ("web", 5)] {
        for i in 0..n {
            let instance = format!("host{i}:9100");
            let rate = (i + 1) as f64;
            let samples = (0..240).map(|k| (k * 15_000, rate * 15.0 * k as f64)).collect();
            out.push((lbl(&[("__name__", "http_requests_total"), ("job", job), ("instance", &instance)]), samples));
        }
        let gauge = (0..240).map(|k| (k * 15_000, (k % 7) as f64 + 0.1)).collect();
        out.push((lbl(&[("__name__", "temperature"), ("job", job)]), gauge));
    }
    out
}

fn scalar_of(v: &Value) -> Vec<(Labels, Vec<Option<f64>>)> {
    match v {
        Value::Vector(s) => s.iter().map(|s| (s.labels.clone(), s.values.clone())).collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[test]
fn rate_of_a_steady_counter_is_its_slope() {
    let h = heads(&counters(), 1);
    let v = run(
        &h,
        "rate(http_requests_total{job=\"api\",instance=\"host2:9100\"}[5m])",
        EvalParams::instant(1_800_000, 300_000),
    )
    .unwrap();
    let s = scalar_of(&v);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, lbl(&[("job", "api"), ("instance", "host2:9100")]), "rate drops the metric name");
    assert!((s[0].1[0].unwrap() - 3.0).abs() < 1e-9, "{:?}", s[0].1);
}

#[test]
fn increase_extrapolates_and_handles_resets() {
    let samples: Vec<(i64, f64)> = vec![(0, 0.0), (15_000, 10.0), (30_000, 20.0), (45_000, 5.0), (60_000, 15.0)];
    let h = heads(&[(lbl(&[("__name__", "c")]), samples)], 1);
    let v = run(&h, "increase(c[1m])", EvalParams::instant(60_000, 300_000)).unwrap();
    // Window (0, 60s]: samples at 15..60s: 10,20,5,15 → raw increase (15-10)+20 = 25 over 45 s.
    // The 15 s gap to the window start is under 1.1× the 15 s spacing, so it is extrapolated in
    // full (the zero point, 18 s back, is further): 25 × 60 / 45.
    let got = scalar_of(&v)[0].1[0].unwrap();
    assert!((got - 25.0 * 60.0 / 45.0).abs() < 1e-9, "{got}");
}

#[test]
fn rate_of_a_gauge_name_carries_upstreams_info() {
    let h = heads(&counters(), 2);
    let p = EvalParams::instant(1_800_000, 300_000);
    let infos = |q: &str| Annotations::rendered(&query(&h, q, p).unwrap().annotations.infos, q);
    assert_eq!(
        infos("sum(rate(temperature[5m]))"),
        ["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temperature\" (1:10)"]
    );
    assert_eq!(
        infos("rate(http_requests_total[5m])\n + rate(temperature[1m])\n + rate(temperature[5m])"),
        ["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temperature\" (2:9)"],
        "one info for both, pointing at the first"
    );
    assert!(infos("rate(http_requests_total[5m])").is_empty());
    assert!(infos("irate(temperature[5m])").is_empty(), "only rate and increase");
}

#[test]
fn histogram_quantile_ignores_float_noise_but_reports_real_decreases() {
    let p = EvalParams::instant(0, 300_000);
    let run_with = |second: f64| {
        let series: Vec<(Labels, Vec<(i64, f64)>)> = [("1", 10.0), ("2", second), ("+Inf", 20.0)]
            .iter()
            .map(|&(le, v)| (lbl(&[("__name__", "b_bucket"), ("le", le)]), vec![(0, v)]))
            .collect();
        query(&heads(&series, 1), "histogram_quantile(0.5, b_bucket)", p).unwrap()
    };
    let noisy = run_with(10.0 * (1.0 - 1e-15));
    assert_eq!(scalar_of(&noisy.value)[0].1[0], Some(1.0));
    assert!(noisy.annotations.infos.is_empty(), "{:?}", noisy.annotations);
    let decreasing = run_with(9.0);
    assert_eq!(scalar_of(&decreasing.value)[0].1[0], Some(1.0));
    assert_eq!(decreasing.annotations.infos.len(), 1, "{:?}", decreasing.annotations);
}

#[test]
fn irate_uses_the_last_two_samples() {
    let samples = vec![(0, 0.0), (10_000, 100.0), (20_000, 150.0)];
    let h = heads(&[(lbl(&[("__name__", "c")]), samples)], 1);
    let v = run(&h, "irate(c[1m])", EvalParams::instant(20_000, 300_000)).unwrap();
    assert_eq!(scalar_of(&v)[0].1[0], Some(5.0));
}

#[test]
fn lookback_offset_at_and_staleness() {
    let samples = vec![(0, 1.0), (60_000, 2.0), (120_000, crate::value::stale_nan())];
    let h = heads(&[(lbl(&[("__name__", "g")]), samples)], 1);
    let params = EvalParams { start: 0, end: 480_000, step: 60_000, lookback: 300_000 };
    let v = run(&h, "g", params).unwrap();
    assert_eq!(scalar_of(&v)[0].1, vec![Some(1.0), Some(2.0), None, None, None, None, None, None, None]);
    let v = run(&h, "g offset 1m", params).unwrap();
    assert_eq!(scalar_of(&v)[0].1[..4], [None, Some(1.0), Some(2.0), None]);
    let v = run(&h, "g @ 60", params).unwrap();
    assert!(scalar_of(&v)[0].1.iter().all(|x| *x == Some(2.0)));
    let v = run(&h, "g @ end()", params).unwrap();
    assert!(scalar_of(&v).is_empty(), "stale at the end");
    // Lookback: a sample older than 5m is not seen.
    let h = heads(&[(lbl(&[("__name__", "g")]), vec![(0, 1.0)])], 1);
    let v = run(&h, "g", EvalParams { start: 0, end: 360_000, step: 60_000, lookback: 300_000 }).unwrap();
    assert_eq!(scalar_of(&v)[0].1, vec![Some(1.0), Some(1.0), Some(1.0), Some(1.0), Some(1.0), None, None]);
}

#[test]
fn aggregations_and_arithmetic() {
    let h = heads(&counters(), 1);
    let p = EvalParams::instant(1_800_000, 300_000);
    let v = run(&h, "sum by (job) (rate(http_requests_total[5m]))", p).unwrap();
    let s = scalar_of(&v);
    assert_eq!(s[0].0, lbl(&[("job", "api")]));
    assert!((s[0].1[0].unwrap() - 28.0).abs() < 1e-9);
    assert!((s[1].1[0].unwrap() - 15.0).abs() < 1e-9);
    let v = run(&h, "count without (instance) (http_requests_total)", p).unwrap();
    assert_eq!(scalar_of(&v)[0], (lbl(&[("job", "api")]), vec![Some(7.0)]));
    let v = run(&h, "max(http_requests_total) - min(http_requests_total)", p).unwrap();
    assert_eq!(scalar_of(&v)[0].1[0], Some(7.0 * 15.0 * 120.0 - 15.0 * 120.0));
    let v = run(&h, "avg(temperature) * 2", p).unwrap();
    assert_eq!(scalar_of(&v)[0].1[0], Some(2.0 * (1.0 + 0.1)));
    let v = run(&h, "2 ^ 3 ^ 2", p).unwrap();
    assert_eq!(v, Value::Scalar(vec![512.0]));
    let v = run(&h, "-2 ^ 2", p).unwrap();
    assert_eq!(v, Value::Scalar(vec![-4.0]));
}

#[test]
fn comparisons_filter_or_return_bool() {
    let h = heads(&counters(), 1);
    let p = EvalParams::instant(1_800_000, 300_000);
    let v = run(&h, "temperature > 1", p).unwrap();
    assert_eq!(scalar_of(&v).len(), 2);
    assert_eq!(scalar_of(&v)[0].0.metric_name(), "temperature", "a filter keeps the name");
    let v = run(&h, "temperature > bool 100", p).unwrap();
    assert_eq!(scalar_of(&v)[0], (lbl(&[("job", "api")]), vec![Some(0.0)]));
    let v = run(&h, "5 < temperature", p).unwrap();
    assert!(scalar_of(&v).is_empty());
    assert_eq!(run(&h, "1 < bool 2", p).unwrap(), Value::Scalar(vec![1.0]));
}

#[test]
fn one_to_one_vector_matching() {
    let h = heads(&counters(), 1);
    let p = EvalParams::instant(1_800_000, 300_000);
    let v = run(&h, "http_requests_total / on(job) group_left group by (job) (temperature)", p).unwrap();
    assert_eq!(scalar_of(&v).len(), 12, "group_left keeps every series of the many side");
    let v = run(&h, "sum by (job) (http_requests_total) / on(job) sum by (job) (temperature)", p).unwrap();
    assert_eq!(scalar_of(&v).len(), 2);
    let v = run(&h, "http_requests_total + ignoring(instance) temperature", p).unwrap_err();
    assert!(v.to_string().starts_with("multiple matches for labels"), "{v}");
    let v = run(&h, "temperature + ignoring(instance) http_requests_total", p).unwrap_err();
    assert!(v.to_string().starts_with("found duplicate series for the match group"), "{v}");
    let v = run(&h, "rate(http_requests_total[5m]) * on(job, instance) http_requests_total", p).unwrap();
    assert_eq!(scalar_of(&v).len(), 12);
    assert_eq!(scalar_of(&v)[0].0.len(), 2, "on() keeps only the matching labels");
}

#[test]
fn duplicate_label_sets_after_dropping_the_name_are_an_error() {
    let h = heads(&counters(), 1);
    let v = run(&h, "rate({job=\"api\",instance=\"\"}[5m])", EvalParams::instant(1_800_000, 300_000)).unwrap();
    assert_eq!(scalar_of(&v).len(), 1);
    let series = vec![
        (lbl(&[("__name__", "a"), ("x", "1")]), vec![(0, 1.0)]),
        (lbl(&[("__name__", "b"), ("x", "1")]), vec![(0, 2.0)]),
    ];
    let h = heads(&series, 3);
    let e = run(&h, "-{x=\"1\"}", EvalParams::instant(0, 300_000)).unwrap_err();
    assert_eq!(e.to_string(), "vector cannot contain metrics with the same labelset");
    // Aggregated on one shard: the shard reads every label, so it still sees the two meet.
    let h = heads(&series, 1);
    let e = run(&h, "sum by (x) (-{x=\"1\"})", EvalParams::instant(0, 300_000)).unwrap_err();
    assert_eq!(e.to_string(), "vector cannot contain metrics with the same labelset");
    // Where they cannot meet, the shard reads only `x` and the name, and adds both.
    let v = run(&h, "count by (x) ({x=\"1\"})", EvalParams::instant(0, 300_000)).unwrap();
    assert_eq!(scalar_of(&v), [(lbl(&[("x", "1")]), vec![Some(2.0)])]);
}

#[test]
fn instant_matrix_selection_returns_raw_samples() {
    let h = heads(&counters(), 1);
    let v = run(&h, "temperature{job=\"web\"}[1m]", EvalParams::instant(60_000, 300_000)).unwrap();
    let Value::Range(r) = v else { panic!("expected a range vector") };
    let m = r.first_window();
    assert_eq!(
        m[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(),
        vec![15_000, 30_000, 45_000, 60_000],
        "left-open window"
    );
}

#[test]
fn answers_are_identical_on_one_and_many_shards() {
    let series = counters();
    let one = heads(&series, 1);
    let params = EvalParams { start: 600_000, end: 3_000_000, step: 60_000, lookback: 300_000 };
    for query in [
        "http_requests_total",
        "sum(rate(http_requests_total[5m]))",
        "sum by (job) (rate(http_requests_total[5m]))",
        "avg without (instance) (increase(http_requests_total[10m]))",
        "max(irate(http_requests_total[1m])) / count(http_requests_total)",
        "sum(http_requests_total * 0.1) + sum by (job) (temperature)",
        "min by (job) (-temperature)",
        "rate(http_requests_total[5m]) > 3",
        "sum by (job) (increase(http_requests_total[5m] anchored))",
        "rate(http_requests_total[5m] smoothed)",
        "changes(temperature[3m] anchored)",
        "temperature smoothed offset 10s",
    ] {
        let expected = run(&one, query, params).unwrap();
        for shards in [2, 3, 5] {
            let got = run(&heads(&series, shards), query, params).unwrap();
            assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{query} on {shards} shards");
        }
    }
}

#[test]
fn batched_aggregations_answer_as_when_their_series_are_evaluated_whole() {
    let series = counters();
    let params = EvalParams { start: 600_000, end: 3_000_000, step: 60_000, lookback: 300_000 };
    let run = |query: &str, shards: usize, slots: usize| {
        let mut p = plan(&parse(query).unwrap(), &params).unwrap();
        p.limits = Limits::default().with_batch_slots(slots);
        let heads = heads(&series, shards);
        let outputs = heads.iter().map(|h| evaluate_fragments(&p, &params, h, &p.limits).unwrap()).collect();
        let batched: Vec<bool> = p.fragments.iter().map(|f| f.batched).collect();
        (format!("{:?}", p.finish(&params, outputs).unwrap()), batched)
    };
    for (query, batched) in [
        ("sum by (job) (rate(http_requests_total[5m]))", true),
        ("count(temperature)", true),
        ("stddev without (instance) (temperature offset 1m)", true),
        ("avg(max_over_time(rate(http_requests_total[5m])[10m:1m]))", true),
        ("min(timestamp(temperature))", true),
        // Series of several names without theirs could collide, which needs them all at once.
        ("sum(rate({__name__=~\"http_requests_total\"}[5m]))", false),
        ("max(label_replace(temperature, \"j\", \"$1\", \"job\", \"(.*)\"))", false),
        // A shard's topk keeps the best of each batch, and the best of those.
        ("topk(2, temperature)", true),
        ("bottomk by (job) (3, rate(http_requests_total[5m]))", true),
        ("topk(2, -{__name__=~\"temperature\"})", false),
    ] {
        let whole = run(query, 1, BATCH_SLOTS);
        assert_eq!(whole.1, [batched], "{query}");
        // One series a batch (a slot each is less than one series' steps).
        for shards in [1, 3] {
            assert_eq!(run(query, shards, 1), whole, "{query} on {shards} shards");
        }
    }
}

/// A shard whose streamed reads fail with `StorageChanged` after their first batch, `fails`
/// times, as a shard's does when the head is cut into a block under it.
struct Changing {
    shard: Shard,
    fails: std::cell::Cell<usize>,
}

/// The read of `Changing`: one batch, then the failure.
struct FailsAfterOne(Option<Vec<SeriesSamples>>);

impl SeriesBatches for FailsAfterOne {
    fn next_batch(&mut self) -> Result<(Vec<SeriesSamples>, bool), EvalError> {
        self.0.take().map(|batch| (batch, false)).ok_or(EvalError::StorageChanged)
    }
}

impl SeriesSource for Changing {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64, l: &Projection) -> Result<Vec<SeriesSamples>, EvalError> {
        self.shard.select(m, mint, maxt, l)
    }

    fn select_batches<'a>(
        &'a self,
        m: &[Matcher],
        (mint, maxt): (i64, i64),
        _newest: bool,
        l: &Projection,
        size: usize,
    ) -> Result<Box<dyn SeriesBatches + 'a>, EvalError> {
        let mut series = self.select(m, mint, maxt, l)?;
        if self.fails.get() == 0 {
            return Ok(Box::new(batches::Chunked::new(series, size)));
        }
        self.fails.set(self.fails.get() - 1);
        series.truncate(size);
        Ok(Box::new(FailsAfterOne(Some(series))))
    }
}

#[test]
fn a_batched_fragment_folds_a_new_read_when_the_storage_changed_under_it() {
    let series = counters();
    let params = EvalParams { start: 600_000, end: 3_000_000, step: 60_000, lookback: 300_000 };
    let query = "sum by (job) (rate(http_requests_total[5m]))";
    let p = plan(&parse(query).unwrap(), &params).unwrap();
    let limits = || Limits::new(1_000_000, Interrupt::default()).with_batch_slots(1);
    let shard = heads(&series, 1).pop().unwrap();
    let unchanged = limits();
    let outputs = evaluate_fragments(&p, &params, &shard, &unchanged).unwrap();
    let loaded = outputs[0].samples;
    let whole = p.finish(&params, vec![outputs]).unwrap();
    // What the first batch of each failed read folded is dropped, and its samples not counted.
    let changing = Changing { shard, fails: MAX_READ_RESTARTS.into() };
    let restarted = limits();
    let outputs = evaluate_fragments(&p, &params, &changing, &restarted).unwrap();
    assert_eq!((outputs[0].samples, restarted.left()), (loaded, unchanged.left()));
    assert_eq!(p.finish(&params, vec![outputs]).unwrap().value, whole.value);
    // A storage that keeps changing fails the query.
    changing.fails.set(MAX_READ_RESTARTS + 1);
    let failed = evaluate_fragments(&p, &params, &changing, &limits());
    assert!(matches!(failed, Err(EvalError::StorageChanged)), "{failed:?}");
}

#[test]
fn limitk_takes_the_first_series_in_label_order_on_any_shard_count() {
    let series = counters();
    let p = EvalParams::instant(1_800_000, 300_000);
    for shards in [1, 3] {
        let h = heads(&series, shards);
        let v = run(&h, "limitk by (job) (2, http_requests_total)", p).unwrap();
        let mut instances: Vec<String> =
            scalar_of(&v).iter().map(|(l, _)| format!("{}/{}", l.get("job"), l.get("instance"))).collect();
        instances.sort();
        assert_eq!(instances, ["api/host0:9100", "api/host1:9100", "web/host0:9100", "web/host1:9100"]);
        assert_eq!(scalar_of(&v)[0].0.metric_name(), "http_requests_total", "limitk keeps the name");
        assert!(scalar_of(&run(&h, "limitk(0, http_requests_total)", p).unwrap()).is_empty());
        let e = run(&h, "limitk(NaN, http_requests_total)", p).unwrap_err();
        assert_eq!(e.to_string(), "Parameter value is NaN");
    }
}

#[test]
fn limit_ratio_splits_series_into_complements() {
    let h = heads(&counters(), 3);
    let p = EvalParams { start: 600_000, end: 1_200_000, step: 60_000, lookback: 300_000 };
    let count = |q: &str| scalar_of(&run(&h, &format!("count({q})"), p).unwrap()).first().map(|s| s.1[0]);
    for r in [0.2, 0.5, 0.8] {
        let (a, b) = (
            format!("limit_ratio({r}, http_requests_total)"),
            format!("limit_ratio({}, http_requests_total)", r - 1.0),
        );
        assert_eq!(count(&format!("{a} or {b}")), Some(Some(12.0)), "ratio {r}: together all series");
        assert_eq!(count(&format!("{a} and {b}")), None, "ratio {r}: no series in both");
    }
    assert_eq!(count("limit_ratio(0, http_requests_total)"), None);
    let q = "count(limit_ratio(1.5, http_requests_total))";
    let capped = query(&h, q, p).unwrap();
    assert_eq!(scalar_of(&capped.value)[0].1[0], Some(12.0));
    assert_eq!(
        Annotations::rendered(&capped.annotations.warnings, q),
        ["PromQL warning: ratio value should be between -1 and 1, got 1.5, capping to 1 (1:19)"]
    );
    assert_eq!(run(&h, "limit_ratio(NaN, temperature)", p).unwrap_err().to_string(), "Ratio value is NaN");
}

#[test]
fn max_samples_stops_a_query_that_loads_too_much() {
    let series = counters();
    let params = EvalParams { start: 600_000, end: 3_000_000, step: 60_000, lookback: 300_000 };
    let query = "sum(rate(http_requests_total[10m]))";
    for shards in [1, 3] {
        let heads = heads(&series, shards);
        let mut p = plan(&parse(query).unwrap(), &params).unwrap();
        // 12 series, 40 samples in each 10m window (the peak a step holds), 480 in all, and
        // 12 results with a value at each of 41 steps, 492 points.
        p.limits = Limits::new(900, Interrupt::default());
        let outputs: Result<Vec<Vec<FragmentOutput>>, EvalError> =
            heads.iter().map(|h| evaluate_fragments(&p, &params, h, &p.limits)).collect();
        // The shards count together: one of them stops as the sum passes the limit, before
        // the coordinator sees any answer (each shard alone loads 972 / shards).
        assert_eq!(outputs.unwrap_err(), EvalError::TooManySamples, "{shards} shards");
        p.limits = Limits::new(1000, Interrupt::default());
        let outputs: Vec<Vec<FragmentOutput>> =
            heads.iter().map(|h| evaluate_fragments(&p, &params, h, &p.limits).unwrap()).collect();
        assert!(p.finish(&params, outputs).is_ok(), "{shards} shards");
    }
}

#[test]
fn count_values_counts_the_slots_of_each_series_it_makes_against_max_samples() {
    let params = EvalParams { start: 0, end: 2_000_000, step: 1000, lookback: 300_000 };
    let run = |query: &str| {
        let mut p = plan(&parse(query).unwrap(), &params).unwrap();
        p.limits = Limits::new(50_000, Interrupt::default());
        let outputs: Result<Vec<_>, _> =
            heads(&[], 1).iter().map(|h| evaluate_fragments(&p, &params, h, &p.limits)).collect();
        outputs.and_then(|outputs| p.finish(&params, outputs))
    };
    // A new value at each of 2,001 steps: as many series of 2,001 slots each.
    assert_eq!(run("count_values(\"v\", vector(time()))").unwrap_err(), EvalError::TooManySamples);
    assert!(run("count_values(\"v\", vector(1))").is_ok());
}

#[test]
fn most_steps_counts_the_steps_of_subqueries_inside_fragments() {
    let day = 86_400_000;
    let at = EvalParams::instant(30 * day, 300_000);
    let steps = |query: &str, params: &EvalParams| plan(&parse(query).unwrap(), params).unwrap().most_steps(params);
    assert_eq!(steps("sum(rate(x[5m]))", &at), 1);
    // 30 days at one step an hour, both ends included, inside the shards' fragment.
    assert_eq!(steps("max_over_time(up[30d:1h])", &at), 721);
    let month = EvalParams { start: 0, end: 30 * day, step: day, lookback: 300_000 };
    assert_eq!(steps("sum(x)", &month), 31);
}

#[test]
fn label_functions_refuse_values_of_more_than_1_mib_before_making_them() {
    let at = EvalParams::instant(0, 300_000);
    let long = "x".repeat(10_000);
    let joined = format!("label_join(vector(1), \"a\", \"{long}\", \"b\", \"b\")");
    let value = run(&heads(&[], 1), &joined, at).unwrap();
    assert!(format!("{value:?}").contains(&long));
    // 2,000 copies of a 10,000-byte value: 20 MB.
    let repeated = format!("label_replace({joined}, \"a\", \"{}\", \"a\", \"(.*)\")", "$1".repeat(2000));
    let err = run(&heads(&[], 1), &repeated, at).unwrap_err().to_string();
    assert!(err.contains("label_replace(): the label value would be longer than 1048576 bytes"), "{err}");
    let sources = vec!["\"b\""; 2000].join(", ");
    let err = run(&heads(&[], 1), &format!("label_join(vector(1), \"a\", \"{long}\", {sources})"), at);
    assert!(err.unwrap_err().to_string().contains("label_join(): the label value would be longer"));
}

/// As upstream (`model.UTF8Validation`): a label PromQL makes may have any UTF-8 name, which
/// remote write stores too; an empty name or bytes that are not UTF-8 (`"\xff"`) are refused.
#[test]
fn label_functions_make_utf8_names() {
    let at = EvalParams::instant(0, 300_000);
    let shown = |q: &str| format!("{:?}", run(&heads(&[], 1), q, at).unwrap());
    assert!(shown(r#"label_replace(vector(1), "service.name", "api", "", "")"#).contains(r#""service.name""#));
    let joined = shown(r#"label_join(label_replace(vector(1), "c.d", "v", "", ""), "a b", "-", "c.d")"#);
    assert!(joined.contains(r#"name: "a b", value: "v""#), "{joined}");
    assert!(shown(r#"count_values("val.ue", vector(1))"#).contains(r#""val.ue""#));
    let refused = |q: &str| run(&heads(&[], 1), q, at).unwrap_err().to_string();
    assert!(refused(r#"label_replace(vector(1), "\xff", "", "", "")"#).contains("invalid destination label name"));
    assert!(refused(r#"label_join(vector(1), "d", "-", "")"#).contains("invalid source label name in label_join(): "));
    assert!(refused(r#"count_values("", vector(1))"#).contains("invalid label name"));
}

/// Stepping through a series' windows gives each step's window as a look-up would, with
/// windows that skip samples, hold none, or end at one time (under `@`).
#[test]
fn windows_in_step_order_are_the_windows_of_each_step() {
    let series = SeriesSamples::floats(
        Labels::default(),
        [0, 10, 11, 30, 31, 32, 75, 90].iter().map(|&t| Sample { t, v: t as f64 }).collect(),
    );
    for (range, ends) in [(15, vec![-5, 0, 10, 20, 30, 40, 50, 80, 100]), (1, vec![31, 31, 31]), (100, vec![10, 90])] {
        let r = RangeVector { series: vec![series.clone()], range, ends, reach: None };
        let stepped: Vec<&[Sample]> = r.windows(&series).collect();
        let looked_up: Vec<&[Sample]> = (0..r.ends.len()).map(|i| r.window(&series, i)).collect();
        assert_eq!(stepped, looked_up, "range {range}");
    }
}

/// The peak a range vector is charged is the largest window any step sees, as stepping
/// through every window finds it, with windows that skip samples, overlap, hold none, or end
/// at one time, with and without a reach past the window; and over a frame of a million steps
/// (found with a binary search per sample: walking the steps held a shard for seconds).
#[test]
fn peak_samples_are_the_largest_window_of_any_step() {
    let times = [0, 10, 11, 30, 31, 32, 33, 75, 90, 91, 92, 93, 150];
    let series = SeriesSamples::floats(Labels::default(), times.iter().map(|&t| Sample { t, v: 1.0 }).collect());
    let reaches = [None, Some(Reach { extension: Extension::Anchored, lookback: 20 })];
    for (range, ends) in [
        (15, vec![-5, 0, 10, 20, 30, 40, 50, 80, 100]),
        (1, vec![31, 31, 31]),
        (100, vec![10, 90]),
        (5, (0..200).step_by(3).collect()),
        (40, vec![200, 300]),
    ] {
        for reach in reaches {
            let r = RangeVector { series: vec![series.clone()], range, ends: ends.clone(), reach };
            let stepped = (0..r.ends.len()).map(|i| r.window(&series, i).len()).max().unwrap_or(0);
            assert_eq!(r.peak_samples(), stepped, "range {range}, ends {ends:?}, {reach:?}");
        }
    }
    let many = RangeVector { series: vec![series; 1000], range: 20, ends: (0..1_000_000).collect(), reach: None };
    assert_eq!(many.peak_samples(), 1000 * 5);
}

/// A trim operator between a float series and a number is upstream's info and no result,
/// on the float fast path of vector-scalar operations as elsewhere (it once reached an
/// `unreachable!`).
#[test]
fn trimming_floats_is_an_info_and_no_result() {
    let h = heads(&counters(), 2);
    for q in ["http_requests_total </ 1", "1 >/ http_requests_total"] {
        let r = query(&h, q, EvalParams::instant(600_000, 300_000)).unwrap();
        assert_eq!(r.value, Value::Vector(Vec::new()), "{q}");
        assert!(r.annotations.infos.keys().any(|m| m.contains("incompatible sample types")), "{q}: {r:?}");
    }
}

/// A counter 0, 10, 20, then reset, 5, 15, 25 every 15 s, worked by hand: `anchored` counts from
/// the sample at 0 s, `smoothed` from the values interpolated at 10 s (6.67) and 70 s (21.67);
/// either way the reset adds back 20.
#[test]
fn anchored_and_smoothed_increase_by_hand() {
    let samples = vec![(0, 0.0), (15_000, 10.0), (30_000, 20.0), (45_000, 5.0), (60_000, 15.0), (75_000, 25.0)];
    let series = [(lbl(&[("__name__", "c")]), samples)];
    let at = EvalParams::instant(70_000, 300_000);
    for shards in [1, 3] {
        let h = heads(&series, shards);
        let value = |q: &str| scalar_of(&run(&h, q, at).unwrap())[0].1[0].unwrap();
        assert_eq!(value("increase(c[1m] anchored)"), 15.0 + 20.0);
        assert_eq!(value("delta(c[1m] anchored)"), 15.0);
        let smoothed = (15.0 + 10.0 * 10.0 / 15.0) - 10.0 * 10.0 / 15.0 + 20.0;
        assert!((value("increase(c[1m] smoothed)") - smoothed).abs() < 1e-12);
        assert!((value("rate(c[1m] smoothed)") - smoothed / 60.0).abs() < 1e-12);
        // (15 s, 45 s]: 20, 5 and the anchor 10 at 15 s.
        let changes = |q: &str| scalar_of(&run(&h, q, EvalParams::instant(45_000, 300_000)).unwrap())[0].1[0];
        assert_eq!(changes("changes(c[30s])"), Some(1.0));
        assert_eq!(changes("changes(c[30s] anchored)"), Some(2.0));
        // A range query steps through the same windows.
        let steps = EvalParams { start: 10_000, end: 70_000, step: 30_000, lookback: 300_000 };
        let v = run(&h, "increase(c[1m] anchored)", steps).unwrap();
        // At 10 s only the sample at 0 s; at 40 s no anchor yet: from the first sample.
        assert_eq!(scalar_of(&v)[0].1, [Some(0.0), Some(20.0), Some(35.0)]);
    }
}

/// A smoothed instant selector interpolates between the samples around the step, keeps the
/// last one after them, and has nothing before the first.
#[test]
fn smoothed_instant_selector_interpolates() {
    let h = heads(&[(lbl(&[("__name__", "g")]), vec![(30_000, 1.0), (90_000, 4.0)])], 2);
    let steps = EvalParams { start: 0, end: 120_000, step: 30_000, lookback: 300_000 };
    let v = run(&h, "g smoothed", steps).unwrap();
    assert_eq!(scalar_of(&v), [(lbl(&[("__name__", "g")]), vec![None, Some(1.0), Some(2.5), Some(4.0), Some(4.0)])]);
    let v = run(&h, "g @ 60 smoothed", steps).unwrap();
    assert_eq!(scalar_of(&v)[0].1, [Some(2.5); 5]);
}

/// An instant query of an anchored or smoothed range vector gives the window's floats with the
/// values at its ends; functions that do not handle them fail as upstream's do.
#[test]
fn extended_range_vectors_and_their_errors() {
    let h = heads(&[(lbl(&[("__name__", "g")]), vec![(0, 1.0), (20_000, 2.0), (40_000, 3.0)])], 1);
    let at = EvalParams::instant(30_000, 300_000);
    let points = |q: &str| {
        let Value::Range(r) = run(&h, q, at).unwrap() else { panic!("expected a range vector") };
        r.first_window()[0].samples.iter().map(|s| (s.t, s.v)).collect::<Vec<_>>()
    };
    assert_eq!(points("g[20s] anchored"), [(10_000, 1.0), (20_000, 2.0), (30_000, 2.0)]);
    assert_eq!(points("g[20s] smoothed"), [(10_000, 1.5), (20_000, 2.0), (30_000, 2.5)]);
    let err = |q: &str| run(&h, q, at).unwrap_err().to_string();
    assert_eq!(
        err("deriv(g[1m] anchored)"),
        "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with deriv"
    );
    assert_eq!(
        err("sum(resets(g[1m] smoothed))"),
        "smoothed modifier can only be used with: delta, increase, rate - not with resets"
    );

    let histogram = HistogramSample { t: 0, h: Arc::new(FloatHistogram::default()) };
    let series = SeriesSamples { labels: Labels::default(), samples: Vec::new(), histograms: vec![histogram] };
    let reach = Some(Reach { extension: Extension::Anchored, lookback: 300_000 });
    let r = RangeVector { series: vec![series], range: 60_000, ends: vec![30_000], reach };
    assert_eq!(r.check_instant_result().unwrap_err().to_string(), "anchored modifier is not supported with histograms");
}

/// Anchored and smoothed selectors over a single sample, NaN, staleness markers, no samples,
/// and `@` and offsets far outside the data answer or fail, but never panic.
#[test]
fn extended_selectors_answer_hostile_queries() {
    let series = [
        (lbl(&[("__name__", "x"), ("k", "one")]), vec![(60_000, 1.0)]),
        (lbl(&[("__name__", "x"), ("k", "nan")]), vec![(0, f64::NAN), (30_000, 1.0), (60_000, f64::NAN)]),
        (lbl(&[("__name__", "x"), ("k", "stale")]), vec![(0, 1.0), (30_000, crate::value::stale_nan()), (90_000, 2.0)]),
    ];
    let frames = [
        EvalParams::instant(60_000, 300_000),
        EvalParams::instant(i64::MIN, 1),
        EvalParams { start: -600_000, end: 600_000, step: 45_000, lookback: 300_000 },
        EvalParams { start: 0, end: 120_000, step: 1, lookback: 1 },
    ];
    let histograms = [
        (0, "{{schema:0 count:5 sum:5 buckets:[5]}}"),
        (30_000, "{{schema:-53 custom_values:[1] count:1 sum:1 buckets:[1]}}"),
        (45_000, "{{schema:0 count:NaN sum:1 buckets:[1] counter_reset_hint:gauge}}"),
        (60_000, "{{schema:8 count:2 sum:2 buckets:[1 1] counter_reset_hint:reset}}"),
    ];
    let histograms = histograms
        .map(|(t, text)| HistogramSample { t, h: Arc::new(crate::histogram::parse_histogram(text).unwrap()) });
    let mixed = lbl(&[("__name__", "x"), ("k", "histograms")]);
    for shards in [1, 3] {
        let mut h = heads(&series, shards);
        let mixed = SeriesSamples {
            labels: mixed.clone(),
            samples: vec![Sample { t: 15_000, v: 1.0 }],
            histograms: histograms.to_vec(),
        };
        h[mixed.labels.owner(shards)].0.push(mixed);
        for q in [
            "x smoothed",
            "x[1ms] anchored",
            "x[10m] smoothed",
            "rate(x[1ms] smoothed)",
            "increase(x[1m] anchored @ 0 offset -1m)",
            "delta(x[5m] smoothed @ 9223372036854775)",
            "resets(x[1m] anchored offset 1h)",
            "changes(x[1m] anchored)",
            "x offset -1h smoothed @ end()",
            "max_over_time(rate(x[1m] smoothed)[5m:7s])",
        ] {
            for params in frames {
                let _ = query(&h, q, params);
            }
        }
    }
}

/// `info` keeps a base series' histograms, joined as its floats are, and refuses a histogram
/// info sample only where the base has a sample, as upstream.
#[test]
fn info_joins_histogram_base_series_and_refuses_histogram_info_samples() {
    let at = |t: i64, text: &str| HistogramSample { t, h: Arc::new(crate::histogram::parse_histogram(text).unwrap()) };
    let params = EvalParams { start: 0, end: 120_000, step: 60_000, lookback: 300_000 };
    for shards in [1, 3] {
        let series =
            [(lbl(&[("__name__", "target_info"), ("instance", "a"), ("job", "j"), ("v", "1")]), vec![(0, 1.0)])];
        let mut h = heads(&series, shards);
        let base = SeriesSamples {
            labels: lbl(&[("__name__", "latency"), ("instance", "a"), ("job", "j")]),
            samples: Vec::new(),
            histograms: vec![at(0, "{{schema:0 count:1 sum:1 buckets:[1]}}")],
        };
        h[base.labels.owner(shards)].0.push(base);
        let Value::Vector(out) = run(&h, "info(latency)", params).unwrap() else { panic!("a vector") };
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].labels.get("v"), "1");
        assert!((0..3).all(|i| out[0].histogram(i).is_some() && out[0].values[i].is_none()), "{out:?}");

        // A histogram info series: an error while the base has samples, nothing after.
        let info = SeriesSamples {
            labels: lbl(&[("__name__", "h_info"), ("instance", "a"), ("job", "j")]),
            samples: Vec::new(),
            histograms: vec![at(0, "{{schema:0 count:1 sum:1 buckets:[1]}}")],
        };
        h[info.labels.owner(shards)].0.push(info);
        let refused = run(&h, "info(latency, {__name__=\"h_info\"})", params);
        assert!(matches!(&refused, Err(EvalError::Execution(m)) if m == "info sample should be float"), "{refused:?}");
        let later = EvalParams { start: 600_000, end: 600_000, step: 0, lookback: 300_000 };
        assert!(run(&h, "info(latency, {__name__=\"h_info\"})", later).is_ok());
    }
}

#[test]
fn a_range_functions_points_count_against_the_limit_in_a_range_query() {
    // Two samples, 15 s apart, and 1,001 one-second steps: rate has a value at the 285 steps
    // whose 5 m window holds both (15 s to 299 s).
    let series = [(lbl(&[("__name__", "c")]), vec![(0, 1.0), (15_000, 2.0)])];
    let shard = heads(&series, 1).pop().unwrap();
    // The samples the query counted.
    let run = |query: &str, params: EvalParams, max_samples: usize| {
        let mut p = plan(&parse(query).unwrap(), &params).unwrap();
        p.limits = Limits::new(max_samples, Interrupt::default());
        let outputs = evaluate_fragments(&p, &params, &shard, &p.limits)?;
        let counted = outputs.iter().map(|o| o.samples).sum::<usize>();
        p.finish(&params, vec![outputs]).map(|_| counted)
    };
    let range = EvalParams { start: 0, end: 1_000_000, step: 1_000, lookback: 300_000 };
    assert_eq!(run("rate(c[5m])", range, 5_000), Ok(2 + 285));
    assert_eq!(run("rate(c[5m])", range, 286), Err(EvalError::TooManySamples));
    assert_eq!(run("rate(c[5m])", EvalParams::instant(20_000, 300_000), 2), Ok(2));
}

#[test]
fn binary_operations_between_vectors_stop_at_the_interrupt() {
    use crate::promql::ast::{BinaryModifiers, BinaryOp};
    let params = EvalParams::instant(3_000_000, 300_000);
    let series = |n: usize| -> Value {
        Value::Vector((0..n).map(|i| StepSeries::floats(lbl(&[("i", &i.to_string())]), vec![Some(1.0)])).collect())
    };
    for op in [BinaryOp::Or, BinaryOp::And, BinaryOp::Unless, BinaryOp::Add] {
        // The deadline passes once the evaluator has begun (its first look is at its start):
        // the operation must look again and stop.
        let looks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = looks.clone();
        let late = Interrupt::new(move || match counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
            0 => Ok(()),
            _ => Err(EvalError::Timeout("query execution".into())),
        });
        let limits = Limits::new(1_000_000, late);
        let ev = Evaluator::new(&params, None, &[], &limits).unwrap();
        let m = BinaryModifiers::default();
        let answer = binary::apply(&ev, op, &m, series(3), series(3), 1);
        assert_eq!(answer.unwrap_err(), EvalError::Timeout("query execution".into()), "{op:?}");
    }
}
