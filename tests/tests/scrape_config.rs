//! Scrape configuration against a real exporter (Debian's `prometheus-node-exporter`), Pyrite
//! and upstream Prometheus scraping it with the same `prometheus.yml`: target relabeling
//! (rewritten instance, added labels, URL parameters, a target dropped and listed as such),
//! metric relabeling, and limits, compared series for series and error for error.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use pyrite_tests::{eventually, free_port, http_get, json, Process, Pyrite, PyriteOpts, Upstream};
use serde_json::Value;

/// Debian's node exporter on a loopback port.
fn node_exporter() -> (Process, String) {
    let port = free_port();
    let exporter = Process::quiet("prometheus-node-exporter", &[format!("--web.listen-address=127.0.0.1:{port}")]);
    let address = format!("127.0.0.1:{port}");
    let up = eventually(Duration::from_secs(10), || http_get(&format!("http://{address}/metrics")).ok());
    assert!(up.is_some(), "node exporter did not answer");
    (exporter, address)
}

fn config(node: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    params:
      collect[]: [cpu, meminfo, loadavg]
    relabel_configs:
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:.*'
        target_label: instance
        replacement: node-1
      - target_label: env
        replacement: test
      - source_labels: [__address__]
        regex: '192\.0\.2\..*'
        action: drop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_.*|promhttp_.*|process_.*'
        action: drop
      - source_labels: [__name__, cpu]
        regex: 'node_cpu_seconds_total;0'
        target_label: first_cpu
        replacement: 'yes'
    static_configs:
      - targets: ['{node}', '192.0.2.1:9100']
  - job_name: limited
    sample_limit: 10
    static_configs:
      - targets: ['{node}']
"#
    )
}

/// The series of `job` as sorted label-set strings (values aside), from a server's API.
fn series(base: &str, job: &str) -> BTreeSet<String> {
    let (_, body) = http_get(&format!("{base}/api/v1/series?match[]={{job=%22{job}%22}}")).unwrap();
    json(&body)["data"].as_array().cloned().unwrap_or_default().iter().map(Value::to_string).collect()
}

fn targets(base: &str) -> Value {
    json(&http_get(&format!("{base}/api/v1/targets")).unwrap().1)["data"].clone()
}

