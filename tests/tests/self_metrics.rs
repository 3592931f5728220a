//! The server's own metrics under upstream's names: every query of Grafana's "Prometheus 2.0
//! Stats" dashboard (`tests/dashboards/prometheus-2-0-stats.txt`) returns data when the server
//! scrapes itself and evaluates a rule group, as it would against Prometheus.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyrite_tests::{eventually, free_port, Pyrite, PyriteOpts, TempDir};

/// The dashboard's queries, and whether upstream answers each (see the fixture's header).
fn dashboard_queries() -> Vec<(String, bool)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards/prometheus-2-0-stats.txt");
    let text = std::fs::read_to_string(&path).expect("the dashboard's queries");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix("renamed-upstream: ") {
            Some(query) => (query.to_string(), false),
            None => (l.to_string(), true),
        })
        .collect()
}

/// A server scraping itself every second as job `prometheus`, with a rule group evaluated every
/// second; returned once it has scraped itself a few times.
fn self_scraping_server(rules: &TempDir) -> Pyrite {
    let rule_file = rules.0.join("rules.yml");
    std::fs::write(
        &rule_file,
        "groups:\n  - name: up\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n",
    )
    .expect("write rules");
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        rule_file.display()
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), port: Some(port), shards: Some(2), ..Default::default() });
    eventually(Duration::from_secs(30), || {
        let r = p.query("count_over_time(up{job=\"prometheus\"}[1m])", None);
        (r[0]["value"][1].as_str()?.parse::<f64>().ok()? >= 5.0).then_some(())
    })
    .expect("five scrapes of itself within 30 s");
    p
}

#[test]
fn every_query_of_grafanas_prometheus_2_0_stats_dashboard_returns_data() {
    let rules = TempDir::new("rules");
    let p = self_scraping_server(&rules);
    // A query of its own, so that the query duration summary has observations when scraped.
    p.query("up", None);
    std::thread::sleep(Duration::from_secs(2));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    let queries = dashboard_queries();
    assert_eq!(queries.len(), 21, "the dashboard has 21 queries");
    let mut empty = Vec::new();
    for (query, upstream_answers) in &queries {
        let result = p.query_range(query, now - 3600.0, now, 2.0);
        let points = result
            .as_array()
            .map_or(0, |series| series.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum::<usize>());
        if *upstream_answers {
            if points == 0 {
                empty.push(query.as_str());
            }
        } else {
            // The dashboard's outdated name is not exported: answered as upstream answers it.
            assert_eq!(points, 0, "{query} answered by a name upstream no longer has: {result}");
        }
    }
    assert!(empty.is_empty(), "dashboard queries without data:\n{}", empty.join("\n"));
}

#[test]
fn storage_figures_are_sums_over_shards_with_the_detail_per_shard() {
    let rules = TempDir::new("rules");
    let p = self_scraping_server(&rules);
    // Shards append between the total and their own figure are read: compare a quiet read.
    let text = eventually(Duration::from_secs(10), || {
        let text = p.get("/metrics").1;
        let sum = |name: &str, filter: &str| pyrite_tests::metric_sum(&text, name, filter);
        let consistent = [
            ("prometheus_tsdb_head_series", "pyrite_head_series"),
            ("prometheus_tsdb_head_samples_appended_total", "pyrite_head_samples_appended_total"),
        ]
        .iter()
        .all(|(total, per_shard)| {
            sum(total, "") > 0.0 && sum(total, "") == sum(per_shard, "shard=") && sum(per_shard, "shard=\"1\"") > 0.0
        });
        consistent.then_some(text)
    })
    .expect("upstream's totals are the sums of the shards' figures");
    for line in [
        "prometheus_tsdb_head_samples_appended_total{type=\"float\"} ",
        "prometheus_target_interval_length_seconds{interval=\"1s\",quantile=\"0.99\"} ",
        "prometheus_target_scrape_pool_targets{scrape_job=\"prometheus\"} 1",
        "prometheus_sd_discovered_targets{config=\"prometheus\",name=\"scrape\"} 1",
        "prometheus_http_requests_total{handler=\"/metrics\",code=\"200\"} ",
        "prometheus_config_last_reload_successful 1",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    // The summaries observe what happened (their quantile lines exist from the start).
    for (summary, filter) in [
        ("prometheus_engine_query_duration_seconds_count", "slice=\"prepare_time\""),
        ("prometheus_engine_query_duration_seconds_count", "slice=\"queue_time\""),
        ("prometheus_engine_query_duration_seconds_count", "slice=\"inner_eval\""),
        ("prometheus_rule_group_duration_seconds_count", ""),
        ("prometheus_rule_evaluation_duration_seconds_count", ""),
        ("prometheus_target_interval_length_seconds_count", "interval=\"1s\""),
        ("prometheus_target_sync_length_seconds_count", "scrape_job=\"prometheus\""),
        ("prometheus_tsdb_head_series_created_total", ""),
    ] {
        assert!(pyrite_tests::metric_sum(&text, summary, filter) > 0.0, "{summary}{{{filter}}} in:\n{text}");
    }
}
