//! Rule groups evaluated concurrently, end to end: a slow group (an alerting rule whose
//! annotation runs a template `query` for each of its thousands of alerts) does not delay a fast
//! group's schedule, and with `--enable-feature=concurrent-rule-eval` the independent rules of
//! one group run at once while a rule that reads another rule's output still sees it.

use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{eventually, Pyrite, PyriteOpts, TempDir};
use serde_json::Value;

/// Series `slow_input{i}` the slow rules alert on, one alert each. The slow group's time grows
/// with their square (a query over all of them per alert); 4,000 took 2.2 s once shards
/// answered light queries themselves, under the three seconds the test needs; 6,000 took 3.7 s.
const SLOW_SERIES: usize = 8000;

/// An alerting rule that takes seconds: a template `query` (a round trip through the shards) for
/// each of its alerts, so its time is spent on its own thread and in many short queries, not in
/// one long fragment that would hold a shard (and every other group's queries) up.
fn slow_alert(name: &str, selector: &str) -> String {
    format!(
        "      - alert: {name}\n        expr: {selector} > 0\n        annotations:\n          \
         summary: '{{{{ with query \"count(slow_input)\" }}}}{{{{ . | first | value }}}}{{{{ end }}}}'\n"
    )
}

fn start(rules: &str, extra_args: &[&str]) -> (Pyrite, TempDir) {
    let dir = TempDir::new("rule-groups");
    let file = dir.0.join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let pyrite = Pyrite::start(PyriteOpts {
        config: Some(format!("rule_files: ['{}']\n", file.display())),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    });
    // Fresh for the whole test (the lookback is 5 minutes).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let series: Vec<WriteSeries> = (0..SLOW_SERIES)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([
                ("__name__".to_string(), "slow_input".to_string()),
                ("i".to_string(), i.to_string()),
            ]),
            samples: vec![Sample { t: now, v: 1.0 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    assert_eq!(pyrite.remote_write(encode_write_request(&series)).0, 204);
    (pyrite, dir)
}

/// The group named `name` in `/api/v1/rules`.
fn group(pyrite: &Pyrite, name: &str) -> Value {
    let groups = pyrite.data("/api/v1/rules")["groups"].as_array().cloned().unwrap_or_default();
    groups.into_iter().find(|g| g["name"] == name).unwrap_or(Value::Null)
}

/// Waits until the group has evaluated over the slow input (every alert active, every rule
/// healthy); the time that evaluation took.
fn evaluated(pyrite: &Pyrite, name: &str, alerts: usize, limit: Duration) -> f64 {
    eventually(limit, || {
        let g = group(pyrite, name);
        let rules = g["rules"].as_array()?;
        let done = |r: &Value| {
            r["health"] == "ok" && r["type"] != "alerting" || r["alerts"].as_array().map(Vec::len) == Some(alerts)
        };
        rules.iter().all(done).then(|| g["evaluationTime"].as_f64()).flatten()
    })
    .unwrap_or_else(|| panic!("group {name} did not evaluate: {:.300}", group(pyrite, name).to_string()))
}

#[test]
fn a_slow_group_does_not_delay_a_fast_group() {
    let rules = format!(
        "groups:\n  - name: slow\n    interval: 1s\n    rules:\n{}  - name: fast\n    interval: 1s\n    rules:\n      \
         - record: fast_tick\n        expr: vector(1)\n",
        slow_alert("Slow", "slow_input")
    );
    let (pyrite, _dir) = start(&rules, &[]);
    let slow = evaluated(&pyrite, "slow", SLOW_SERIES, Duration::from_secs(60));
    eprintln!("the slow group's evaluation took {slow} s");
    assert!(slow >= 3.0, "the slow group must take over three intervals to show anything: {slow} s");
    // Two slow evaluations more, while the fast group goes on.
    std::thread::sleep(Duration::from_secs_f64(2.0 * slow));
    let window = (3.0 * slow).ceil() as u64;
    let answer = pyrite.query(&format!("fast_tick[{window}s]"), None);
    let samples = answer[0]["values"].as_array().cloned().unwrap_or_default();
    let times: Vec<f64> = samples.iter().filter_map(|s| s[0].as_f64()).collect();
    assert!(times.len() as f64 >= window as f64 / 2.0, "{} evaluations of the fast group in {window} s", times.len());
    let widest = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(widest <= 3.0, "the fast group (1 s interval) waited {widest} s while the slow one took {slow} s");
    let missed = pyrite.metric("prometheus_rule_group_iterations_missed_total");
    assert!(missed >= 2.0, "the slow group's overrun slots are counted as missed: {missed}");
}

/// A tenth of the slow input: rules that take a while, not as long as the slow group.
const TENTH: &str = "slow_input{i=~\".*0\"}";

#[test]
fn independent_rules_of_a_group_run_at_once_and_dependent_ones_see_their_inputs() {
    let rules = format!(
        "groups:\n  - name: mixed\n    interval: 2s\n    rules:\n{}{}{}      - record: now_in\n        \
         expr: vector(time()) + 0 * count(slow_input)\n      - record: now_out\n        expr: now_in\n",
        slow_alert("SlowA", TENTH),
        slow_alert("SlowB", TENTH),
        slow_alert("SlowC", TENTH)
    );
    let (pyrite, _dir) = start(&rules, &["--enable-feature=concurrent-rule-eval", "--rules.max-concurrent-evals=4"]);
    evaluated(&pyrite, "mixed", SLOW_SERIES / 10, Duration::from_secs(60));
    // One evaluation more, all of it with the rules in force from the start.
    let first = group(&pyrite, "mixed")["lastEvaluation"].clone();
    eventually(Duration::from_secs(60), || (group(&pyrite, "mixed")["lastEvaluation"] != first).then_some(()))
        .expect("a second evaluation");
    let g = group(&pyrite, "mixed");
    let whole = g["evaluationTime"].as_f64().unwrap();
    let rules = g["rules"].as_array().unwrap();
    let sum: f64 = rules.iter().filter_map(|r| r["evaluationTime"].as_f64()).sum();
    let slowest = rules.iter().filter_map(|r| r["evaluationTime"].as_f64()).fold(0.0, f64::max);
    eprintln!("the group took {whole} s, its rules {sum} s in all, the slowest {slowest} s");
    assert!(whole < 0.7 * sum, "the group took {whole} s for rules taking {sum} s in all (slowest {slowest} s)");
    // `now_out` reads `now_in` of the same evaluation (`time()` then), not the one before.
    let answer = pyrite.query("now_out[5m]", None);
    let samples = answer[0]["values"].as_array().cloned().unwrap_or_default();
    assert!(!samples.is_empty(), "{answer} {:.2000}", g.to_string());
    for sample in &samples {
        let (t, v) = (sample[0].as_f64().unwrap(), sample[1].as_str().unwrap().parse::<f64>().unwrap());
        assert_eq!(v, t, "now_out at {t} read now_in of another evaluation");
    }
}

/// A thousand groups all evaluate, on a bounded pool of threads rather than a thread each.
#[test]
fn a_thousand_groups_evaluate_on_a_bounded_pool_of_threads() {
    let groups = 1000;
    let mut rules = String::from("groups:\n");
    for i in 0..groups {
        rules += &format!(
            "  - name: g{i}\n    interval: 1s\n    rules:\n      - record: tick\n        expr: vector(1)\n        \
             labels:\n          g: '{i}'\n"
        );
    }
    let (pyrite, _dir) = start(&rules, &[]);
    let counted = eventually(Duration::from_secs(60), || {
        let n = pyrite.query("count(tick)", None)[0]["value"][1].as_str()?.parse::<usize>().ok()?;
        (n == groups).then_some(n)
    });
    assert_eq!(counted, Some(groups), "every group records its tick");
    let threads = pyrite.process.threads();
    eprintln!("{threads} threads for {groups} groups");
    assert!(threads < 200, "{threads} threads for {groups} groups");
}