#[test]
fn relabeling_and_limits_match_prometheus_on_a_node_exporter() {
    let (_exporter, node) = node_exporter();
    let config = config(&node);
    let pyrite = Pyrite::start(PyriteOpts { shards: Some(2), config: Some(config.clone()), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&config, &[]);
    // Both scraped a few times.
    for base in [&pyrite.url, &upstream.url] {
        let ready = eventually(Duration::from_secs(20), || {
            let t = targets(base);
            let active = t["activeTargets"].as_array().cloned().unwrap_or_default();
            let scraped = active.len() == 2 && active.iter().all(|a| a["health"] != "unknown");
            (scraped && series(base, "node").len() > 20).then_some(())
        });
        assert!(ready.is_some(), "{base} did not scrape: {}", targets(base));
    }
    std::thread::sleep(Duration::from_secs(2));

    // The same series, relabeled the same way.
    let ours = series(&pyrite.url, "node");
    let theirs = series(&upstream.url, "node");
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only pyrite: {only_ours:?}\nonly prometheus: {only_theirs:?}"
    );
    assert!(ours.iter().all(|s| s.contains(r#""instance":"node-1""#) && s.contains(r#""env":"test""#)));
    assert!(!ours.iter().any(|s| s.contains(r#""__name__":"go_"#)), "metric relabeling dropped go_*");
    assert!(ours.iter().any(|s| s.contains(r#""first_cpu":"yes""#)));
    // Only the collectors asked for in the URL parameters ran.
    assert!(!ours.iter().any(|s| s.contains("node_filesystem")), "collect[] was not sent");

    // The dropped target is listed with its discovered labels; the limited one failed whole.
    let t = targets(&pyrite.url);
    let dropped = t["droppedTargets"].as_array().cloned().unwrap_or_default();
    assert_eq!(dropped.len(), 1, "{t}");
    assert_eq!(dropped[0]["discoveredLabels"]["__address__"], "192.0.2.1:9100");
    let error_of = |t: &Value| {
        let active = t["activeTargets"].as_array().cloned().unwrap_or_default();
        active.iter().find(|a| a["scrapePool"] == "limited").map(|a| (a["health"].clone(), a["lastError"].clone()))
    };
    assert_eq!(error_of(&t), error_of(&targets(&upstream.url)));
    assert_eq!(error_of(&t).unwrap().1, "sample limit exceeded");
    assert!(series(&pyrite.url, "limited").iter().all(|s| !s.contains("node_")), "a failed scrape stores nothing");
    assert_eq!(pyrite.query("up{job=\"limited\"}", None)[0]["value"][1], "0");
}

#[test]
fn extra_scrape_metrics_are_reported_as_prometheus_reports_them() {
    let exporter = guarded_exporter(&[""]);
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: limited
    scrape_timeout: 800ms
    sample_limit: 500
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: too_large
    body_size_limit: 10B
    static_configs: [{{targets: ['{exporter}']}}]
"#
    );
    let feature = "--enable-feature=extra-scrape-metrics";
    let upstream = Upstream::start_configured(&config, &[feature]);
    let p = Pyrite::start(PyriteOpts {
        config: Some(config.clone()),
        extra_args: vec![feature.into()],
        ..PyriteOpts::default()
    });
    let extra = ["scrape_timeout_seconds", "scrape_sample_limit", "scrape_body_size_bytes"];
    let reported = |base: &str| -> Option<Vec<String>> {
        let query = format!("{{__name__=~\"{}\"}}", extra.join("|"));
        let (_, body) = http_get(&format!("{base}/api/v1/query?query={}", pyrite_tests::encode(&query))).ok()?;
        let mut found: Vec<String> = json(&body)["data"]["result"]
            .as_array()?
            .iter()
            .map(|s| format!("{} {} {}", s["metric"]["job"], s["metric"]["__name__"], s["value"][1]))
            .collect();
        found.sort();
        (found.len() == 6).then_some(found)
    };
    let ours = eventually(Duration::from_secs(10), || reported(&p.url)).expect("Pyrite's extra report series");
    let theirs = eventually(Duration::from_secs(10), || reported(&upstream.url)).expect("Prometheus's");
    assert_eq!(ours, theirs);
    assert!(ours.contains(&r#""too_large" "scrape_body_size_bytes" "-1""#.to_string()), "{ours:?}");
    assert!(ours.contains(&r#""limited" "scrape_timeout_seconds" "0.8""#.to_string()), "{ours:?}");

    // Per scrape config, as upstream 3.x: off for one job even under the flag.
    let config = config.replace("    sample_limit: 500\n", "    sample_limit: 500\n    extra_scrape_metrics: false\n");
    let off =
        Pyrite::start(PyriteOpts { config: Some(config), extra_args: vec![feature.into()], ..PyriteOpts::default() });
    let scraped = eventually(Duration::from_secs(10), || {
        let up = off.query("up", None);
        (up.as_array()?.len() == 2).then_some(())
    });
    assert!(scraped.is_some());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(off.query("scrape_sample_limit{job=\"limited\"}", None), serde_json::json!([]));
    assert_eq!(off.query("scrape_sample_limit{job=\"too_large\"}", None)[0]["value"][1], "0");
}

#[test]
fn keep_dropped_targets_bounds_the_dropped_targets_kept_not_their_count() {
    let config = r#"global:
  keep_dropped_targets: 2
scrape_configs:
  - job_name: few
    relabel_configs: [{source_labels: [__address__], regex: 'drop.*', action: drop}]
    static_configs: [{targets: ['drop-a:1', 'drop-b:1', 'drop-c:1', 'drop-d:1']}]
  - job_name: more
    keep_dropped_targets: 5
    relabel_configs: [{source_labels: [__address__], regex: 'drop.*', action: drop}]
    static_configs: [{targets: ['drop-e:1', 'drop-f:1', 'drop-g:1']}]
  - job_name: zero
    keep_dropped_targets: 0
    relabel_configs: [{source_labels: [__address__], regex: 'drop.*', action: drop}]
    static_configs: [{targets: ['drop-h:1', 'drop-i:1', 'drop-j:1']}]
"#;
    let p = Pyrite::start(PyriteOpts { config: Some(config.into()), ..PyriteOpts::default() });
    let t = targets(&p.url);
    let kept: Vec<&str> = t["droppedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["discoveredLabels"]["__address__"].as_str().unwrap())
        .collect();
    // A job's 0 is global's value, as upstream reads it.
    assert_eq!(kept, ["drop-a:1", "drop-b:1", "drop-e:1", "drop-f:1", "drop-g:1", "drop-h:1", "drop-i:1"], "{t}");
    assert_eq!(t["droppedTargetCounts"], serde_json::json!({"few": 4, "more": 3, "zero": 3}), "{t}");
}

/// The request line and header lines (with their line ends) of a request on `stream`.
fn request_head(stream: &std::net::TcpStream) -> (String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        headers.push(line);
    }
    (first, headers)
}

/// The value of header `name` (any case) among `headers`, or "".
fn header(headers: &[String], name: &str) -> String {
    let prefix = format!("{name}:");
    let line = headers.iter().find(|h| h.to_ascii_lowercase().starts_with(&prefix));
    line.map_or(String::new(), |h| h[prefix.len()..].trim().to_string())
}

/// (scrape pool, health, last error) of each active target, sorted.
fn target_health(p: &Pyrite) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = p.data("/api/v1/targets")["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
            (s("scrapePool"), s("health"), s("lastError"))
        })
        .collect();
    out.sort();
    out
}

/// A loopback exporter that wants `Authorization: <expected>`, and redirects `/old` to
/// `/metrics`. Its series `guarded_ok` says what `Accept-Encoding` the scrape asked for.
fn guarded_exporter(expected: &'static [&'static str]) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (request_line, headers) = request_head(&stream);
            let authorization = header(&headers, "authorization");
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let answer = if path == "/old" {
                "HTTP/1.1 302 Found\r\nLocation: /metrics\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else if expected.contains(&authorization.as_str()) {
                let (encoding, tenant) = (header(&headers, "accept-encoding"), header(&headers, "x-scope-orgid"));
                let body = format!("guarded_ok{{accept_encoding={encoding:?},tenant={tenant:?}}} 1\n");
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}

#[test]
fn basic_auth_bearer_tokens_and_redirects() {
    // "Basic dTpw" is u:p; the bearer token comes from a file beside the configuration.
    let exporter = guarded_exporter(&["Basic dTpw", "Bearer s3cret"]);
    let dir = pyrite_tests::TempDir::new("auth");
    std::fs::write(dir.0.join("password"), "p\n").unwrap();
    std::fs::write(dir.0.join("token"), "s3cret\n").unwrap();
    std::fs::write(dir.0.join("tenant"), "t1\n").unwrap();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: basic
    basic_auth: {{username: u, password_file: {dir}/password}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: bearer
    metrics_path: /old
    authorization: {{credentials_file: {dir}/token}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: wrong
    basic_auth: {{username: u, password: nope}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: no_redirects
    metrics_path: /old
    follow_redirects: false
    authorization: {{credentials: s3cret}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: legacy_bearer
    bearer_token_file: {dir}/token
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: legacy_inline_bearer
    bearer_token: s3cret
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: uncompressed
    enable_compression: false
    bearer_token: s3cret
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: headers
    bearer_token: s3cret
    http_headers:
      X-Scope-OrgID: {{values: [a], secrets: [hidden], files: [{dir}/tenant]}}
    static_configs: [{{targets: ['{exporter}']}}]
"#,
        dir = dir.0.display()
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let settled =
        eventually(Duration::from_secs(10), || target_health(&p).iter().all(|(_, h, _)| h != "unknown").then_some(()));
    assert!(settled.is_some(), "{:?}", target_health(&p));
    let h = target_health(&p);
    let of =
        |pool: &str| h.iter().find(|(p, _, _)| p == pool).map(|(_, health, error)| (health.as_str(), error.as_str()));
    assert_eq!(of("basic"), Some(("up", "")));
    assert_eq!(of("bearer"), Some(("up", "")), "token read from its file, redirect followed");
    assert!(of("no_redirects").is_some_and(|(health, error)| health == "down" && error.contains("follow_redirects")));
    assert_eq!(of("wrong"), Some(("down", "server returned HTTP status 401 Unauthorized")));
    // The keys `authorization` replaced, still read by upstream 3.x.
    assert_eq!(of("legacy_bearer"), Some(("up", "")), "{h:?}");
    assert_eq!(of("legacy_inline_bearer"), Some(("up", "")), "{h:?}");
    // `enable_compression: false` asks for a plain body, as upstream.
    for (job, encoding) in [("basic", "gzip"), ("uncompressed", "identity")] {
        let asked = p.query(&format!("guarded_ok{{job=\"{job}\"}}"), None);
        assert_eq!(asked[0]["metric"]["accept_encoding"], encoding, "{job}: {asked}");
    }
    // `http_headers` (upstream 3.x): values, secrets and a file's trimmed content.
    let asked = p.query("guarded_ok{job=\"headers\"}", None);
    assert_eq!(asked[0]["metric"]["tenant"], "a, hidden, t1", "{asked}");
    // The secrets do not show in the configuration the API serves.
    let shown = p.data("/api/v1/status/config")["yaml"].as_str().unwrap().to_string();
    assert!(shown.contains("password: <secret>") && !shown.contains("nope"), "{shown}");
    assert!(shown.contains("X-Scope-OrgID") && !shown.contains("hidden"), "{shown}");
    assert!(!shown.contains("credentials: s3cret") && shown.contains("type: Bearer"), "{shown}");
}

/// Runs openssl; panics with its output on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openssl req`'s arguments for a new P-256 key, unencrypted.
const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, in `dir`.
fn certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC_KEY,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pyrite-test-ca"],
        ]
        .concat(),
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, crt, ext) =
            (format!("{who}.key"), format!("{who}.csr"), format!("{who}.crt"), format!("{who}.ext"));
        openssl(
            dir,
            &[&["req"][..], &EC_KEY, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={who}")]].concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// An HTTPS exporter on loopback serving `name`.crt: with `client_auth`, it wants a client
/// certificate signed by the test CA.
fn tls_exporter(dir: &std::path::Path, name: &str, client_auth: bool) -> String {
    tls_exporter_of(dir, name, client_auth, rustls::DEFAULT_VERSIONS)
}

/// [`tls_exporter`] speaking only `versions`.
fn tls_exporter_of(
    dir: &std::path::Path,
    name: &str,
    client_auth: bool,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier = match client_auth {
        true => rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap(),
        false => rustls::server::WebPkiClientVerifier::no_client_auth(),
    };
    let chain: Vec<_> =
        CertificateDer::pem_file_iter(dir.join(format!("{name}.crt"))).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut request = [0u8; 4096];
                if tls.read(&mut request).is_err() {
                    return;
                }
                let body = "tls_ok 1\n";
                let answer =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = tls.write_all(answer.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    address
}

#[test]
fn https_targets_with_client_certificates() {
    let dir = pyrite_tests::TempDir::new("tls");
    certificates(&dir.0);
    let exporter = tls_exporter(&dir.0, "server", true);
    let port = exporter.rsplit_once(':').unwrap().1;
    // Self-signed and marked as a CA, as `openssl req -x509` makes them: trusted as its own
    // `ca_file`, as Go trusts it.
    let subject_names = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    let self_signed = ["-keyout", "self.key", "-out", "self.crt", "-days", "2", "-subj", "/CN=self", "-addext"];
    openssl(&dir.0, &[&["req", "-x509"][..], &EC_KEY, &self_signed, &[subject_names]].concat());
    let self_signed_exporter = tls_exporter(&dir.0, "self", false);
    let tls12_exporter = tls_exporter_of(&dir.0, "self", false, &[&rustls::version::TLS12]);
    let d = dir.0.display();
    // The same files' PEM text in the configuration itself (`ca`, `cert`, `key`).
    let inline: String = [("ca", "ca.crt"), ("cert", "client.crt"), ("key", "client.key")]
        .iter()
        .map(|(key, file)| {
            let pem = std::fs::read_to_string(dir.0.join(file)).unwrap();
            let lines: String = pem.lines().map(|l| format!("        {l}\n")).collect();
            format!("      {key}: |\n{lines}")
        })
        .collect();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: mutual
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: by_name
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key, server_name: localhost}}
    static_configs: [{{targets: ['localhost:{port}']}}]
  - job_name: insecure
    scheme: https
    tls_config: {{insecure_skip_verify: true, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: no_client_cert
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: unknown_ca
    scheme: https
    tls_config: {{cert_file: {d}/client.crt, key_file: {d}/client.key}}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: self_signed
    scheme: https
    tls_config: {{ca_file: {d}/self.crt}}
    static_configs: [{{targets: ['{self_signed_exporter}']}}]
  - job_name: self_signed_other_name
    scheme: https
    tls_config: {{ca_file: {d}/self.crt, server_name: example.com}}
    static_configs: [{{targets: ['{self_signed_exporter}']}}]
  - job_name: self_signed_untrusted
    scheme: https
    tls_config: {{ca_file: {d}/ca.crt}}
    static_configs: [{{targets: ['{self_signed_exporter}']}}]
  - job_name: up_to_tls12
    scheme: https
    tls_config: {{ca_file: {d}/self.crt, max_version: TLS12}}
    static_configs: [{{targets: ['{tls12_exporter}']}}]
  - job_name: tls13_only
    scheme: https
    tls_config: {{ca_file: {d}/self.crt, min_version: TLS13}}
    static_configs: [{{targets: ['{tls12_exporter}']}}]
  - job_name: inline
    scheme: https
    tls_config:
{inline}    static_configs: [{{targets: ['{exporter}']}}]
"#
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let settled =
        eventually(Duration::from_secs(10), || target_health(&p).iter().all(|(_, h, _)| h != "unknown").then_some(()));
    assert!(settled.is_some(), "{:?}", target_health(&p));
    let h = target_health(&p);
    let by_pool = |pool: &str| h.iter().find(|(p, _, _)| p == pool).cloned().unwrap();
    for pool in ["mutual", "by_name", "insecure", "self_signed", "up_to_tls12", "inline"] {
        assert_eq!(by_pool(pool).1, "up", "{:?}", by_pool(pool));
    }
    let shown = p.data("/api/v1/status/config")["yaml"].as_str().unwrap().to_string();
    assert!(shown.contains("key: <secret>") && !shown.contains("PRIVATE KEY"), "{shown}");
    assert_eq!(by_pool("no_client_cert").1, "down");
    let unknown = by_pool("unknown_ca");
    assert!(unknown.1 == "down" && unknown.2.contains("UnknownIssuer"), "{unknown:?}");
    let other_name = by_pool("self_signed_other_name");
    assert!(other_name.1 == "down" && other_name.2.contains("not valid for name"), "{other_name:?}");
    let untrusted = by_pool("self_signed_untrusted");
    assert!(untrusted.1 == "down" && untrusted.2.contains("CaUsedAsEndEntity"), "{untrusted:?}");
    let tls13_only = by_pool("tls13_only");
    assert!(tls13_only.1 == "down" && tls13_only.2.contains("ProtocolVersion"), "{tls13_only:?}");
    assert_eq!(p.query("tls_ok", None).as_array().map(Vec::len), Some(6));
}

/// An exporter that answers OpenMetrics when asked for it (with a unit, `_created`, an
/// exemplar, info and stateset families) and the text format otherwise.
fn openmetrics_exporter() -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let accept = header(&request_head(&stream).1, "accept");
            let (content_type, body) = if accept.contains("application/openmetrics-text") {
                (
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    "# TYPE job_seconds counter\n# UNIT job_seconds seconds\n# HELP job_seconds Time working.\njob_seconds_total{queue=\"a\"} 17 # {trace_id=\"4bf92f\"} 1.0\njob_seconds_created{queue=\"a\"} 1.7e9\n# TYPE build info\nbuild_info{version=\"1.2.3\"} 1\n# TYPE door stateset\ndoor{door=\"open\"} 1\ndoor{door=\"shut\"} 0\n# EOF\n",
                )
            } else {
                ("text/plain; version=0.0.4", "# TYPE job_seconds_total counter\njob_seconds_total{queue=\"a\"} 17\n")
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = stream;
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}

#[test]
fn openmetrics_is_negotiated_and_parsed_as_prometheus_does() {
    let exporter = openmetrics_exporter();
    let om = format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: om\n    static_configs: [{{targets: ['{exporter}']}}]\n");
    // Debian's Prometheus 2.42 predates `scrape_protocols`: only Pyrite gets the text-only job.
    let with_text = format!("{om}  - job_name: text\n    scrape_protocols: [PrometheusText0.0.4]\n    static_configs: [{{targets: ['{exporter}']}}]\n");
    let pyrite = Pyrite::start(PyriteOpts { config: Some(with_text), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&om, &[]);
    for base in [&pyrite.url, &upstream.url] {
        let scraped = eventually(Duration::from_secs(15), || (series(base, "om").len() >= 4).then_some(()));
        assert!(scraped.is_some(), "{base}: {}", targets(base));
    }
    assert_eq!(series(&pyrite.url, "om"), series(&upstream.url, "om"));
    let text = series(&pyrite.url, "text");
    assert!(
        text.iter().any(|s| s.contains("job_seconds_total")) && !text.iter().any(|s| s.contains("door")),
        "{text:?}"
    );
    let ours = series(&pyrite.url, "om");
    assert!(
        ours.iter().any(|s| s.contains(r#""door":"shut""#)) && ours.iter().any(|s| s.contains("job_seconds_created")),
        "{ours:?}"
    );
    let meta =
        |base: &str| json(&http_get(&format!("{base}/api/v1/metadata?metric=job_seconds")).unwrap().1)["data"].clone();
    assert_eq!(meta(&pyrite.url), meta(&upstream.url));
    assert_eq!(meta(&pyrite.url)["job_seconds"][0]["unit"], "seconds");
}

/// An exporter of OpenTelemetry-style names that escapes them as client_golang does: quoted in
/// the text format 1.0.0 when the scraper's `Accept` asks for `escaping=allow-utf-8` (always on
/// `/quoted`), else with underscores.
fn utf8_exporter() -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let (first, headers) = request_head(&stream);
            let quoted = first.contains("/quoted") || header(&headers, "accept").contains("escaping=allow-utf-8");
            let body = match quoted {
                true => {
                    "# TYPE \"http.server.duration\" gauge\n{\"http.server.duration\",\"service.name\"=\"api\"} 0.25\n"
                }
                false => "# TYPE http_server_duration gauge\nhttp_server_duration{service_name=\"api\"} 0.25\n",
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=1.0.0; escaping={}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                if quoted { "allow-utf-8" } else { "underscores" },
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}

#[test]
fn names_outside_the_legacy_set_are_scraped_as_the_validation_scheme_says() {
    let exporter = utf8_exporter();
    let job = |name: &str, extra: &str| {
        format!("  - job_name: {name}\n    static_configs: [{{targets: ['{exporter}']}}]\n{extra}")
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}{}{}",
        job("utf8", ""),
        job("legacy", "    metric_name_validation_scheme: legacy\n"),
        job("ignored", "    metric_name_validation_scheme: legacy\n    metrics_path: /quoted\n"),
        // Metric relabeling may make such a series one the scheme takes, as upstream judges the
        // names after it.
        job(
            "renamed",
            "    metric_name_validation_scheme: legacy\n    metrics_path: /quoted\n    metric_relabel_configs:\n\
             \x20     - {source_labels: [__name__], regex: http.server.duration, target_label: __name__, replacement: http_server_duration_seconds}\n\
             \x20     - {action: labeldrop, regex: service.name}\n"
        ),
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let health = eventually(Duration::from_secs(15), || {
        let health = target_health(&p);
        health.iter().all(|(_, h, _)| h != "unknown").then_some(health)
    })
    .expect("every target scraped");
    // utf8 (upstream 3.x's default) asks for the names as they are and takes them quoted.
    let utf8 = p.query(r#"{"http.server.duration", job="utf8"}"#, None);
    assert_eq!(utf8[0]["metric"]["service.name"], "api", "{utf8}");
    assert_eq!(utf8[0]["value"][1], "0.25");
    // legacy asks for underscores; a target that sends quoted names anyway fails its scrape.
    let legacy = p.query(r#"http_server_duration{job="legacy"}"#, None);
    assert_eq!(legacy[0]["metric"]["service_name"], "api", "{legacy}");
    let ignored = health.iter().find(|(pool, _, _)| pool == "ignored").unwrap();
    assert_eq!(ignored.1, "down", "{health:?}");
    let refused = format!(
        r#"invalid metric name or label names: {{__name__="http.server.duration", instance="{exporter}", job="ignored", "service.name"="api"}}"#
    );
    assert_eq!(ignored.2, refused, "{health:?}");
    let renamed = p.query(r#"http_server_duration_seconds{job="renamed"}"#, None);
    assert_eq!(renamed[0]["value"][1], "0.25", "{renamed} {health:?}");
    let metadata = p.data("/api/v1/metadata?metric=http.server.duration");
    assert_eq!(metadata["http.server.duration"][0]["type"], "gauge", "{metadata}");
}

/// A forward HTTP proxy on loopback: absolute-form requests are passed on, `CONNECT` opens a
/// tunnel. Each request's first line and `Proxy-Authorization` are recorded.
fn forward_proxy(seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> String {
    use std::io::Write;
    use std::net::TcpStream;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let (first, headers) = request_head(&client);
                let auth = headers.iter().find(|h| h.to_ascii_lowercase().starts_with("proxy-authorization:"));
                seen.lock().unwrap().push(format!("{} | {}", first.trim(), auth.map_or("", |a| a.trim())));
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let mut client = client;
                // Every host is this machine: names that resolve nowhere stand for remote targets.
                let on_loopback =
                    |address: &str| format!("127.0.0.1:{}", address.rsplit_once(':').map_or("80", |(_, p)| p));
                if method == "CONNECT" {
                    let Ok(upstream) = TcpStream::connect(on_loopback(target)) else { return };
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    std::thread::spawn(move || std::io::copy(&mut u2, &mut c2));
                    let (mut c1, mut u1) = (client, upstream);
                    let _ = std::io::copy(&mut c1, &mut u1);
                    return;
                }
                let Some(rest) = target.strip_prefix("http://") else { return };
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let Ok(mut upstream) = TcpStream::connect(on_loopback(host)) else { return };
                let mut request = format!("{method} {path} HTTP/1.1\r\n");
                headers
                    .iter()
                    .filter(|h| !h.to_ascii_lowercase().starts_with("proxy-"))
                    .for_each(|h| request.push_str(h));
                request.push_str("\r\n");
                let _ = upstream.write_all(request.as_bytes());
                let _ = std::io::copy(&mut upstream, &mut client);
            });
        }
    });
    address
}

#[test]
fn scrapes_go_through_an_http_proxy() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = forward_proxy(seen.clone());
    let exporter = guarded_exporter(&[""]);
    let dir = pyrite_tests::TempDir::new("proxy-tls");
    certificates(&dir.0);
    let tls = tls_exporter(&dir.0, "server", true);
    let d = dir.0.display();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: plain
    proxy_url: http://scraper:pw@{proxy}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: tunneled
    scheme: https
    proxy_url: http://{proxy}
    tls_config: {{ca_file: {d}/ca.crt, cert_file: {d}/client.crt, key_file: {d}/client.key}}
    static_configs: [{{targets: ['{tls}']}}]
"#
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..PyriteOpts::default() });
    let up = eventually(Duration::from_secs(10), || target_health(&p).iter().all(|(_, h, _)| h == "up").then_some(()));
    assert!(up.is_some(), "{:?}", target_health(&p));
    let seen = seen.lock().unwrap().clone();
    // "Basic c2NyYXBlcjpwdw==" is scraper:pw.
    let plain = format!("GET http://{exporter}/metrics HTTP/1.1 | proxy-authorization: Basic c2NyYXBlcjpwdw==");
    assert!(seen.iter().any(|s| s.eq_ignore_ascii_case(&plain)), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with(&format!("CONNECT {tls} HTTP/1.1"))), "{seen:?}");
    let shown = p.data("/api/v1/status/config")["yaml"].as_str().unwrap().to_string();
    assert!(shown.contains("proxy_url: http://<secret>@") && !shown.contains("pw@"), "{shown}");
}

#[test]
fn proxies_from_the_environment_and_no_proxy_lists_are_taken_as_go_takes_them() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = forward_proxy(seen.clone());
    let exporter = guarded_exporter(&[""]);
    let port = exporter.rsplit_once(':').unwrap().1;
    // `.invalid` names resolve nowhere: a target named so is only reached through the proxy.
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: from_environment
    proxy_from_environment: true
    static_configs: [{{targets: ['remote.invalid:{port}']}}]
  - job_name: environment_no_proxy
    proxy_from_environment: true
    static_configs: [{{targets: ['skipped.invalid:{port}']}}]
  - job_name: environment_loopback
    proxy_from_environment: true
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: listed_elsewhere
    proxy_url: http://{proxy}
    no_proxy: other.invalid,10.0.0.0/8
    static_configs: [{{targets: ['listed.invalid:{port}']}}]
  - job_name: listed
    proxy_url: http://{proxy}
    no_proxy: other.invalid,.bypassed.invalid
    static_configs: [{{targets: ['host.bypassed.invalid:{port}']}}]
"#
    );
    let env = vec![("HTTP_PROXY".to_string(), proxy.clone()), ("no_proxy".to_string(), "skipped.invalid".to_string())];
    let p = Pyrite::start(PyriteOpts { config: Some(config), env, ..PyriteOpts::default() });
    let settled =
        eventually(Duration::from_secs(10), || target_health(&p).iter().all(|(_, h, _)| h != "unknown").then_some(()));
    assert!(settled.is_some(), "{:?}", target_health(&p));
    let h = target_health(&p);
    let of = |pool: &str| h.iter().find(|(p, _, _)| p == pool).map(|(_, health, _)| health.as_str());
    // Through the proxy: the environment's, and proxy_url for a host no_proxy does not list.
    assert_eq!((of("from_environment"), of("listed_elsewhere")), (Some("up"), Some("up")), "{h:?}");
    // Around it: a host NO_PROXY or no_proxy lists (so looked up here, and not found), and
    // loopback, which Go never sends through an environment's proxy.
    assert_eq!((of("environment_no_proxy"), of("listed")), (Some("down"), Some("down")), "{h:?}");
    assert_eq!(of("environment_loopback"), Some("up"));
    let seen = seen.lock().unwrap().clone();
    let through = |host: &str| seen.iter().any(|s| s.starts_with(&format!("GET http://{host}/metrics ")));
    assert!(through(&format!("remote.invalid:{port}")) && through(&format!("listed.invalid:{port}")), "{seen:?}");
    assert!(!through(&format!("skipped.invalid:{port}")) && !through(&exporter), "{seen:?}");
    assert!(!through(&format!("host.bypassed.invalid:{port}")), "{seen:?}");
}

#[test]
fn a_redis_exporter_is_scraped_as_prometheus_scrapes_it() {
    let redis_port = free_port();
    let _redis = Process::quiet(
        "redis-server",
        &["--port".into(), redis_port.to_string(), "--bind".into(), "127.0.0.1".into(), "--save".into(), String::new()],
    );
    let exporter_port = free_port();
    let _exporter = Process::quiet(
        "prometheus-redis-exporter",
        &[
            format!("-redis.addr=redis://127.0.0.1:{redis_port}"),
            format!("-web.listen-address=127.0.0.1:{exporter_port}"),
        ],
    );
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: redis
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}'], labels: {{role: cache}}}}]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'redis_(up|connected_clients|commands_processed_total|db_keys|memory_used_bytes)'
        action: keep
"#
    );
    let pyrite = Pyrite::start(PyriteOpts { config: Some(config.clone()), ..PyriteOpts::default() });
    let upstream = Upstream::start_configured(&config, &[]);
    let redis_up = |base: &str| {
        let body = json(&http_get(&format!("{base}/api/v1/query?query=redis_up")).unwrap().1);
        body["data"]["result"][0]["value"][1] == "1"
    };
    for base in [&pyrite.url, &upstream.url] {
        let ready = eventually(Duration::from_secs(20), || redis_up(base).then_some(()));
        assert!(ready.is_some(), "{base}: redis_up is not 1: {}", targets(base));
    }
    std::thread::sleep(Duration::from_secs(2));
    let ours = series(&pyrite.url, "redis");
    assert_eq!(ours, series(&upstream.url, "redis"));
    assert!(ours.iter().any(|s| s.contains("redis_connected_clients") && s.contains(r#""role":"cache""#)), "{ours:?}");
    assert!(
        !ours.iter().any(|s| s.contains("redis_uptime_in_seconds")),
        "metric relabeling kept only the listed series"
    );
}

#[test]
fn scrape_timestamps_are_moved_onto_the_schedule_within_the_tolerance() {
    let target = pyrite_tests::fake_target(Some(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\ngauge_x 1.5\n",
    ));
    // 10ms, the most a 1s interval allows, so that a loaded machine's late timer still counts.
    let p = Pyrite::start(PyriteOpts {
        config: Some(format!(
            "scrape_configs:\n  - job_name: fast\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        )),
        extra_args: vec!["--scrape.timestamp-tolerance=10ms".into()],
        ..Default::default()
    });
    let times = eventually(Duration::from_secs(20), || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let m = pyrite_tests::matrix(&p.url, "gauge_x", "1m", now, &[]);
        let times: Vec<i64> = m.into_values().next()?.into_iter().map(|(t, _)| t).collect();
        (times.len() >= 8).then_some(times)
    })
    .expect("eight scrapes within 20 s");
    // All lie on the first scrape's schedule, but for a scrape whose timer fired more than 10ms
    // late. (An idle machine's timers fire within the millisecond, so this checks the schedule
    // the timestamps are moved onto; the moving itself is tested in `daemon/src/scrape` and
    // measured under load in bench/RESULTS.md.)
    let off_schedule: Vec<i64> = times.iter().map(|t| t - times[0]).filter(|d| d % 1000 != 0).collect();
    assert!(off_schedule.len() <= 1, "scrape times off the 1s schedule by {off_schedule:?} ms: {times:?}");
}

/// `scrape_failure_log_file` (upstream 3.x): each failed scrape is one JSON line in its job's
/// file (its own, else `global`'s), a scrape that succeeds none; a reload opens the files
/// anew (a rotated log is followed), and one that cannot be opened refuses the configuration.
#[test]
fn failed_scrapes_are_logged_to_their_jobs_file() {
    let alive = pyrite_tests::fake_target(Some("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok 1\n"));
    let config = format!(
        r#"global: {{scrape_interval: 1s, scrape_failure_log_file: all.log}}
scrape_configs:
  - job_name: dead
    static_configs: [{{targets: ['127.0.0.1:1']}}]
  - job_name: own
    scrape_failure_log_file: own.log
    static_configs: [{{targets: ['127.0.0.1:1']}}]
  - job_name: alive
    static_configs: [{{targets: ['{alive}']}}]
"#
    );
    let args = vec!["--web.enable-lifecycle".to_string()];
    let p = Pyrite::start(PyriteOpts { config: Some(config.clone()), extra_args: args, ..PyriteOpts::default() });
    let dir = p.data_dir.parent().unwrap().to_path_buf();
    let jobs_in = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let logged = json(line);
                assert_eq!(logged["level"], "ERROR", "{line}");
                assert_eq!(logged["target"], "http://127.0.0.1:1/metrics", "{line}");
                assert!(!logged["msg"].as_str().unwrap_or("").is_empty(), "{line}");
                logged["job_name"].as_str().unwrap_or("").to_string()
            })
            .collect()
    };
    let logged = eventually(Duration::from_secs(10), || {
        (jobs_in("all.log").len() >= 2 && !jobs_in("own.log").is_empty()).then_some(())
    });
    assert!(logged.is_some(), "all: {:?}, own: {:?}", jobs_in("all.log"), jobs_in("own.log"));
    assert!(jobs_in("all.log").iter().all(|job| job == "dead"), "{:?}", jobs_in("all.log"));
    assert!(jobs_in("own.log").iter().all(|job| job == "own"), "{:?}", jobs_in("own.log"));

    std::fs::rename(dir.join("all.log"), dir.join("all.log.1")).unwrap();
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let followed = eventually(Duration::from_secs(10), || (!jobs_in("all.log").is_empty()).then_some(()));
    assert!(followed.is_some(), "the rotated log was not followed after the reload");

    let config_file = p.data_dir.with_file_name("prometheus.yml");
    std::fs::write(&config_file, config.replace("all.log", "/nonexistent/all.log")).unwrap();
    let (status, body) = pyrite_tests::http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("cannot open the scrape failure log file /nonexistent/all.log"), "{body}");
}
