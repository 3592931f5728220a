//! `load_with_nhcb` (FORMAT.md §3.2): native histograms with custom buckets built from the
//! classic-histogram series of a load block (`_bucket` with `le`, `_count`, `_sum`), stored
//! beside them under the base name.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyrite_core::histogram::{FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use pyrite_core::labels::{Labels, METRIC_NAME};
use pyrite_core::series_notation::Point;

use super::script::SeriesPoints;

/// What one classic-histogram group holds at one time.
#[derive(Default)]
struct Classic {
    /// `(le, cumulative count)`, as the `_bucket` series give them.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: Option<f64>,
}

/// The part of a classic histogram `labels` names, and its group: the base name and the
/// labels without `le`.
enum Part {
    Bucket(f64),
    Count,
    Sum,
}

fn part_of(labels: &Labels) -> Option<(Labels, Part)> {
    let name = labels.metric_name();
    let (base, part) = if let Some(base) = name.strip_suffix("_bucket") {
        let le = pyrite_core::exposition::text::parse_float(labels.get("le")).filter(|le| !le.is_nan())?;
        (base, Part::Bucket(le))
    } else if let Some(base) = name.strip_suffix("_count") {
        (base, Part::Count)
    } else {
        (name.strip_suffix("_sum")?, Part::Sum)
    };
    let pairs = labels.iter().filter(|l| l.name != "le").map(|l| {
        let value = if l.name == METRIC_NAME { base.to_string() } else { l.value.clone() };
        (l.name.clone(), value)
    });
    Some((Labels::from_pairs(pairs), part))
}

/// The native histograms the classic series of `series` make, one series per group.
pub fn histograms_of(series: &[SeriesPoints]) -> Result<Vec<SeriesPoints>, String> {
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Classic>> = BTreeMap::new();
    for (labels, points) in series {
        let Some((group, part)) = part_of(labels) else { continue };
        let at = groups.entry(group).or_default();
        for (t, point) in points {
            let Point::Value(v) = point else { continue };
            let classic = at.entry(*t).or_default();
            match part {
                Part::Bucket(le) => classic.buckets.push((le, *v)),
                Part::Count => classic.count = Some(*v),
                Part::Sum => classic.sum = Some(*v),
            }
        }
    }
    let mut out = Vec::new();
    for (labels, at) in groups {
        let mut points = Vec::new();
        for (t, classic) in at {
            if classic.buckets.is_empty() {
                continue;
            }
            let h = build(classic).map_err(|e| format!("{labels} at {t}: {e}"))?;
            points.push((t, Point::Histogram(Arc::new(h))));
        }
        if !points.is_empty() {
            out.push((labels, points));
        }
    }
    Ok(out)
}

/// One custom-bucket histogram from one time's classic buckets, count and sum.
fn build(mut classic: Classic) -> Result<FloatHistogram, String> {
    classic.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    classic.buckets.dedup_by(|later, earlier| later.0 == earlier.0);
    if classic.buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        let highest = classic.buckets.last().map_or(0.0, |b| b.1);
        classic.buckets.push((f64::INFINITY, classic.count.unwrap_or(highest)));
    }
    let total = classic.buckets.last().map_or(0.0, |b| b.1);
    if classic.count.is_some_and(|c| c != total) {
        return Err(format!("count {:?} differs from the +Inf bucket's {total}", classic.count));
    }
    let mut previous = 0.0;
    let mut counts = Vec::with_capacity(classic.buckets.len());
    for &(_, cumulative) in &classic.buckets {
        if cumulative < previous || cumulative < 0.0 {
            return Err("bucket counts are negative or decrease".into());
        }
        counts.push(cumulative - previous);
        previous = cumulative;
    }
    let bounds: Vec<f64> = classic.buckets.iter().map(|b| b.0).filter(|le| le.is_finite()).collect();
    Ok(FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: total,
        sum: classic.sum.unwrap_or(0.0),
        positive_spans: vec![Span { offset: 0, length: counts.len() as u32 }],
        positive_buckets: counts,
        custom_values: bounds,
        ..FloatHistogram::default()
    })
}
