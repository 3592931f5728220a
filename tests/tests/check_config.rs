//! `pyrite check config` against `promtool check config` (Debian's) on configurations naming
//! rule files: valid ones found by name and by glob, a glob matching nothing, a broken one and
//! a missing one. The same exit code and the same report on stdout for each (Pyrite adds the
//! scrape config count to the syntax line), and the failure names the rule file.

use std::path::Path;
use std::process::Command;

use pyrite_tests::{bin, TempDir};

const GOOD_RULES: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n";
const BROKEN_RULES: &str =
    "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up +\n";
const SCRAPE: &str = "scrape_configs: [{job_name: a, static_configs: [{targets: ['localhost:1']}]}]\n";

/// (exit code, stdout, stderr) of `program check config prometheus.yml`, run in `dir` so that
/// both print the same relative paths.
fn check(program: &Path, dir: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {} (promtool is installed by scripts/test): {e}", program.display()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Pyrite's syntax line without the scrape config count promtool does not print.
fn promtool_form(stdout: &str) -> String {
    let count = regex::Regex::new(r" \(\d+ scrape configs\)").unwrap();
    count.replace_all(stdout, "").into_owned()
}

/// Checks the configuration `rule_files` in a directory holding `rules/good.yml`,
/// `rules/also.good.yml` and `rules/broken.bad.yml`; returns Pyrite's (exit code, stdout,
/// stderr) after comparing exit code and stdout with promtool's.
fn compare(rule_files: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new("check-config");
    std::fs::create_dir_all(dir.0.join("rules")).unwrap();
    std::fs::write(dir.0.join("rules/good.yml"), GOOD_RULES).unwrap();
    std::fs::write(dir.0.join("rules/also.good.yml"), GOOD_RULES).unwrap();
    std::fs::write(dir.0.join("rules/broken.bad.yml"), BROKEN_RULES).unwrap();
    std::fs::write(dir.0.join("prometheus.yml"), format!("rule_files: {rule_files}\n{SCRAPE}")).unwrap();
    let ours = check(&bin("pyrite"), &dir.0);
    let theirs = check(Path::new("promtool"), &dir.0);
    assert_eq!(ours.0, theirs.0, "exit codes for rule_files {rule_files}:\n{ours:?}\n{theirs:?}");
    assert_eq!(promtool_form(&ours.1), theirs.1, "stdout for rule_files {rule_files}");
    ours
}

#[test]
fn check_config_checks_the_rule_files_it_names_as_promtool_does() {
    // Found by name and by glob, relative to the configuration's directory; a glob that
    // matches nothing names no file.
    let (code, stdout, _) = compare("[rules/good.yml, 'rules/*.good.yml', 'nowhere/*.yml']");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("  SUCCESS: 2 rule files found\n"), "{stdout}");
    assert!(stdout.contains("Checking rules/also.good.yml\n  SUCCESS: 2 rules found\n"), "{stdout}");

    // A broken rule file fails the check, naming the file and the rule.
    let (code, stdout, stderr) = compare("['rules/*.yml']");
    assert_eq!(code, Some(1));
    assert!(stdout.contains("Checking rules/broken.bad.yml\n"), "{stdout}");
    assert!(stderr.contains("  FAILED:\n     rules/broken.bad.yml: group \"g\", rule 1, \"job:up:sum\""), "{stderr}");

    // A rule file named outright must exist, with promtool's message.
    let (code, _, stderr) = compare("[rules/good.yml, rules/missing.yml]");
    assert_eq!(code, Some(1));
    assert_eq!(stderr, "  FAILED: \"rules/missing.yml\" does not point to an existing file\n");
}

/// A `remote_write` entry with every key Prometheus 2.42 knows, and two more with the 3.x
/// ones and `oauth2`.
const FULL_REMOTE_WRITE: &str = "remote_write:
  - url: https://aps.example/api/v1/remote_write
    name: amp
    remote_timeout: 10s
    headers: {X-Scope-OrgID: tenant}
    write_relabel_configs: [{source_labels: [__name__], regex: 'go_.*', action: drop}]
    send_exemplars: true
    send_native_histograms: true
    follow_redirects: false
    enable_http2: true
    tls_config: {insecure_skip_verify: true, server_name: aps}
    proxy_url: http://proxy:3128
    queue_config: {capacity: 500, max_shards: 10, min_shards: 2, max_samples_per_send: 100, batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 1s, retry_on_http_429: true}
    metadata_config: {send: false, send_interval: 2m, max_samples_per_send: 10}
    sigv4: {region: eu-west-1, access_key: AK, secret_key: SK, profile: p, role_arn: 'arn:aws:iam::1:role/r'}
  - url: http://second/api/v1/write
    oauth2: {client_id: id, client_secret: cs, scopes: [a], token_url: 'https://idp/token', endpoint_params: {audience: x}}
