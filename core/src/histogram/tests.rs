//! Tests of the histogram operations and statistics, with expectations taken from upstream's
//! `model/histogram` tests and from the promqltest files (`native_histograms.test`,
//! `histograms.test`).

// The expectations are upstream's numbers, some of which merely resemble std constants.
#![allow(clippy::approx_constant)]

use super::*;

/// One side of a histogram: spans as (offset, length) and their bucket counts.
type Side<'a> = (&'a [(i32, u32)], &'a [f64]);

fn h(text: &str) -> FloatHistogram {
    parse_histogram(text).unwrap()
}

fn spans(s: &[(i32, u32)]) -> Vec<Span> {
    s.iter().map(|&(offset, length)| Span { offset, length }).collect()
}

/// An exponential histogram with any number of spans per side.
#[allow(clippy::too_many_arguments)]
fn exp(
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    count: f64,
    sum: f64,
    pos: Side,
    neg: Side,
) -> FloatHistogram {
    FloatHistogram {
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive_spans: spans(pos.0),
        positive_buckets: pos.1.to_vec(),
        negative_spans: spans(neg.0),
        negative_buckets: neg.1.to_vec(),
        ..Default::default()
    }
}

/// A histogram with custom bounds.
fn custom(count: f64, sum: f64, pos: Side, bounds: &[f64]) -> FloatHistogram {
    FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count,
        sum,
        positive_spans: spans(pos.0),
        positive_buckets: pos.1.to_vec(),
        custom_values: bounds.to_vec(),
        ..Default::default()
    }
}

fn compacted(mut h: FloatHistogram) -> FloatHistogram {
    h.compact(0);
    h
}

/// `a + b` and `b + a` both give `want` (compared compacted, as upstream's test does) and report
/// `outcome`; the argument is left alone.
fn check_add(a: &FloatHistogram, b: &FloatHistogram, want: &FloatHistogram, outcome: AddOutcome) {
    for (x, y) in [(a, b), (b, a)] {
        let mut got = x.clone();
        let before = y.clone();
        assert_eq!(got.add(y), Ok(outcome), "{x} + {y}");
        assert_eq!(compacted(got.clone()), compacted(want.clone()), "{x} + {y} gave {got}");
        assert_eq!(y, &before);
    }
}

/// `a - b` gives `want` and `b - a` its negation.
fn check_sub(a: &FloatHistogram, b: &FloatHistogram, want: &FloatHistogram, outcome: AddOutcome) {
    let mut negated = want.clone();
    negated.mul(-1.0);
    negated.counter_reset_hint = want.counter_reset_hint;
    for (x, y, want) in [(a, b, want), (b, a, &negated)] {
        let mut got = x.clone();
        assert_eq!(got.sub(y), Ok(outcome), "{x} - {y}");
        assert_eq!(compacted(got.clone()), compacted(want.clone()), "{x} - {y} gave {got}");
    }
}

const PLAIN: AddOutcome = AddOutcome { counter_reset_collision: false, custom_bounds_reconciled: false };
const RECONCILED: AddOutcome = AddOutcome { counter_reset_collision: false, custom_bounds_reconciled: true };

#[test]
fn add_same_and_overlapping_layouts() {
    let a = exp(
        0,
        0.01,
        11.0,
        30.0,
        2.345,
        (&[(-2, 2), (1, 3)], &[1., 0., 3., 4., 7.]),
        (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]),
    );
    let b = exp(
        0,
        0.01,
        8.0,
        21.0,
        1.234,
        (&[(-2, 2), (1, 3)], &[0., 0., 2., 3., 6.]),
        (&[(3, 2), (3, 2)], &[1., 1., 4., 4.]),
    );
    let want = exp(
        0,
        0.01,
        19.0,
        51.0,
        3.579,
        (&[(-2, 2), (1, 3)], &[1., 0., 5., 7., 13.]),
        (&[(3, 2), (3, 2)], &[4., 2., 9., 10.]),
    );
    check_add(&a, &b, &want, PLAIN);

    let a = exp(
        0,
        0.001,
        11.0,
        30.0,
        2.345,
        (&[(-2, 2), (2, 3)], &[1., 0., 3., 4., 7.]),
        (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]),
    );
    let b = exp(
        0,
        0.001,
        8.0,
        21.0,
        1.234,
        (&[(0, 2), (3, 3)], &[5., 4., 2., 3., 6.]),
        (&[(-9, 2), (3, 2)], &[1., 1., 4., 4.]),
    );
    let want = exp(
        0,
        0.001,
        19.0,
        51.0,
        3.579,
        (&[(-2, 4), (0, 6)], &[1., 0., 5., 4., 3., 4., 7., 2., 3., 6.]),
        (&[(-9, 2), (3, 2), (5, 2), (3, 2)], &[1., 1., 4., 4., 3., 1., 5., 6.]),
    );
    check_add(&a, &b, &want, PLAIN);

    let a = exp(
        0,
        0.01,
        11.0,
        30.0,
        2.345,
        (&[(-2, 2), (2, 3)], &[1., 0., 3., 4., 7.]),
        (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]),
    );
    let b = exp(
        0,
        0.01,
        8.0,
        21.0,
        1.234,
        (&[(-1, 4), (0, 3)], &[5., 4., 2., 3., 6., 2., 5.]),
        (&[(4, 2), (1, 2)], &[1., 1., 4., 4.]),
    );
    let want = exp(
        0,
        0.01,
        19.0,
        51.0,
        3.579,
        (&[(-2, 4), (0, 4)], &[1., 5., 4., 2., 6., 10., 9., 5.]),
        (&[(3, 3), (1, 3)], &[3., 2., 1., 4., 9., 6.]),
    );
    check_add(&a, &b, &want, PLAIN);
}

