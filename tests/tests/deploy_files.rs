//! The deployment files of `deploy/` are what they claim to be: the configurations pass
//! `pyrite check config` and Debian's promtool (rule files included), Alertmanager's pass
//! amtool, the high-availability replicas differ in their replica label only, the AWS
//! inputs parse and agree on the route prefix, the Compose file waits for Pyrite's exec-form
//! health check and mounts files that exist, and every query of the
//! provisioned Grafana dashboard is valid PromQL to a running Pyrite. (`container.rs` runs the
//! image as the ECS task definition says.)

use std::path::{Path, PathBuf};
use std::process::Command;

use pyrite_tests::{bin, encode, Pyrite, PyriteOpts};
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `program args` and panics with its output unless it exits 0.
fn passes(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_configurations_pass_pyrite_and_upstreams_checks() {
    for config in ["ecs/prometheus.yml", "compose/prometheus.yml", "ha/prometheus-a.yml", "ha/prometheus-b.yml"] {
        let file = deploy(config);
        let file = file.to_str().expect("UTF-8 path");
        passes(&bin("pyrite"), &["check", "config", file]);
        passes(Path::new("promtool"), &["check", "config", file]);
    }
    for config in ["compose/alertmanager.yml", "ha/alertmanager.yml"] {
        passes(Path::new("amtool"), &["check-config", deploy(config).to_str().expect("UTF-8")]);
    }
}

/// The replicas of `deploy/ha` differ in their replica label (and the comment naming the
/// other file) only: same targets, rules, Alertmanagers and remote writes.
#[test]
fn the_high_availability_replicas_differ_only_in_their_replica_label() {
    let read = |file: &str| std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (a, b) = (read("ha/prometheus-a.yml"), read("ha/prometheus-b.yml"));
    let differing: Vec<(&str, &str)> =
        a.lines().zip(b.lines()).filter(|(x, y)| x != y && !x.starts_with('#')).collect();
    assert_eq!(differing, [("    replica: a", "    replica: b")]);
    assert_eq!(a.lines().count(), b.lines().count());
}

#[test]
fn the_load_balancer_checks_and_forwards_the_task_definitions_route_prefix() {
    let task = read_json("ecs/task-definition.json");
    let container = &task["containerDefinitions"][0];
    let command: Vec<&str> =
        container["command"].as_array().expect("command").iter().filter_map(Value::as_str).collect();
    let external = command.iter().find_map(|a| a.strip_prefix("--web.external-url=")).expect("an external URL");
    let prefix = &external[external.find("://").expect("a URL") + 3..];
    let prefix = prefix[prefix.find('/').expect("a path")..].trim_end_matches('/');
    let health: Vec<&str> = container["healthCheck"]["command"]
        .as_array()
        .expect("health check")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(&health[..3], ["CMD", "/bin/pyrite", "health"]);
    assert!(health.contains(&format!("--web.external-url={external}").as_str()), "the probe misses the prefix");
    assert_eq!(read_json("ecs/target-group.json")["HealthCheckPath"], format!("{prefix}/-/ready"));
    let rule = read_json("ecs/listener-rule.json");
    let patterns = &rule["Conditions"][0]["PathPatternConfig"]["Values"];
    assert_eq!(patterns, &serde_json::json!([prefix, format!("{prefix}/*")]));
    let efs = read_json("ecs/efs-volume.json");
    assert_eq!(efs["mountPoints"][0]["containerPath"], "/prometheus");
    assert_eq!(efs["mountPoints"][0]["sourceVolume"], efs["volumes"][0]["name"]);
}

#[test]
fn compose_starts_grafana_once_pyrite_is_healthy_and_mounts_what_exists() {
    let text = std::fs::read_to_string(deploy("compose/compose.yaml")).expect("compose.yaml");
    let compose: Value = serde_norway::from_str(&text).expect("YAML");
    let services = &compose["services"];
    assert_eq!(services["pyrite"]["healthcheck"]["test"], serde_json::json!(["CMD", "/bin/pyrite", "health"]));
    assert_eq!(services["grafana"]["depends_on"]["pyrite"]["condition"], "service_healthy");
    for (name, service) in services.as_object().expect("services") {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().expect("short syntax").split(':').next().expect("a source");
            if let Some(relative) = source.strip_prefix("./") {
                assert!(deploy("compose").join(relative).exists(), "{name} mounts {source}, which is missing");
            }
        }
    }
    let datasource: Value = serde_norway::from_str(
        &std::fs::read_to_string(deploy("compose/grafana/provisioning/datasources/pyrite.yml")).expect("datasource"),
    )
    .expect("YAML");
    assert_eq!(datasource["datasources"][0]["url"], "http://pyrite:9090");
}

#[test]
fn every_query_of_the_provisioned_dashboard_is_valid_promql() {
    let dashboard = read_json("compose/grafana/dashboards/pyrite-overview.json");
    let p = Pyrite::start(PyriteOpts::default());
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            // Grafana's rate interval: four scrape intervals.
            let expr = target["expr"].as_str().expect("expr").replace("$__rate_interval", "1m");
            let (status, body) = p.get(&format!("/api/v1/query?query={}", encode(&expr)));
            assert_eq!(status, 200, "{expr}: {body}");
            queries += 1;
        }
    }
    assert!(queries >= 5);
}