";

const REMOTE_WRITE_3X: &str = "  - url: http://third/api/v1/write
    round_robin_dns: true
    protobuf_message: io.prometheus.write.v2.Request
    queue_config: {sample_age_limit: 5m}
    sigv4: {region: eu-west-1, use_fips_sts_endpoint: true, service_name: aps}
";

#[test]
fn remote_write_entries_are_checked_as_promtool_checks_them() {
    let dir = TempDir::new("check-remote-write");
    let run = |text: &str| {
        std::fs::write(dir.0.join("prometheus.yml"), text).unwrap();
        (check(&bin("pyrite"), &dir.0), check(Path::new("promtool"), &dir.0))
    };
    let (ours, theirs) = run(FULL_REMOTE_WRITE);
    assert_eq!((ours.0, theirs.0), (Some(0), Some(0)), "{ours:?}\n{theirs:?}");
    let (ours, _) = run(&format!("{FULL_REMOTE_WRITE}{REMOTE_WRITE_3X}"));
    assert_eq!(ours.0, Some(0), "{ours:?}");

    // Refused by both, with upstream's words; Pyrite names the key.
    for (text, path, message) in [
        ("remote_write: [{}]", "remote_write[0].url", "url for remote_write is empty"),
        (
            "remote_write: [{url: 'http://a/', name: x}, {url: 'http://b/', name: x}]",
            "remote_write[1].name",
            "found multiple remote write configs with job name \"x\"",
        ),
        (
            "remote_write: [{url: 'http://a/', headers: {User-Agent: x}}]",
            "remote_write[0].headers",
            "User-Agent is a reserved header. It must not be changed",
        ),
        (
            "remote_write: [{url: 'http://a/', sigv4: {access_key: a}}]",
            "remote_write[0].sigv4",
            "must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config",
        ),
        (
            "remote_write: [{url: 'http://a/', sigv4: {region: r}, basic_auth: {username: u}}]",
            "remote_write[0].sigv4",
            "at most one of basic_auth, authorization, oauth2, ",
        ),
        (
            "remote_write: [{url: 'http://a/', queue_config: {max_shard: 1}}]",
            "remote_write[0].queue_config.max_shard",
            "unknown key",
        ),
    ] {
        let (ours, theirs) = run(&format!("{text}\n"));
        assert_eq!((ours.0, theirs.0), (Some(1), Some(1)), "{text}:\n{ours:?}\n{theirs:?}");
        assert!(ours.2.contains(&format!("prometheus.yml: {path}: {message}")), "{text}: {}", ours.2);
        if message != "unknown key" {
            assert!(theirs.2.contains(message), "{text}: promtool said {}", theirs.2);
        }
    }
    // A 3.x check (promtool 2.42 has no queue checks).
    let (ours, _) = run("remote_write: [{url: 'http://a/', queue_config: {min_shards: 5, max_shards: 4}}]\n");
    assert_eq!(ours.0, Some(1));
    assert!(
        ours.2.contains("remote_write[0].queue_config.min_shards: remote write queue min_shards must not be greater than max_shards"),
        "{}",
        ours.2
    );
}

#[test]
fn static_targets_are_checked_as_promtool_checks_them() {
    let dir = TempDir::new("check-targets");
    let run = |targets: &str| {
        let text = format!("scrape_configs: [{{job_name: a, static_configs: [{{targets: {targets}}}]}}]\n");
        std::fs::write(dir.0.join("prometheus.yml"), text).unwrap();
        (check(&bin("pyrite"), &dir.0), check(Path::new("promtool"), &dir.0))
    };
    // A port may be left out (the scheme's is taken); one that is no port fails the scrape.
    let (ours, theirs) = run("[localhost, '[::1]', 'h:99999', 'h:9100']");
    assert_eq!((ours.0, theirs.0), (Some(0), Some(0)), "{ours:?}\n{theirs:?}");
    let (ours, theirs) = run("['http://h:1/metrics']");
    assert_eq!((ours.0, theirs.0), (Some(1), Some(1)), "{ours:?}\n{theirs:?}");
    let message = "\"http://h:1/metrics\" is not a valid hostname";
    assert!(ours.2.contains(message) && theirs.2.contains(message), "{ours:?}\n{theirs:?}");
}