#[test]
fn add_with_different_schemas() {
    let a = exp(
        0,
        0.01,
        8.0,
        21.0,
        1.234,
        (&[(-1, 4), (0, 3)], &[5., 4., 2., 3., 6., 2., 5.]),
        (&[(4, 2), (1, 2)], &[1., 1., 4., 4.]),
    );
    let b = exp(
        1,
        0.01,
        11.0,
        30.0,
        2.345,
        (&[(-4, 3), (5, 5)], &[1., 0., 0., 3., 2., 2., 3., 4.]),
        (&[(6, 3), (6, 4)], &[3., 0.5, 0.5, 2., 3., 2., 4.]),
    );
    let want = exp(
        0,
        0.01,
        19.0,
        51.0,
        3.579,
        (&[(-2, 5), (0, 3)], &[1., 5., 4., 2., 6., 10., 9., 5.]),
        (&[(3, 3), (1, 3)], &[3., 2., 1., 4., 9., 6.]),
    );
    check_add(&a, &b, &want, PLAIN);

    // promqltest's low_res_histogram: the finer histogram folds into the coarser one.
    let mut low = h("{{schema:-1 sum:4 count:1 buckets:[1] offset:1}}");
    low.add(&h("{{schema:0 sum:4 count:4 buckets:[2 2] offset:1}}")).unwrap();
    assert!(low.equals(&h("{{schema:-1 count:5 sum:8 offset:1 buckets:[5]}}")), "{low}");
}

#[test]
fn add_with_different_zero_thresholds() {
    let wide = exp(
        0,
        1.0,
        17.0,
        21.0,
        1.234,
        (&[(1, 2), (0, 3)], &[2., 3., 6., 2., 5.]),
        (&[(4, 2), (1, 2)], &[1., 1., 4., 4.]),
    );
    let narrow = exp(
        0,
        0.01,
        11.0,
        30.0,
        2.345,
        (&[(-2, 2), (2, 3)], &[1., 0., 3., 4., 7.]),
        (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]),
    );
    let want = exp(
        0,
        1.0,
        29.0,
        51.0,
        3.579,
        (&[(1, 5)], &[2., 6., 10., 9., 5.]),
        (&[(3, 3), (1, 3)], &[3., 2., 1., 4., 9., 6.]),
    );
    check_add(&wide, &narrow, &want, PLAIN);

    // A threshold of 0.2 falls inside the populated bucket (0.125, 0.25]: it grows to 0.25.
    let mid = exp(
        0,
        0.2,
        17.0,
        21.0,
        1.234,
        (&[(1, 2), (0, 3)], &[2., 3., 6., 2., 5.]),
        (&[(4, 2), (1, 2)], &[1., 1., 4., 4.]),
    );
    let want = exp(
        0,
        0.25,
        29.0,
        51.0,
        3.579,
        (&[(1, 5)], &[2., 6., 10., 9., 5.]),
        (&[(3, 3), (1, 3)], &[3., 2., 1., 4., 9., 6.]),
    );
    check_add(&mid, &narrow, &want, PLAIN);

    // Schema change and a wider zero bucket together.
    let a = exp(
        0,
        0.01,
        8.0,
        21.0,
        1.234,
        (&[(-2, 5), (0, 3)], &[2., 5., 4., 2., 3., 6., 2., 5.]),
        (&[(4, 2), (1, 2)], &[1., 1., 4., 4.]),
    );
    let b = exp(
        1,
        0.25,
        12.0,
        30.0,
        2.345,
        (&[(-3, 2), (5, 5)], &[1., 0., 3., 2., 2., 3., 4.]),
        (&[(6, 3), (6, 4)], &[3., 0.5, 0.5, 2., 3., 2., 4.]),
    );
    let want = exp(
        0,
        0.25,
        22.0,
        51.0,
        3.579,
        (&[(-1, 7)], &[6., 4., 2., 6., 10., 9., 5.]),
        (&[(3, 3), (1, 3)], &[3., 2., 1., 4., 9., 6.]),
    );
    check_add(&a, &b, &want, PLAIN);
}

#[test]
fn add_custom_buckets() {
    let bounds = [1., 2., 3., 4., 5.];
    let a = custom(15.0, 2.345, (&[(0, 2), (1, 3)], &[1., 0., 3., 4., 7.]), &bounds);
    let b = custom(11.0, 1.234, (&[(0, 2), (1, 3)], &[0., 0., 2., 3., 6.]), &bounds);
    let want = custom(26.0, 3.579, (&[(0, 2), (1, 3)], &[1., 0., 5., 7., 13.]), &bounds);
    check_add(&a, &b, &want, PLAIN);

    // Different bounds are reconciled to the ones both have.
    let a = custom(10.0, 100.0, (&[(0, 3)], &[2., 3., 5.]), &[1., 2.5]);
    let b = custom(8.0, 80.0, (&[(0, 4)], &[1., 2., 3., 2.]), &[1., 2., 3.]);
    check_add(&a, &b, &custom(18.0, 180.0, (&[(0, 2)], &[3., 15.]), &[1.]), RECONCILED);

    let a = custom(6.0, 2.345, (&[(0, 1), (1, 1)], &[1., 5.]), &[2., 4.]);
    let b = custom(220.0, 1.234, (&[(0, 2), (1, 1), (0, 2)], &[10., 20., 40., 50., 100.]), &bounds);
    check_add(&a, &b, &custom(226.0, 3.579, (&[(0, 3)], &[31., 40., 155.]), &[2., 4.]), RECONCILED);

    let a = custom(3.0, 50.0, (&[(0, 2)], &[1., 2.]), &[1.5]);
    let b = custom(30.0, 40.0, (&[(0, 2)], &[10., 20.]), &[2.5]);
    check_add(&a, &b, &custom(33.0, 90.0, (&[(0, 1)], &[33.]), &[]), RECONCILED);
}

