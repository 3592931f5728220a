//! Comparing Pyrite's query answers with upstream Prometheus's on the same remote-written data
//! (`tests/differential.rs`, `tests/native_histograms.rs`): the data's time grid, evaluation
//! times off it, and answers parsed into points compared with upstream's test tolerance.
//!
//! Prometheus 2.x selects closed windows (`[t-5m, t]`), 3.x left-open ones (`(t-5m, t]`). Every
//! evaluation time [`at`] gives lies half a sample interval off the grid, so no sample ever sits
//! on a window's edge and both semantics select the same samples.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{encode, http_get, json};

/// Start of the data: 2023-11-14T22:13:20Z, in ms.
pub const T0: i64 = 1_700_000_000_000;
/// The data's sample interval.
pub const STEP_MS: i64 = 15_000;

/// The evaluation time `offset_steps` samples after [`T0`], half a step off the grid, in seconds.
pub fn at(offset_steps: i64) -> f64 {
    (T0 + offset_steps * STEP_MS + STEP_MS / 2) as f64 / 1000.0
}

/// A point of an answer: a float, or a histogram as `[count, sum, buckets...]`, each bucket
/// `[boundaries, lower, upper, count]`, all as floats.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    Float(f64),
    Histogram(Vec<f64>),
}

/// An answer's series by their labels (as JSON text), each with its `(time, point)`s in time
/// order.
pub type Points = BTreeMap<String, Vec<(f64, Point)>>;

/// A query answer's points; panics (naming `what`) if it is not a success.
pub fn result_points(body: &str, what: &str) -> Points {
    let v = json(body);
    assert_eq!(v["status"], "success", "{what}: {body}");
    let data = &v["data"];
    let number = |v: &Value| v.as_str().and_then(|s| s.parse().ok()).or(v.as_f64()).unwrap_or(f64::NAN);
    let float = |p: &Value| (p[0].as_f64().unwrap_or(f64::NAN), Point::Float(number(&p[1])));
    let histogram = |p: &Value| {
        let h = &p[1];
        let mut flat = vec![number(&h["count"]), number(&h["sum"])];
        for b in h["buckets"].as_array().into_iter().flatten() {
            flat.extend(b.as_array().expect("bucket").iter().map(number));
        }
        (p[0].as_f64().unwrap_or(f64::NAN), Point::Histogram(flat))
    };
    let mut out = BTreeMap::new();
    match data["resultType"].as_str() {
        Some("scalar") => {
            out.insert("scalar".into(), vec![float(&data["result"])]);
        }
        Some("vector") | Some("matrix") => {
            for s in data["result"].as_array().expect("result list") {
                let mut points: Vec<(f64, Point)> = Vec::new();
                points.extend(s.get("value").map(float));
                points.extend(s.get("histogram").map(histogram));
                points.extend(s["values"].as_array().into_iter().flatten().map(float));
                points.extend(s["histograms"].as_array().into_iter().flatten().map(histogram));
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                out.insert(s["metric"].to_string(), points);
            }
        }
        other => panic!("{what}: unexpected result type {other:?}"),
    }
    out
}

/// Equal within upstream's test tolerance (relative 1e-6), NaN equal to NaN.
pub fn almost_equal(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() / (a.abs() + b.abs()) < 1e-6
}

fn same_point(a: &Point, b: &Point) -> bool {
    match (a, b) {
        (Point::Float(x), Point::Float(y)) => almost_equal(*x, *y),
        (Point::Histogram(x), Point::Histogram(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| almost_equal(*a, *b))
        }
        _ => false,
    }
}

/// How two answers to `what` differ (Pyrite's first), if they do.
pub fn compare(what: &str, ours: &Points, theirs: &Points) -> Option<String> {
    if ours.keys().ne(theirs.keys()) {
        return Some(format!(
            "{what}: series differ\n  pyrite:     {:?}\n  prometheus: {:?}",
            ours.keys(),
            theirs.keys()
        ));
    }
    for (labels, points) in ours {
        let other = &theirs[labels];
        let same =
            points.len() == other.len() && points.iter().zip(other).all(|(a, b)| a.0 == b.0 && same_point(&a.1, &b.1));
        if !same {
            return Some(format!("{what}: {labels} differs\n  pyrite:     {points:?}\n  prometheus: {other:?}"));
        }
    }
    None
}

/// How the two servers' answers to `q` differ at three times and over a range (left out for a
/// range selector, which only instant queries take).
pub fn differences(pyrite: &str, upstream: &str, q: &str) -> Vec<String> {
    let mut paths: Vec<(String, String)> = [at(40), at(100), at(150)]
        .iter()
        .map(|t| (format!("{q} at {t}"), format!("/api/v1/query?query={}&time={t}", encode(q))))
        .collect();
    if !q.ends_with(']') {
        let range = format!("/api/v1/query_range?query={}&start={}&end={}&step=60", encode(q), at(30), at(155));
        paths.push((format!("{q} over a range"), range));
    }
    paths
        .into_iter()
        .filter_map(|(what, path)| {
            let ours = result_points(&http_get(&format!("{pyrite}{path}")).expect("pyrite answers").1, &what);
            let theirs = result_points(&http_get(&format!("{upstream}{path}")).expect("upstream answers").1, &what);
            compare(&what, &ours, &theirs)
        })
        .collect()
}
