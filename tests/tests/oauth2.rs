//! `oauth2` (client credentials) on the real binary: a `remote_read` store and a scrape target
//! on loopback that answer only with the bearer token their token endpoint handed out. The token request is
//! Go's (`grant_type`, `scope`, `endpoint_params`, the client id and secret as basic auth,
//! URL-escaped); the token is reused until 10 s before it expires, then renewed; a rotated
//! secret file asks for a new one; a refused secret is the store's warning on the answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use pyrite_core::labels::Labels;
use pyrite_core::remote::read::{decode_read_request, encode_read_response, sampled_series, QueryResult, ReadResponse};
use pyrite_core::value::Sample;
use pyrite_tests::{Pyrite, PyriteOpts, TempDir};

/// Seconds a token lives: fresh for 2 s with the 10 s margin.
const TOKEN_SECONDS: u64 = 12;

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    /// (Authorization, form body) of each token request.
    token_requests: Vec<(String, String)>,
    /// Authorization of each read request.
    reads: Vec<String>,
    /// Authorization of each scrape.
    scrapes: Vec<String>,
    /// The tokens handed out.
    issued: Vec<String>,
}

/// One HTTP/1.1 request.
struct Request {
    path: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { path, headers, body })
}

fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body));
}

/// A token endpoint (`/token`, accepting client `pyrite client` with secret `s3cret`), a
/// remote-read store (`/api/v1/read`, answering `oauth_remote 42` to the tokens handed out)
/// and a scrape target (`/metrics`, exposing `oauth_scraped 7` to them); `/token-slow` takes
/// 2 s to refuse any client.
fn stand_in() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = shared.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (url, seen)
}

fn serve(stream: TcpStream, seen: &Mutex<Seen>) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    while let Some(Request { path, headers, body }) = read_request(&mut reader) {
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        if path == "/token-slow" {
            std::thread::sleep(Duration::from_secs(2));
            respond(&mut writer, "401 Unauthorized", "", b"slow and refusing");
            continue;
        }
        let mut seen = seen.lock().expect("lock");
        if path == "/token" {
            seen.token_requests.push((header("authorization"), String::from_utf8_lossy(&body).into_owned()));
            let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pyrite+client:s3cret"));
            if header("authorization") != good {
                let refusal = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
                respond(&mut writer, "401 Unauthorized", "Content-Type: application/json\r\n", refusal);
                continue;
            }
            let token = format!("tok-{}", seen.issued.len() + 1);
            let answer = format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{TOKEN_SECONDS}}}"#);
            seen.issued.push(token);
            respond(&mut writer, "200 OK", "Content-Type: application/json\r\n", answer.as_bytes());
        } else if path == "/metrics" {
            seen.scrapes.push(header("authorization"));
            let token = header("authorization").strip_prefix("Bearer ").map(String::from).unwrap_or_default();
            match seen.issued.contains(&token) {
                true => respond(&mut writer, "200 OK", "Content-Type: text/plain\r\n", b"oauth_scraped 7\n"),
                false => respond(&mut writer, "401 Unauthorized", "", b"wrong token"),
            }
        } else {
            seen.reads.push(header("authorization"));
            let token = header("authorization").strip_prefix("Bearer ").map(String::from).unwrap_or_default();
            if !seen.issued.contains(&token) {
                respond(&mut writer, "401 Unauthorized", "", b"wrong token");
                continue;
            }
            let request = decode_read_request(&body, 1 << 20).expect("a read request");
            let labels = Labels::from_pairs([("__name__", "oauth_remote"), ("job", "far")]);
            let results = request
                .queries
                .iter()
                .map(|q| QueryResult {
                    timeseries: vec![sampled_series(&labels, &[Sample { t: q.end_timestamp_ms - 1000, v: 42.0 }])],
                })
                .collect();
            let answer = encode_read_response(&ReadResponse { results });
            respond(
                &mut writer,
                "200 OK",
                "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n",
                &answer,
            );
        }
    }
}