#[test]
fn add_refuses_mixed_schemas() {
    let exponential = h("{{schema:0 count:1 buckets:[1]}}");
    let nhcb = h("{{schema:-53 count:1 custom_values:[1] buckets:[1]}}");
    assert_eq!(exponential.clone().add(&nhcb), Err(HistogramError::MixedSchemas));
    assert_eq!(nhcb.clone().sub(&exponential), Err(HistogramError::MixedSchemas));
    assert_eq!(
        HistogramError::MixedSchemas.to_string(),
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    );
}

#[test]
fn add_merges_counter_reset_hints() {
    use CounterResetHint::*;
    let cases = [
        (CounterReset, NotCounterReset, Unknown, true),
        (NotCounterReset, CounterReset, Unknown, true),
        (CounterReset, CounterReset, CounterReset, false),
        (Gauge, CounterReset, Gauge, false),
        (NotCounterReset, Gauge, Gauge, false),
        (Unknown, Gauge, Gauge, false),
        (Unknown, NotCounterReset, Unknown, false),
        (NotCounterReset, Unknown, Unknown, false),
    ];
    for (mine, theirs, want, collision) in cases {
        let mut a = FloatHistogram { counter_reset_hint: mine, ..Default::default() };
        let b = FloatHistogram { counter_reset_hint: theirs, ..Default::default() };
        let outcome = a.add(&b).unwrap();
        assert_eq!((a.counter_reset_hint, outcome.counter_reset_collision), (want, collision), "{mine:?} + {theirs:?}");
    }
}

#[test]
fn add_accumulates_series_notation() {
    // promqltest's incr_histogram: A+Bx10 ends at {{count:14 sum:24 buckets:[1 12 1]}}.
    let mut a = h("{{schema:0 sum:4 count:4 buckets:[1 2 1]}}");
    let step = h("{{sum:2 count:1 buckets:[1] offset:1}}");
    for _ in 0..10 {
        a.add(&step).unwrap();
    }
    assert!(a.equals(&h("{{count:14 sum:24 buckets:[1 12 1]}}")), "{a}");
}

#[test]
fn sub() {
    let a = exp(
        0,
        0.01,
        11.0,
        30.0,
        23.0,
        (&[(-2, 2), (1, 3)], &[1., 0., 3., 4., 7.]),
        (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]),
    );
    let b = exp(
        0,
        0.01,
        8.0,
        21.0,
        12.0,
        (&[(-2, 2), (1, 3)], &[0., 0., 2., 3., 6.]),
        (&[(3, 2), (3, 2)], &[1., 1., 4., 4.]),
    );
    let want = exp(
        0,
        0.01,
        3.0,
        9.0,
        11.0,
        (&[(-2, 2), (1, 3)], &[1., 0., 1., 1., 1.]),
        (&[(3, 2), (3, 2)], &[2., 0., 1., 2.]),
    );
    check_sub(&a, &b, &want, PLAIN);

    let a = exp(
        0,
        0.01,
        8.0,
        59.0,
        1.234,
        (&[(-2, 5), (0, 3)], &[2., 5., 4., 2., 3., 6., 7., 5.]),
        (&[(3, 3), (1, 3)], &[4., 10., 1., 4., 14., 7.]),
    );
    let b = exp(
        1,
        0.01,
        2.0,
        19.0,
        0.345,
        (&[(-4, 3), (5, 5)], &[1., 0., 0., 1., 2., 2., 3., 4.]),
        (&[(6, 3), (6, 4)], &[3., 0.5, 0.5, 2., 3., 2., 4.]),
    );
    let want = exp(
        0,
        0.01,
        6.0,
        40.0,
        0.889,
        (&[(-2, 5), (0, 3)], &[1., 5., 4., 2., 2., 2., 0., 5.]),
        (&[(3, 3), (1, 3)], &[1., 9., 1., 4., 9., 1.]),
    );
    check_sub(&a, &b, &want, PLAIN);

    let mut a = custom(220.0, 9.9, (&[(0, 2), (1, 1), (0, 2)], &[10., 20., 40., 50., 100.]), &[1., 2., 3., 4., 5.]);
    a.counter_reset_hint = CounterResetHint::Gauge;
    let mut b = custom(6.0, 4.4, (&[(0, 1), (1, 1)], &[1., 5.]), &[2., 4.]);
    b.counter_reset_hint = CounterResetHint::Gauge;
    let mut want = custom(214.0, 5.5, (&[(0, 3)], &[29., 40., 145.]), &[2., 4.]);
    want.counter_reset_hint = CounterResetHint::Gauge;
    check_sub(&a, &b, &want, RECONCILED);

    // promqltest's nhcb_add_buckets / nhcb_remove_buckets (what irate subtracts).
    let mut later =
        h("{{schema:-53 sum:555 count:450 custom_values:[1 2 3 4 5 6 7 8] buckets:[10 20 30 40 50 60 70 80 90]}}");
    assert_eq!(later.sub(&h("{{schema:-53 sum:55 count:15 custom_values:[2 4 6] buckets:[1 2 5 7]}}")), Ok(RECONCILED));
    assert!(
        later.equals(&h("{{schema:-53 sum:500 count:435 custom_values:[2 4 6] buckets:[29 68 105 233]}}")),
        "{later}"
    );
    let mut later = h("{{schema:-53 sum:5560 count:1000 custom_values:[3 5 7] buckets:[100 200 300 400]}}");
    later
        .sub(&h("{{schema:-53 sum:55 count:45 custom_values:[1 2 3 4 5 6 7 8] buckets:[1 2 3 4 5 6 7 8 9]}}"))
        .unwrap();
    assert!(
        later.equals(&h("{{schema:-53 sum:5505 count:955 custom_values:[3 5 7] buckets:[94 191 287 383]}}")),
        "{later}"
    );
}

