//! The web UI in a real browser (Debian's headless Chromium, driven by chromedriver), under a
//! route prefix: type a query with completion, run it, see a table row and a drawn graph with
//! legend and tooltip; see the loadgen targets up, a firing alert and the rules; every other page
//! renders without an error.
//! Screenshots go to `target/ui-screenshots/` for a person to look at.

use std::path::PathBuf;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::webdriver::{Browser, ENTER, TAB};
use pyrite_tests::{json, Loadgen, Pyrite, PyriteOpts, TempDir};
use serde_json::json;

const RULES: &str = r#"groups:
  - name: app
    interval: 1s
    rules:
      - record: job:up:count
        expr: count by (job) (up == 1)
      - alert: TargetsUp
        expr: job:up:count >= 2
        for: 1s
        labels: {severity: info}
        annotations:
          summary: "{{ $value }} of 2 targets up"
"#;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

#[test]
fn the_ui_queries_graphs_and_shows_targets_in_chromium() {
    let loadgen = Loadgen::start(2, 20);
    let rules = TempDir::new("ui-rules");
    let rule_file = rules.0.join("rules.yml");
    std::fs::write(&rule_file, RULES).unwrap();
    let config = format!("rule_files: ['{}']\n{}", rule_file.display(), loadgen.scrape_config("app", "1s"));
    let pyrite = Pyrite::start(PyriteOpts {
        shards: Some(2),
        config: Some(config),
        extra_args: vec!["--web.route-prefix=/prometheus".into()],
        ..PyriteOpts::default()
    });
    // A few scrapes, so that the graph has lines. At least four each: the two targets' scrapes
    // are not in step, and on a loaded machine one may be at five while the other reaches four.
    let scraped = pyrite_tests::eventually(Duration::from_secs(20), || {
        let count = pyrite.query("count_over_time(up[1m])", None);
        let at_least_four =
            |s: &serde_json::Value| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) >= Some(4.0);
        count.as_array().is_some_and(|r| r.len() == 2 && r.iter().all(at_least_four)).then_some(())
    });
    assert!(scraped.is_some(), "two targets scraped four times: {}", pyrite.query("count_over_time(up[1m])", None));
    // A name PromQL takes only quoted, as OpenTelemetry sends them.
    let dotted = WriteSeries {
        labels: Labels::from_pairs([("__name__", "http.server.duration".to_string())]),
        samples: vec![Sample {
            t: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
            v: 1.0,
        }],
        exemplars: Vec::new(),
        histograms: Vec::new(),
    };
    assert_eq!(pyrite.remote_write(encode_write_request(&[dotted])).0, 204);
    let b = Browser::start();

    // The bare prefix leads to the query page.
    b.goto(&pyrite.url);
    let expr = b.element("#expr");
    assert!(b.script("return location.pathname", json!([])) == "/prometheus/query");

    // Completion: a prefix of a metric name, then Tab, gives the whole name.
    b.type_into(&expr, "loadgen_http_req");
    let options = b.wait("completions", Duration::from_secs(10), || {
        let items = b.find_all(".completions li");
        (!items.is_empty()).then_some(items)
    });
    assert_eq!(b.text(&options[0]), "loadgen_http_requests_total");
    b.type_into(&expr, TAB);
    assert_eq!(b.script("return document.getElementById('expr').value", json!([])), "loadgen_http_requests_total");

    // Such a name is written quoted, as a selector or inside a string already opened.
    for (typed, written) in
        [("http.ser", r#"{"http.server.duration"}"#), (r#"{"http.ser"#, r#"{"http.server.duration"#)]
    {
        b.script("document.getElementById('expr').value = ''", json!([]));
        b.type_into(&expr, typed);
        b.wait("a completion", Duration::from_secs(10), || (!b.find_all(".completions li").is_empty()).then_some(()));
        b.type_into(&expr, TAB);
        assert_eq!(b.script("return document.getElementById('expr').value", json!([])), written, "{typed}");
    }
    b.type_into(&expr, "\"}");
    b.type_into(&expr, ENTER);
    let row = b.wait("the quoted name's row", Duration::from_secs(10), || b.find_all("#output tbody tr").pop());
    assert!(b.text(&row).starts_with(r#"{"http.server.duration"}"#), "{}", b.text(&row));

    // A table row per target for `up`.
    b.script("document.getElementById('expr').value = ''", json!([]));
    b.type_into(&expr, "up");
    b.type_into(&expr, ENTER);
    let rows = b.wait("two table rows", Duration::from_secs(10), || {
        let rows = b.find_all("#output tbody tr");
        (rows.len() == 2).then_some(rows)
    });
    for row in &rows {
        let text = b.text(row);
        assert!(text.starts_with("up{instance=") && text.ends_with('1'), "{text}");
    }
    let controls = "return getComputedStyle(document.getElementById('graph-controls')).display";
    assert_eq!(b.script(controls, json!([])), "none", "the graph's controls belong to the graph tab");
    b.screenshot(&screenshots().join("query-table.png"));

    // The graph: a path per series with several points, a legend, a tooltip under the mouse.
    b.script("document.getElementById('range').value = '1m'", json!([]));
    b.click(&b.element("#tab-graph"));
    b.wait("two drawn series", Duration::from_secs(10), || (b.find_all("#graph path.series").len() == 2).then_some(()));
    let segments = b.script(
        "return [...document.querySelectorAll('#graph path.series')].map(p => (p.getAttribute('d').match(/L/g) || []).length)",
        json!([]),
    );
    assert!(segments.as_array().unwrap().iter().all(|n| n.as_u64() >= Some(2)), "lines of 3+ points: {segments}");
    assert_eq!(b.find_all("#legend li").len(), 2);
    let tooltip = b.script(
        "const svg = document.querySelector('#graph svg'); const r = svg.getBoundingClientRect();
         svg.dispatchEvent(new MouseEvent('mousemove', {clientX: r.right - 40, clientY: r.top + r.height / 2, bubbles: true}));
         const t = document.getElementById('tooltip'); return [t.style.display, t.textContent];",
        json!([]),
    );
    assert_eq!(tooltip[0], "block", "{tooltip}");
    let inside = b.script(
        "const g = document.getElementById('graph').getBoundingClientRect(); const t = document.getElementById('tooltip').getBoundingClientRect(); return t.left >= g.left && t.right <= g.right;",
        json!([]),
    );
    assert_eq!(inside, true, "the tooltip stays inside the graph");
    assert!(tooltip[1].as_str().unwrap().contains("up{instance="), "{tooltip}");
    let url = b.script("return location.search", json!([]));
    assert!(url.as_str().unwrap().contains("tab=graph"), "the graph is linkable: {url}");
    b.screenshot(&screenshots().join("query-graph.png"));

    // A bad query shows upstream's error, not a blank page.
    b.goto(&format!("{}/query?expr=sum(", pyrite.url));
    b.click(&b.element("#execute"));
    let error = b.text(&b.element("#output .error"));
    assert!(error.starts_with("bad_data:"), "{error}");

    // Targets: the loadgen's two, up, in their job's group.
    b.goto(&format!("{}/targets", pyrite.url));
    let rows = b.wait("two target rows", Duration::from_secs(10), || {
        let rows = b.find_all("tr.target");
        (rows.len() == 2).then_some(rows)
    });
    for row in &rows {
        assert!(b.text(row).contains("UP"), "{}", b.text(row));
    }
    assert!(b.text(&b.element("details.pool summary")).starts_with("app (2/2 up)"));
    b.screenshot(&screenshots().join("targets.png"));

    // Alerts: the firing one with its state, value, labels and expanded annotation.
    b.goto(&format!("{}/alerts", pyrite.url));
    let row = b.wait("a firing alert", Duration::from_secs(10), || {
        b.find_all("tr.alert").into_iter().find(|r| b.text(r).contains("FIRING"))
    });
    let text = b.text(&row);
    for expected in ["TargetsUp", "FIRING", "ago", "2", "severity", "info", "summary", "2 of 2 targets up"] {
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    b.screenshot(&screenshots().join("alerts.png"));

    // Rules: both, as they read in the file, healthy.
    b.goto(&format!("{}/rules", pyrite.url));
    let rows = b.wait("two rules", Duration::from_secs(10), || {
        let rows = b.find_all("tr.rule");
        (rows.len() == 2 && b.text(&rows[0]).contains("ok")).then_some(rows)
    });
    assert!(b.text(&rows[0]).contains("record: job:up:count"), "{}", b.text(&rows[0]));
    let alert = b.text(&rows[1]);
    assert!(alert.contains("alert: TargetsUp") && alert.contains("for: 1s") && alert.contains("firing"), "{alert}");
    b.screenshot(&screenshots().join("rules.png"));

    // The other pages render their data and no error.
    for (page, expect) in [
        ("status", "storageRetention"),
        ("tsdb-status", "loadgen_http_requests_total"),
        ("config", "job_name: app"),
        ("flags", "--web.route-prefix"),
    ] {
        b.goto(&format!("{}/{page}", pyrite.url));
        let text = b.wait(expect, Duration::from_secs(10), || {
            let text = b.text(&b.element("#page"));
            text.contains(expect).then_some(text)
        });
        assert!(b.find_all("#page .error").is_empty(), "{page}: {text}");
        b.screenshot(&screenshots().join(format!("{page}.png")));
    }
    let healthy = json(&pyrite.get("/api/v1/status/buildinfo").1);
    assert_eq!(healthy["status"], "success");
}