#[test]
fn named_files_lints_and_syntax_only_are_checked_as_promtool_checks_them() {
    let dir = TempDir::new("check-named-files");
    std::fs::create_dir_all(dir.0.join("rules")).unwrap();
    let duplicated = "groups:\n  - name: g\n    rules:\n      - {record: a, expr: up}\n      - {record: a, expr: up}\n";
    std::fs::write(dir.0.join("rules/dup.yml"), duplicated).unwrap();
    std::fs::write(dir.0.join("good_sd.yml"), "- targets: ['b:1']\n").unwrap();
    std::fs::write(dir.0.join("zero_timeout_sd.yml"), "- targets: ['a:1']\n  labels: {__scrape_timeout__: 0s}\n")
        .unwrap();
    std::fs::write(dir.0.join("broken_sd.yml"), "not: [yaml\n").unwrap();
    let job = |keys: &str| format!("scrape_configs: [{{job_name: a, {keys}}}]\n");
    let cases: Vec<(String, &[&str], i32, &str)> = vec![
        // Lints of the rule files named: printed, fatal only under --lint-fatal.
        ("rule_files: [rules/dup.yml]\n".into(), &[], 0, "  FAILED:\n     lint error 1 duplicate rule(s) found."),
        ("rule_files: [rules/dup.yml]\n".into(), &["--lint-fatal"], 3, "  FAILED:\n     lint error 1 duplicate rule(s) found."),
        ("rule_files: [rules/dup.yml]\n".into(), &["--lint=none", "--lint-fatal"], 0, "  SUCCESS: 2 rules found"),
        // --syntax-only looks at no file the configuration names.
        ("rule_files: [rules/missing.yml]\n".into(), &["--syntax-only"], 0, " SUCCESS: prometheus.yml is valid"),
        (job("bearer_token_file: /nonexistent/token"), &["--syntax-only"], 0, " SUCCESS: prometheus.yml is valid"),
        // Static targets are checked all the same.
        (job("relabel_configs: [{target_label: __scrape_timeout__, replacement: 0s}], static_configs: [{targets: ['x:1']}]"), &["--syntax-only"], 1, "scrape timeout cannot be 0"),
        // Files named must exist; discovery files must parse and their targets survive relabeling.
        (job("bearer_token_file: /nonexistent/token"), &[], 1, "error checking authorization credentials or bearer token file \"/nonexistent/token\""),
        (job("authorization: {credentials_file: /nonexistent/c}"), &[], 1, "error checking authorization credentials"),
        (job("tls_config: {cert_file: /nonexistent/c, key_file: /nonexistent/k}"), &[], 1, "error checking client cert file \"/nonexistent/c\""),
        (job("file_sd_configs: [{files: [good_sd.yml, 'nowhere/*.yml']}]"), &[], 0, "  WARNING: file \"nowhere/*.yml\" for file_sd in scrape job \"a\" does not exist"),
        (job("file_sd_configs: [{files: [zero_timeout_sd.yml]}]"), &[], 1, "scrape timeout cannot be 0"),
        (job("file_sd_configs: [{files: [broken_sd.yml]}]"), &[], 1, "checking SD file \"broken_sd.yml\""),
        (job("relabel_configs: [{target_label: __scrape_interval__, replacement: 0s}], static_configs: [{targets: ['x:1']}]"), &[], 1, "scrape interval cannot be 0"),
        ("alerting: {alertmanagers: [{file_sd_configs: [{files: ['am*.yml']}]}]}\n".into(), &[], 0, "  WARNING: file \"am*.yml\" for file_sd in alertmanager config does not exist"),
    ];
    for (config, flags, code, said) in cases {
        std::fs::write(dir.0.join("prometheus.yml"), &config).unwrap();
        let run = |program: &Path| {
            let out = Command::new(program)
                .args(["check", "config"])
                .args(flags)
                .arg("prometheus.yml")
                .current_dir(&dir.0)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            (out.status.code(), text)
        };
        let (ours, theirs) = (run(&bin("pyrite")), run(Path::new("promtool")));
        let case = format!("{config}{flags:?}\npyrite: {ours:?}\npromtool: {theirs:?}");
        assert_eq!((ours.0, theirs.0), (Some(code), Some(code)), "{case}");
        assert!(ours.1.contains(said) && theirs.1.contains(said), "{case}");
    }
}