#[test]
fn mul_and_div() {
    let mut x = h("{{schema:0 count:4 sum:5 z_bucket:1 buckets:[1 2] n_buckets:[1]}}");
    x.mul(2.0);
    assert!(x.equals(&h("{{schema:0 count:8 sum:10 z_bucket:2 buckets:[2 4] n_buckets:[2]}}")));
    assert_eq!(x.counter_reset_hint, CounterResetHint::Unknown);
    x.div(-4.0);
    assert!(x.equals(&h("{{schema:0 count:-2 sum:-2.5 z_bucket:-0.5 buckets:[-0.5 -1] n_buckets:[-0.5]}}")));
    assert!(x.is_gauge());
    x.div(0.0);
    assert_eq!((x.count, x.sum, x.zero_count), (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY));
    assert!(x.positive_buckets.is_empty() && x.negative_spans.is_empty());
    let mut empty = FloatHistogram::default();
    empty.div(0.0);
    assert!(empty.count.is_nan());
}

#[test]
fn compact() {
    let cases: [(Side, usize, Side); 8] = [
        ((&[(-2, 1), (2, 3)], &[1., 3.3, 4.2, 0.1]), 0, (&[(-2, 1), (2, 3)], &[1., 3.3, 4.2, 0.1])),
        ((&[(-2, 1), (0, 3), (0, 1)], &[1., 3.3, 4.2, 0.1, 3.3]), 0, (&[(-2, 5)], &[1., 3.3, 4.2, 0.1, 3.3])),
        ((&[(-2, 2), (2, 0), (3, 3)], &[1., 3.3, 4.2, 0.1, 3.3]), 0, (&[(-2, 2), (5, 3)], &[1., 3.3, 4.2, 0.1, 3.3])),
        ((&[(-4, 4), (5, 3)], &[0., 0., 1., 3.3, 4.2, 0.1, 3.3]), 0, (&[(-2, 2), (5, 3)], &[1., 3.3, 4.2, 0.1, 3.3])),
        (
            (&[(-4, 6), (3, 3)], &[0., 0., 1., 0., 0., 3.3, 4.2, 0.1, 3.3]),
            3,
            (&[(-2, 10)], &[1., 0., 0., 3.3, 0., 0., 0., 4.2, 0.1, 3.3]),
        ),
        (
            (&[(-2, 2), (2, 2), (2, 2)], &[1., 3.3, 4.2, 0.1, 3.3, 2.]),
            3,
            (&[(-2, 10)], &[1., 3.3, 0., 0., 4.2, 0.1, 0., 0., 3.3, 2.]),
        ),
        ((&[(-4, 6), (3, 3)], &[0.; 9]), 3, (&[], &[])),
        ((&[(-10, 2), (2, 1), (3, 3)], &[0., 0., 0., 0., 2., 3.]), 0, (&[(-1, 2)], &[2., 3.])),
    ];
    for (input, max_empty, want) in cases {
        let mut x = exp(0, 0.0, 0.0, 0.0, 0.0, input, input);
        x.compact(max_empty);
        let want = (spans(want.0), want.1.to_vec());
        assert_eq!((x.positive_spans, x.positive_buckets), want, "{input:?}");
        assert_eq!((x.negative_spans, x.negative_buckets), want, "{input:?}");
    }
}

#[test]
fn reduce_resolution() {
    let mut x = exp(
        1,
        0.0,
        0.0,
        0.0,
        0.0,
        (&[(-4, 3), (5, 5)], &[1., 0., 0., 3., 2., 2., 3., 4.]),
        (&[(6, 3), (6, 4)], &[3., 0.5, 0.5, 2., 3., 2., 4.]),
    );
    x.reduce_resolution(0).unwrap();
    let want =
        exp(0, 0.0, 0.0, 0.0, 0.0, (&[(-2, 2), (2, 3)], &[1., 0., 3., 4., 7.]), (&[(3, 2), (3, 2)], &[3., 1., 5., 6.]));
    assert_eq!(x, want);
    assert_eq!(x.reduce_resolution(0), Err(HistogramError::NotAReduction { from: 0, to: 0 }));
    assert_eq!(h("{{schema:-53 custom_values:[1]}}").reduce_resolution(0), Err(HistogramError::ReduceCustomBuckets));
    assert_eq!(x.reduce_resolution(CUSTOM_BUCKETS_SCHEMA), Err(HistogramError::ReduceToCustomBuckets));
    let mut bad = exp(2, 0.0, 0.0, 0.0, 0.0, (&[(0, 1), (-2, 1)], &[1., 1.]), (&[], &[]));
    assert_eq!(bad.reduce_resolution(0), Err(HistogramError::NegativeSpanOffset { span: 2, offset: -2 }));
    let mut bad = exp(2, 0.0, 0.0, 0.0, 0.0, (&[(0, 3)], &[1., 1.]), (&[], &[]));
    assert_eq!(bad.reduce_resolution(0), Err(HistogramError::SpansBucketsMismatch { needed: 3, have: 2 }));
}

