//! Out-of-order samples (`storage.tsdb.out_of_order_time_window`) against the real binary and
//! Debian's upstream Prometheus 2.42: accepted and refused alike, read alike, kept across a
//! crash, and written to blocks of their own once their range is in blocks. Native histograms
//! out of order, which 3.x takes and 2.42 refuses, against Pyrite alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyrite_core::histogram::{FloatHistogram, Span};
use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::{HistogramSample, Sample};
use pyrite_tests::{eventually, http_get, matrix, metric_sum, remote_write_to, Pyrite, PyriteOpts, TempDir, Upstream};

const WINDOW: &str = "storage:\n  tsdb:\n    out_of_order_time_window: 30m\n";

/// A Pyrite on `shards` shards with its data in `data` and the window of [`WINDOW`].
fn windowed(data: &TempDir, shards: usize) -> PyriteOpts {
    PyriteOpts {
        shards: Some(shards),
        data_dir: Some(data.0.join("data")),
        config: Some(format!("global:\n  scrape_interval: 1h\n{WINDOW}")),
        ..Default::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// A request writing `samples` (time, value) to `ooo{s="<s>"}`, one series per entry.
fn request(series: &[(&str, Vec<(i64, f64)>)]) -> Vec<u8> {
    let series: Vec<WriteSeries> = series
        .iter()
        .map(|(s, samples)| WriteSeries {
            labels: Labels::from_pairs([("__name__", "ooo"), ("s", s)]),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    encode_write_request(&series)
}

/// The time ranges of the blocks in `dir`, sorted.
fn block_ranges(dir: &std::path::Path) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = std::fs::read_dir(dir)
        .expect("the blocks directory")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("meta.json")).ok())
        .map(|meta| {
            let meta = pyrite_tests::json(&meta);
            (meta["minTime"].as_i64().expect("minTime"), meta["maxTime"].as_i64().expect("maxTime"))
        })
        .collect();
    out.sort();
    out
}

fn metric(base: &str, name: &str) -> f64 {
    let (_, text) = http_get(&format!("{base}/metrics")).expect("metrics");
    metric_sum(&text, name, "")
}

/// The same requests to both servers get the same answers (2xx or not), and both then hold
/// the same samples and count the same: in order, out of order within the window (before a
/// series' first sample too, and on a series with one sample), a time buffered already
/// (dropped), and one older than the window (refused). The samples survive a `kill -9`.
#[test]
fn out_of_order_samples_are_accepted_refused_and_read_as_upstream() {
    let now = now_ms() / 1000 * 1000;
    let minute = 60_000;
    let data = TempDir::new("ooo");
    let opts = windowed(&data, 2);
    let mut pyrite = Pyrite::start(opts.clone());
    let upstream = Upstream::start_configured(&format!("global:\n  scrape_interval: 1h\n{WINDOW}"), &[]);
    let in_order: Vec<(i64, f64)> = (1..=20).rev().map(|k| (now - k * minute, k as f64)).collect();
    let requests = [
        ("in order", request(&[("a", in_order), ("b", vec![(now - minute, 1.0)])])),
        (
            "within the window",
            request(&[
                ("a", vec![(now - 10 * minute + 30_000, 100.0), (now - 25 * minute, 200.0)]),
                ("b", vec![(now - 5 * minute, 300.0)]),
            ]),
        ),
        ("a buffered time again", request(&[("a", vec![(now - 10 * minute + 30_000, 999.0)])])),
        ("older than the window", request(&[("a", vec![(now - 40 * minute, 400.0)])])),
    ];
    for (what, body) in &requests {
        let (ours, theirs) = (pyrite.remote_write(body.clone()), remote_write_to(&upstream.url, body));
        if *what == "older than the window" {
            // 2.42 answers 500, so that its sender retries the request forever; 3.x answers
            // 400, as Pyrite does.
            assert!(ours.0 == 400 && [400, 500].contains(&theirs.0), "{what}: {ours:?} against {theirs:?}");
        } else {
            assert_eq!(ours.0 / 100, theirs.0 / 100, "{what}: {ours:?} against {theirs:?}");
        }
    }
    let t = now as f64 / 1000.0;
    let ours = matrix(&pyrite.url, "ooo", "1h", t, &[]);
    assert_eq!(ours, matrix(&upstream.url, "ooo", "1h", t, &[]));
    let a = ours.values().next().expect("series a");
    assert_eq!(a.len(), 22, "{a:?}");
    assert!(a.contains(&(now - 10 * minute + 30_000, 100.0)) && !a.iter().any(|s| s.1 == 999.0 || s.1 == 400.0));
    for name in ["prometheus_tsdb_head_out_of_order_samples_appended_total", "prometheus_tsdb_too_old_samples_total"] {
        assert_eq!(metric(&pyrite.url, name), metric(&upstream.url, name), "{name}");
    }
    assert_eq!(metric(&pyrite.url, "prometheus_tsdb_head_out_of_order_samples_appended_total"), 3.0);
    pyrite.process.signal(libc::SIGKILL);
    drop(pyrite);
    pyrite = Pyrite::start(opts);
    assert_eq!(matrix(&pyrite.url, "ooo", "1h", t, &[]), ours, "after a crash");
}

/// Without the window, out-of-order samples are refused as upstream refuses them; a reload
/// that sets it lets them in.
#[test]
fn a_reload_sets_the_window() {
    let now = now_ms() / 1000 * 1000;
    let dir = TempDir::new("ooo-reload");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write config");
    let pyrite = Pyrite::start(PyriteOpts {
        extra_args: vec![format!("--config.file={}", config.display())],
        ..Default::default()
    });
    let upstream = Upstream::start();
    let first = request(&[("a", vec![(now - 1000, 1.0)])]);
    let late = request(&[("a", vec![(now - 5000, 2.0)])]);
    for body in [&first, &late] {
        let (ours, theirs) = (pyrite.remote_write(body.clone()).0, remote_write_to(&upstream.url, body).0);
        assert_eq!(ours / 100, theirs / 100);
    }
    assert_eq!(pyrite.metric("prometheus_tsdb_out_of_order_samples_total"), 1.0);
    std::fs::write(&config, format!("global:\n  scrape_interval: 1h\n{WINDOW}")).expect("write config");
    pyrite.process.signal(libc::SIGHUP);
    let accepted = eventually(Duration::from_secs(10), || (pyrite.remote_write(late.clone()).0 == 204).then_some(()));
    assert!(accepted.is_some(), "the reloaded window lets the late sample in");
    assert_eq!(pyrite.metric("prometheus_tsdb_head_out_of_order_samples_appended_total"), 1.0);
}

/// Out-of-order samples from a range already cut into a block are kept, answered, written to
/// a block of their own at the next housekeeping pass, merged with the block they overlap, and
/// still answered after a crash (the log has let them go by then).
#[test]
fn out_of_order_samples_behind_the_blocks_go_to_blocks_of_their_own() {
    let now = now_ms() / 1000 * 1000;
    let data = TempDir::new("ooo-blocks");
    let opts = PyriteOpts { extra_args: vec!["--storage.tsdb.min-block-duration=10s".into()], ..windowed(&data, 1) };
    let pyrite = Pyrite::start(opts.clone());
    // Two minutes of samples every 5 s: housekeeping (every 2.5 s) cuts the head down to
    // its last 15 s or so, four 10 s blocks at a time.
    let in_order: Vec<(i64, f64)> = (0..24).map(|k| (now - 120_000 + k * 5000, 1.0)).collect();
    assert_eq!(pyrite.remote_write(request(&[("a", in_order)])).0, 204);
    let cut = eventually(Duration::from_secs(30), || {
        (pyrite.metric("prometheus_tsdb_head_min_time") >= (now - 30_000) as f64).then_some(())
    });
    assert!(cut.is_some(), "the head was cut into blocks");
    let late: Vec<(i64, f64)> = (0..6).map(|k| (now - 100_000 + k * 5000 + 2500, 2.0)).collect();
    assert_eq!(pyrite.remote_write(request(&[("a", late.clone())])).0, 204);
    let t = now as f64 / 1000.0;
    let read = |p: &Pyrite| matrix(&p.url, "ooo{s=\"a\"}", "5m", t, &[]).into_values().next().expect("the series");
    let samples = read(&pyrite);
    assert_eq!(samples.len(), 30);
    assert!(late.iter().all(|s| samples.contains(s)));
    // Out-of-order samples go to blocks after a cut, as upstream: a clock series keeps the
    // head moving.
    let tick = || assert_eq!(pyrite.remote_write(request(&[("clock", vec![(now_ms(), 1.0)])])).0, 204);
    let flushed = eventually(Duration::from_secs(30), || {
        tick();
        let (_, text) = http_get(&format!("{}/metrics", pyrite.url)).expect("metrics");
        (metric_sum(&text, "pyrite_tsdb_compactions_total", "kind=\"out-of-order\"") >= 1.0).then_some(())
    });
    assert!(flushed.is_some(), "the out-of-order samples went to a block");
    assert_eq!(read(&pyrite), samples);
    let merged = eventually(Duration::from_secs(20), || {
        tick();
        let ranges = block_ranges(&pyrite.data_dir.join("blocks/0"));
        ranges.windows(2).all(|w| w[0].1 <= w[1].0).then_some(ranges)
    });
    assert!(
        merged.is_some(),
        "the overlapping blocks were merged: {:?}",
        block_ranges(&pyrite.data_dir.join("blocks/0"))
    );
    assert_eq!(read(&pyrite), samples);
    pyrite.process.signal(libc::SIGKILL);
    drop(pyrite);
    let pyrite = Pyrite::start(opts);
    assert_eq!(read(&pyrite), samples, "after a crash");
}

/// A histogram of `3k` observations in two buckets and the zero bucket.
fn histogram(k: i64) -> FloatHistogram {
    let k = k as f64;
    FloatHistogram {
        zero_threshold: 0.001,
        zero_count: k,
        count: 3.0 * k,
        sum: 1.5 * k,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![k, k],
        ..FloatHistogram::default()
    }
}

/// A request writing `ooo_h` with `histogram(k)` at each `(time, k)`.
fn histograms(samples: &[(i64, i64)]) -> Vec<u8> {
    encode_write_request(&[WriteSeries {
        labels: Labels::from_pairs([("__name__", "ooo_h")]),
        samples: Vec::new(),
        exemplars: Vec::new(),
        histograms: samples.iter().map(|&(t, k)| HistogramSample { t, h: Arc::new(histogram(k)) }).collect(),
    }])
}

/// Native histograms out of order, as upstream 3.x takes them: within the window accepted and
/// read in time order with the others (also by functions over ranges), the same one again
/// accepted as a retry, another at a time held apart dropped, one older than the window
/// refused; all kept across a `kill -9`.
#[test]
fn out_of_order_histograms_are_accepted_within_the_window() {
    let now = now_ms() / 60_000 * 60_000;
    let minute = 60_000;
    let data = TempDir::new("ooo-histograms");
    let opts = windowed(&data, 2);
    let mut pyrite = Pyrite::start(opts.clone());
    let at = |k: i64| (now - k * minute, k);
    let in_order: Vec<(i64, i64)> = (2..=20).rev().step_by(2).map(at).collect();
    assert_eq!(pyrite.remote_write(histograms(&in_order)).0, 204);
    let late: Vec<(i64, i64)> = (3..=19).step_by(2).map(at).collect();
    assert_eq!(pyrite.remote_write(histograms(&late)).0, 204);
    assert_eq!(pyrite.remote_write(histograms(&late[..1])).0, 204, "a retry");
    assert_eq!(pyrite.remote_write(histograms(&[(late[1].0, 99)])).0, 204, "dropped as upstream drops it");
    let too_old = pyrite.remote_write(histograms(&[at(40)]));
    assert_eq!(too_old.0, 400, "{too_old:?}");
    // Counted by type, as upstream counts them.
    let text = pyrite.get("/metrics").1;
    for (name, histograms) in [
        ("prometheus_tsdb_head_out_of_order_samples_appended_total", 10.0),
        ("prometheus_tsdb_head_samples_appended_total", 20.0),
        ("prometheus_tsdb_too_old_samples_total", 1.0),
    ] {
        assert_eq!(metric_sum(&text, name, "type=\"histogram\""), histograms, "{name}");
        assert_eq!(metric_sum(&text, name, "type=\"float\""), 0.0, "{name}");
    }
    let read = |p: &Pyrite| {
        let start = (now - 20 * minute) as f64 / 1000.0;
        let result = p.query_range("histogram_count(ooo_h)", start, (now - 2 * minute) as f64 / 1000.0, 60.0);
        let values = result[0]["values"].as_array().cloned().unwrap_or_default();
        let counts: Vec<String> = values.iter().map(|v| v[1].as_str().unwrap_or("?").to_string()).collect();
        let counted = p.query("count_over_time(ooo_h[30m])", Some(now as f64 / 1000.0));
        (counts, counted[0]["value"][1].as_str().map(str::to_string))
    };
    let expected: Vec<String> = (2..=20).rev().map(|k| (3 * k).to_string()).collect();
    assert_eq!(read(&pyrite), (expected.clone(), Some("19".to_string())));
    pyrite.process.signal(libc::SIGKILL);
    drop(pyrite);
    pyrite = Pyrite::start(opts);
    assert_eq!(read(&pyrite), (expected, Some("19".to_string())), "after a crash");
}