#[test]
fn remote_read_sends_the_oauth2_token_and_renews_it() {
    let (url, seen) = stand_in();
    let dir = TempDir::new("oauth2");
    let secret = dir.0.join("client-secret");
    std::fs::write(&secret, "s3cret\n").expect("write secret");
    let config = format!(
        "remote_read:
  - url: {url}/api/v1/read
    name: guarded
    oauth2:
      client_id: pyrite client
      client_secret_file: {}
      scopes: [read, metrics]
      token_url: {url}/token
      endpoint_params: {{audience: store}}
",
        secret.display()
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let answer = |p: &Pyrite| {
        let (status, body) = p.get("/api/v1/query?query=oauth_remote");
        assert_eq!(status, 200, "{body}");
        pyrite_tests::json(&body)
    };
    let value = |p: &Pyrite| answer(p)["data"]["result"][0]["value"][1].as_str().map(String::from);

    assert_eq!(value(&p).as_deref(), Some("42"));
    assert_eq!(value(&p).as_deref(), Some("42"));
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.token_requests.len(), 1, "the token is reused");
        let (authorization, form) = &seen.token_requests[0];
        let basic = base64::engine::general_purpose::STANDARD.encode("pyrite+client:s3cret");
        assert_eq!(authorization, &format!("Basic {basic}"));
        assert_eq!(form, "grant_type=client_credentials&scope=read+metrics&audience=store");
        assert_eq!(seen.reads, ["Bearer tok-1", "Bearer tok-1"]);
    }

    // 10 s before its expiry the token is old: the next read asks for a new one.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(value(&p).as_deref(), Some("42"));
    assert_eq!(seen.lock().expect("lock").token_requests.len(), 2);
    assert_eq!(seen.lock().expect("lock").reads.last().map(String::as_str), Some("Bearer tok-2"));

    // A rotated secret asks for a token at once; one the endpoint refuses (in the header,
    // then in the form) leaves the query the local answer and a warning.
    std::fs::write(&secret, "wrong").expect("rotate secret");
    let refused = answer(&p);
    assert_eq!(refused["data"]["result"].as_array().map(Vec::len), Some(0), "{refused}");
    let warning = refused["warnings"][0].as_str().unwrap_or_default().to_string();
    assert!(warning.contains("remote_read guarded") && warning.contains("invalid_client"), "{refused}");
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.token_requests.len(), 4, "header, then form");
        assert!(
            seen.token_requests[3].1.ends_with("&client_id=pyrite+client&client_secret=wrong"),
            "{:?}",
            seen.token_requests
        );
    }
    std::fs::write(&secret, "s3cret").expect("rotate secret back");
    assert_eq!(value(&p).as_deref(), Some("42"));
}

#[test]
fn a_scrape_sends_the_oauth2_token_and_a_refused_one_marks_the_target_down() {
    let (url, seen) = stand_in();
    let dir = TempDir::new("oauth2-scrape");
    let secret = dir.0.join("client-secret");
    std::fs::write(&secret, "s3cret").expect("write secret");
    let target = url.trim_start_matches("http://");
    let config = format!(
        "scrape_configs:
  - job_name: guarded
    scrape_interval: 500ms
    scrape_timeout: 400ms
    oauth2: {{client_id: pyrite client, client_secret_file: {}, token_url: {url}/token}}
    static_configs: [{{targets: ['{target}']}}]
",
        secret.display()
    );
    let p = Pyrite::start(PyriteOpts { config: Some(config), ..Default::default() });
    let value = |query: &str| {
        let (status, body) = p.get(&format!("/api/v1/query?query={query}"));
        assert_eq!(status, 200, "{body}");
        pyrite_tests::json(&body)["data"]["result"][0]["value"][1].as_str().map(String::from)
    };
    let scraped = pyrite_tests::eventually(Duration::from_secs(10), || value("oauth_scraped"));
    assert_eq!(scraped.as_deref(), Some("7"), "scrapes seen: {:?}", seen.lock().expect("lock").scrapes);
    std::thread::sleep(Duration::from_millis(1200));
    {
        let seen = seen.lock().expect("lock");
        assert!(seen.scrapes.len() >= 3, "{:?}", seen.scrapes);
        assert!(seen.scrapes.iter().all(|a| a.starts_with("Bearer tok-")), "{:?}", seen.scrapes);
        // Fresh for 2 s (12 s less the 10 s margin): a scrape every 500 ms shares a token.
        assert!(seen.token_requests.len() < seen.scrapes.len(), "{} tokens", seen.token_requests.len());
    }

    // A secret the endpoint refuses: the target is down, with the endpoint's error.
    std::fs::write(&secret, "wrong").expect("rotate secret");
    let error = pyrite_tests::eventually(Duration::from_secs(10), || {
        let (_, body) = p.get("/api/v1/targets");
        let targets = pyrite_tests::json(&body);
        let target = &targets["data"]["activeTargets"][0];
        (target["health"] == "down").then(|| target["lastError"].as_str().unwrap_or_default().to_string())
    });
    assert!(error.as_deref().is_some_and(|e| e.contains("invalid_client")), "{error:?}");
    assert_eq!(value("up").as_deref(), Some("0"));
}

/// Forty targets scraped twice a second with a token endpoint that takes 2 s to refuse: one
/// scrape at a time fetches (on a thread of its own), the others wait for it and get its error.
/// A thread per scrape waiting for the endpoint would add about 80 threads a second.
#[test]
fn a_slow_token_endpoint_costs_one_thread_not_one_per_scrape() {
    let (url, _seen) = stand_in();
    let target = url.trim_start_matches("http://");
    let jobs: String = (0..40)
        .map(|i| {
            format!(
                "  - job_name: j{i}
    scrape_interval: 500ms
    scrape_timeout: 400ms
    oauth2: {{client_id: c, client_secret: s, token_url: {url}/token-slow}}
    static_configs: [{{targets: ['{target}']}}]
"
            )
        })
        .collect();
    let p = Pyrite::start(PyriteOpts { config: Some(format!("scrape_configs:\n{jobs}")), ..Default::default() });
    let before = p.process.threads();
    std::thread::sleep(Duration::from_secs(4));
    let after = p.process.threads();
    assert!(after <= before + 3, "threads {before} -> {after}");
    let (_, body) = p.get("/api/v1/query?query=count(up==0)");
    let down = pyrite_tests::json(&body)["data"]["result"][0]["value"][1].as_str().map(String::from);
    assert_eq!(down.as_deref(), Some("40"), "{body}");
}