#[test]
fn equals() {
    let a = exp(0, 0.01, 1.0, 5.0, f64::NAN, (&[(-2, 2), (1, 3)], &[1., 0., 3., 4., 7.]), (&[], &[]));
    let mut b = a.clone();
    b.positive_spans = spans(&[(-2, 2), (1, 0), (0, 3), (0, 0)]);
    b.counter_reset_hint = CounterResetHint::Gauge;
    assert!(a.equals(&b), "NaN sums with the same bits, empty spans and the hint do not matter");
    b.positive_spans = spans(&[(-2, 2), (1, 1), (0, 2)]);
    assert!(!a.equals(&b), "adjacent spans are a different layout");
    let mut c = a.clone();
    c.positive_buckets[1] = -0.0;
    assert!(!a.equals(&c), "counts compare by bits");
    let mut d = a.clone();
    d.sum = 1.0;
    assert!(!a.equals(&d));
    let x = h("{{schema:-53 custom_values:[1 2] buckets:[1]}}");
    assert!(!x.equals(&h("{{schema:-53 custom_values:[1 3] buckets:[1]}}")));
    assert!(h("{{schema:0 buckets:[1]}}").equals(&h("{{schema:0 buckets:[1] custom_values:[7]}}")));
}

#[test]
fn detect_reset() {
    let cases = [
        ("{{}}", "{{}}", false),
        ("{{}}", "{{count:3 z_bucket:1 z_bucket_w:0.01 buckets:[1 2] n_buckets:[1]}}", false),
        ("{{count:3 z_bucket:1 z_bucket_w:0.01 buckets:[1 2]}}", "{{}}", true),
        ("{{count:3 buckets:[1 2]}}", "{{count:3 buckets:[1 2 0]}}", false),
        ("{{count:3 buckets:[1 2 0]}}", "{{count:3 buckets:[1 2]}}", false),
        ("{{count:3 buckets:[1 2 1]}}", "{{count:3 buckets:[1 2]}}", true),
        ("{{count:3 buckets:[1 2]}}", "{{count:3 buckets:[1 1]}}", true),
        ("{{count:3 n_buckets:[1 2]}}", "{{count:3 n_buckets:[1 1]}}", true),
        ("{{count:3 n_buckets:[1 2]}}", "{{count:3 n_buckets:[1 3]}}", false),
        ("{{count:3 z_bucket:1}}", "{{count:3 z_bucket:0.5}}", true),
        ("{{count:3}}", "{{count:2}}", true),
        ("{{count:3 sum:10}}", "{{count:3 sum:1}}", false),
        // Hints decide first.
        ("{{count:3}}", "{{count:2 counter_reset_hint:not_reset}}", false),
        ("{{count:3}}", "{{count:4 counter_reset_hint:reset}}", true),
        ("{{count:3}}", "{{count:2 counter_reset_hint:gauge}}", true),
        // Zero threshold: shrinking resets; growing folds the buckets it covers in, unless it
        // would cut a populated bucket.
        ("{{z_bucket_w:0.1}}", "{{z_bucket_w:0.01}}", true),
        ("{{z_bucket:1 z_bucket_w:0.01 buckets:[1 2] offset:-2}}", "{{z_bucket:4 z_bucket_w:0.5 buckets:[2]}}", false),
        ("{{z_bucket:1 z_bucket_w:0.01 buckets:[1 2] offset:-2}}", "{{z_bucket:3 z_bucket_w:0.5 buckets:[2]}}", true),
        ("{{z_bucket_w:0.01 buckets:[1 2] offset:-2}}", "{{z_bucket_w:0.3 buckets:[1 2] offset:-2}}", true),
        // Schema: a finer one resets, a coarser one compares merged buckets.
        ("{{schema:0 buckets:[1]}}", "{{schema:1 buckets:[1]}}", true),
        ("{{schema:1 buckets:[1 2 3 4]}}", "{{schema:0 buckets:[1 5 4]}}", false),
        ("{{schema:1 buckets:[1 2 3 4]}}", "{{schema:0 buckets:[1 4 4]}}", true),
        // Custom bounds.
        ("{{schema:-53 custom_values:[1 2 3]}}", "{{schema:-53 custom_values:[1 2 3] buckets:[1 0 3]}}", false),
        ("{{schema:-53 custom_values:[1 2 3] buckets:[1 0 3]}}", "{{schema:-53 custom_values:[1 2 3]}}", true),
        ("{{schema:0 buckets:[1]}}", "{{schema:-53 custom_values:[1] buckets:[1]}}", true),
        ("{{schema:-53 custom_values:[1] buckets:[1]}}", "{{schema:0 buckets:[1]}}", true),
        (
            "{{schema:-53 custom_values:[0 1 2 3] buckets:[20 35 40 50]}}",
            "{{schema:-53 custom_values:[0 0.5 1 2 3] buckets:[25 15 40 50 70]}}",
            false,
        ),
        (
            "{{schema:-53 custom_values:[0 1 3 5] buckets:[10 15 20 25] offset:1}}",
            "{{schema:-53 custom_values:[0 1 2 3 5] buckets:[10 16 10 5 25] offset:1}}",
            true,
        ),
        (
            "{{schema:-53 custom_values:[4 5 6] buckets:[10 20 30] offset:1}}",
            "{{schema:-53 custom_values:[1 2 3] buckets:[15 25 35] offset:1}}",
            false,
        ),
        // promqltest's nhcb_add_bucket: up to 4 the count drops from 3 to 2.
        (
            "{{schema:-53 sum:55 count:15 custom_values:[2 4 6] buckets:[1 2 5 7]}}",
            "{{schema:-53 sum:56 count:15 custom_values:[2 3 4 6] buckets:[1 0 1 5 8]}}",
            true,
        ),
    ];
    for (previous, current, want) in cases {
        assert_eq!(h(current).detect_reset(&h(previous)), want, "{previous} → {current}");
    }
    // Several spans: an unpopulated bucket may vanish, a populated one may not.
    let before = exp(0, 0.01, 5.5, 10.0, 0.0, (&[(-2, 2), (1, 3)], &[1., 0., 3.3, 4.2, 0.1]), (&[], &[]));
    let after = exp(0, 0.01, 5.5, 10.0, 0.0, (&[(-2, 1), (2, 3)], &[1., 3.3, 4.2, 0.1]), (&[], &[]));
    assert!(!after.detect_reset(&before));
    let before = exp(0, 0.01, 5.5, 10.0, 0.0, (&[(-2, 2), (1, 3)], &[1., 1.23, 3.3, 4.2, 0.1]), (&[], &[]));
    assert!(after.detect_reset(&before));
}

/// Compares with a relative tolerance of 1e-12 (NaN equals NaN): the test files' expectations
/// are partly hand-written with fewer digits than a float has.
fn close(got: f64, want: f64) -> bool {
    got == want || (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-12 * want.abs().max(1e-300)
}

#[test]
fn quantiles_of_exponential_histograms() {
    let cases = [
        ("{{schema:0 sum:5 count:4 buckets:[1 2 1]}}", 0.5, 1.414213562373095),
        ("{{count:14 sum:24 buckets:[1 12 1]}}", 0.5, 1.414213562373095),
        ("{{schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1}}", 0.5, 0.0),
        ("{{schema:0 sum:-5 count:4 n_buckets:[1 2 1]}}", 0.5, -1.414213562373095),
        // An empty stretch of buckets: the quantile is the lower bound of the next populated one.
        ("{{schema:0 sum:0 count:8 buckets:[1 2 1] n_buckets:[1 2 1]}}", 0.5, 0.5),
        ("{{schema:-1 sum:6 count:5 buckets:[0 5]}}", 0.5, 2.0),
        ("{{schema:0 sum:4 count:5 buckets:[0 5]}}", 0.5, 1.4142135623730951),
        ("{{schema:1 sum:4 count:5 buckets:[0 5]}}", 0.5, 1.189207115002721),
        ("{{schema:-1 sum:6 count:5 buckets:[0 0 5]}}", 0.5, 8.0),
        ("{{schema:1 sum:4 count:5 buckets:[0 0 5]}}", 0.5, 1.6817928305074292),
        ("{{schema:-1 sum:6 count:5 n_buckets:[0 5]}}", 0.5, -2.0),
        ("{{schema:0 sum:4 count:5 n_buckets:[0 0 5]}}", 0.5, -2.82842712474619),
    ];
    for (text, q, want) in cases {
        let (got, info) = quantile(q, &h(text));
        assert!(close(got, want) && info.is_none(), "quantile({q}, {text}) = {got}, want {want}");
    }

    let positive = h("{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}");
    let negative = h("{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}");
    let both = h("{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}");
    let cases = [
        (&positive, 1.001, f64::INFINITY),
        (&positive, 1.0, 16.0),
        (&positive, 0.99, 15.67072476139083),
        (&positive, 0.9, 12.99603834169977),
        (&positive, 0.6, 4.594793419988138),
        (&positive, 0.5, 1.5874010519681994),
        (&positive, 0.1, 0.0006),
        (&positive, 0.0, 0.0),
        (&positive, -1.0, f64::NEG_INFINITY),
        (&positive, 0.08333333333333333, 0.0005),
        (&positive, 0.6320802083934297, 6.0),
        (&negative, 1.0, 0.0),
        (&negative, 0.99, -0.00006),
        (&negative, 0.9, -0.0006),
        (&negative, 0.5, -1.5874010519681996),
        (&negative, 0.1, -12.996038341699768),
        (&negative, 0.0, -16.0),
        (&negative, 0.9166666666666666, -0.0005),
        (&both, 1.0, 16.0),
        (&both, 0.99, 15.34822590920423),
        (&both, 0.9, 10.556063286183155),
        (&both, 0.7, 1.2030250360821164),
        (&both, 0.55, 0.0006),
        (&both, 0.5, 0.0),
        (&both, 0.45, -0.0006),
        (&both, 0.3, -1.2030250360821169),
        (&both, 0.1, -10.556063286183155),
        (&both, 0.01, -15.34822590920423),
        (&both, 0.0, -16.0),
        (&both, f64::NAN, f64::NAN),
    ];
    for (hist, q, want) in cases {
        let (got, info) = quantile(q, hist);
        assert!(close(got, want) && info.is_none(), "quantile({q}, {hist}) = {got}, want {want}");
    }
    assert!(quantile(0.5, &h("{{}}")).0.is_nan());
}

#[test]
fn quantiles_of_custom_bucket_histograms() {
    // histograms.test's classic histograms as NHCBs (at 50m).
    let t3_pos = h("{{schema:-53 count:110 sum:330 custom_values:[0 0.1 0.2 1] buckets:[0 50 20 40 0]}}");
    let t3_neg = h("{{schema:-53 count:20 sum:80 custom_values:[-0.25 -0.2 -0.1 0.3] buckets:[0 10 10 0 0]}}");
    let t_pos = h("{{schema:-53 count:120 custom_values:[0.1 0.2 1] buckets:[50 20 40 10]}}");
    let t_neg = h("{{schema:-53 count:30 custom_values:[-0.2 -0.1 0.3] buckets:[10 10 0 10]}}");
    let cases = [
        (&t3_pos, 0.0, 0.0),
        (&t3_pos, 0.25, 0.055),
        (&t3_pos, 0.5, 0.125),
        (&t3_pos, 0.75, 0.45),
        (&t3_pos, 1.0, 1.0),
        (&t3_neg, 0.0, -0.25),
        (&t3_neg, 0.25, -0.225),
        (&t3_neg, 0.5, -0.2),
        (&t3_neg, 0.75, -0.15),
        (&t3_neg, 1.0, -0.1),
        (&t_pos, 0.0, 0.0),
        (&t_pos, 0.2, 0.048),
        (&t_pos, 0.5, 0.15),
        (&t_pos, 0.8, 0.72),
        (&t_pos, 1.0, 1.0),  // the +Inf bucket answers its lower bound
        (&t_neg, 0.0, -0.2), // a first bucket ending at or below 0 answers its upper bound
        (&t_neg, 0.2, -0.2),
        (&t_neg, 0.5, -0.15),
        (&t_neg, 0.8, 0.3),
        (&t_neg, 1.0, 0.3),
    ];
    for (hist, q, want) in cases {
        let (got, info) = quantile(q, hist);
        assert!(close(got, want) && info.is_none(), "quantile({q}, {hist}) = {got}, want {want}");
    }
}

#[test]
fn quantiles_with_nan_observations() {
    let all_nan = h("{{schema:0 count:3 sum:NaN}}");
    let some_nan = h("{{schema:0 count:15 sum:NaN buckets:[12]}}");
    let nan = Some(StatsInfo::QuantileNaNResult);
    let skew = Some(StatsInfo::QuantileNaNSkew);
    for (hist, q, want, info) in [
        (&all_nan, 1.0, f64::NAN, nan),
        (&all_nan, 0.8, f64::NAN, nan),
        (&all_nan, 0.4, f64::NAN, nan),
        (&some_nan, 1.0, f64::NAN, nan),
        (&some_nan, 0.81, f64::NAN, nan),
        (&some_nan, 0.8, 1.0, skew),
        (&some_nan, 0.4, 0.7071067811865475, skew),
    ] {
        let (got, got_info) = quantile(q, hist);
        assert!(close(got, want) && got_info == info, "quantile({q}, {hist}) = {got} {got_info:?}");
    }
    assert_eq!(
        StatsInfo::QuantileNaNSkew.message(),
        "input to histogram_quantile has NaN observations, result is skewed higher"
    );
}

#[test]
fn fractions() {
    let single = h("{{schema:0 sum:5 count:4 buckets:[1 2 1]}}");
    let zero_only = h("{{schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1}}");
    let positive = h("{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}");
    let negative = h("{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}");
    let t2 = h("{{schema:-53 count:30 custom_values:[0 2 4 6] buckets:[0 10 10 10 0]}}");
    let t3_pos = h("{{schema:-53 count:110 sum:330 custom_values:[0 0.1 0.2 1] buckets:[0 50 20 40 0]}}");
    let t3_neg = h("{{schema:-53 count:20 sum:80 custom_values:[-0.25 -0.2 -0.1 0.3] buckets:[0 10 10 0 0]}}");
    let up = h("{{schema:-53 count:100 custom_values:[1 2 3] buckets:[1 2 3 94]}}");
    let down = h("{{schema:-53 count:100 custom_values:[-3 -2 -1] buckets:[10 2 3 85]}}");
    let halves = h("{{schema:-53 count:100 custom_values:[0.5 1] buckets:[2.5 5 92.5]}}");
    let across = h("{{schema:-53 count:100 custom_values:[-2 -1 0 1] buckets:[5 5 5 5 80]}}");
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let cases = [
        (&single, 1.0, 2.0, 0.5),
        (&single, 0.0, 8.0, 1.0),
        (&zero_only, -0.5, 0.5, 1.0),
        (&h("{{schema:-1 sum:6 count:5 buckets:[0 5]}}"), 0.0, 2.0, 0.5),
        (&h("{{schema:1 sum:4 count:5 buckets:[0 5]}}"), 0.0, 1.189207115002721, 0.5),
        (&h("{{schema:0 sum:4 count:5 n_buckets:[0 0 5]}}"), -2.82842712474619, 0.0, 0.5),
        (&h("{{schema:-1 count:5 sum:8 offset:1 buckets:[5]}}"), 1.0, 4.0, 1.0),
        (&h("{{}}"), 3.1415, 42.0, nan),
        (&positive, 0.0, inf, 1.0),
        (&positive, -inf, 0.0, 0.0),
        (&positive, -0.001, 0.0, 0.0),
        (&positive, 0.0, 0.001, 0.16666666666666666),
        (&positive, 0.001, inf, 0.8333333333333334),
        (&positive, 0.0, 0.0005, 0.08333333333333333),
        (&positive, 1.0, 2.0, 0.25),
        (&positive, 0.0, 1.5, 0.4795739585136224),
        (&positive, 1.5, 2.0, 0.10375937481971091),
        (&positive, 1.0, 8.0, 0.3333333333333333),
        (&positive, 0.0, 6.0, 0.6320802083934297),
        (&positive, 1.0, 6.0, 0.29874687506009634),
        (&positive, 1.5, 6.0, 0.15250624987980724),
        (&positive, -6.0, -1.5, 0.0),
        (&positive, 42.0, 3.1415, 0.0),
        (&positive, 42.0, 42.0, 0.0),
        (&positive, 3.1415, nan, nan),
        (&positive, nan, 42.0, nan),
        (&positive, -inf, inf, 1.0),
        (&negative, 0.0, inf, 0.0),
        (&negative, -inf, 0.0, 1.0),
        (&negative, -0.001, 0.0, 0.16666666666666666),
        (&negative, -0.0005, 0.0, 0.08333333333333333),
        (&negative, -inf, -0.0005, 0.9166666666666666),
        (&negative, -inf, -0.001, 0.8333333333333334),
        (&negative, 1.0, 2.0, 0.0),
        (&t2, 0.0, 4.0, 0.6666666666666666),
        (&t2, 0.0, 6.0, 1.0),
        (&t2, 0.0, 3.5, 0.5833333333333334),
        (&t3_pos, 0.0, 0.2, 0.6363636363636364),
        (&t3_neg, 0.0, 0.2, 0.0),
        (&up, 0.0, 1.5, 0.02),
        (&up, 4.0, 5.0, 0.0),
        (&up, 2.0, 5.0, 0.03),
        (&up, 400.0, inf, 0.94),
        (&up, 2.0, 2.0, 0.0),
        (&up, 0.5, 2.0, 0.025),
        (&up, 1.0, 3.0, 0.05),
        (&up, 2.0, 3.5, 0.03),
        (&up, -inf, inf, 1.0),
        (&down, -4.0, -2.0, 0.02),
        (&down, -inf, -1.5, 0.135),
        (&down, 0.0, 1.0, 0.0),
        (&down, -inf, inf, 1.0),
        (&halves, 0.1, 0.75, 0.045),
        (&across, -1.0, 1.0, 0.1),
    ];
    for (hist, lower, upper, want) in cases {
        let (got, info) = fraction(lower, upper, hist);
        assert!(close(got, want) && info.is_none(), "fraction({lower}, {upper}, {hist}) = {got}, want {want}");
    }
    assert!(fraction(0.0, 5.0, &h("{{schema:-53 custom_values:[1 2 3]}}")).0.is_nan());

    // NaN observations are in no fraction.
    let all_nan = h("{{schema:0 count:3 sum:NaN}}");
    let some_nan = h("{{schema:0 count:15 sum:NaN buckets:[12]}}");
    let info = Some(StatsInfo::FractionNaNs);
    assert_eq!(fraction(-inf, 0.7071067811865475, &all_nan), (0.0, info));
    assert_eq!(fraction(-inf, inf, &all_nan), (0.0, info));
    let (got, got_info) = fraction(-inf, 0.7071067811865475, &some_nan);
    assert!(close(got, 0.4) && got_info == info, "{got}");
    assert_eq!(fraction(-inf, inf, &some_nan), (0.8, info));
}

#[test]
fn averages_and_deviations() {
    for (text, want) in [
        ("{{schema:0 sum:5 count:4 buckets:[1 2 1]}}", 1.25),
        ("{{count:14 sum:24 buckets:[1 12 1]}}", 1.7142857142857142),
        ("{{schema:-1 count:5 sum:8 offset:1 buckets:[5]}}", 1.6),
        ("{{schema:0 sum:-5 count:4 n_buckets:[1 2 1]}}", -1.25),
        ("{{}}", f64::NAN),
    ] {
        assert!(close(avg(&h(text)), want), "avg({text})");
    }

    let sparse = "buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 \
                  0 0 0 0 0 0 0 0 0 1] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 \
                  0 0 0 0 0 0 0 0 0 0 0 0 1]";
    let cases = [
        ("{{schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]}}".to_string(), 1.163807968526718),
        ("{{schema:8 count:10 sum:10 buckets:[1 2 3 4]}}".to_string(), 2.3971123370139447e-05),
        (format!("{{{{schema:3 count:7 sum:62 z_bucket:1 {sparse}}}}}"), 1844.4651144196398),
        (
            "{{schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]}}".to_string(),
            759352122.1939945,
        ),
        ("{{schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]}}".to_string(), 1.725830020304794),
        (format!("{{{{schema:3 count:7 sum:NaN z_bucket:1 {sparse}}}}}"), f64::NAN),
        (format!("{{{{schema:3 count:7 sum:Inf z_bucket:1 {sparse}}}}}"), f64::INFINITY),
        (
            "{{schema:-53 count:110 sum:330 custom_values:[0 0.1 0.2 1] buckets:[0 50 20 40 0]}}".to_string(),
            7.527045454545455,
        ),
        (
            "{{schema:-53 count:20 sum:80 custom_values:[-0.25 -0.2 -0.1 0.3] buckets:[0 10 10 0 0]}}".to_string(),
            17.5365625,
        ),
    ];
    for (text, want) in cases {
        let hist = h(&text);
        assert!(close(stdvar(&hist), want), "stdvar({text}) = {}, want {want}", stdvar(&hist));
        assert!(close(stddev(&hist), want.sqrt()), "stddev({text}) = {}", stddev(&hist));
    }
    assert!(close(stddev(&h("{{schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]}}")), 1.0787993180043811));
    assert!(close(stddev(&h("{{schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]}}")), 1.3137084989848));
}

/// A bucket whose upper bound underflows to 0 (index near `i32::MIN`) is no zero-bucket
/// bucket when the zero bucket has width 0: subtracting it cancels it (red team P).
#[test]
fn a_bucket_at_the_lowest_index_cancels_out() {
    for (schema, side) in [(0, true), (8, true), (-4, false)] {
        let one: Side = (&[(i32::MIN, 1)], &[1.0]);
        let none: Side = (&[], &[]);
        let (pos, neg) = if side { (one, none) } else { (none, one) };
        let x = exp(schema, 0.0, 0.0, 1.0, 1.0, pos, neg);
        let mut d = x.clone();
        d.sub(&x).unwrap();
        d.compact(0);
        assert!(d.positive_buckets.is_empty() && d.negative_buckets.is_empty(), "schema {schema}: {d}");
        assert_eq!(d.count, 0.0);
    }
}
