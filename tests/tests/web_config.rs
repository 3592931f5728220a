//! Web security as upstream's exporter-toolkit provides it, against the real binary on loopback:
//! `--web.config.file` (TLS with certificates made by `openssl` at test time, client
//! certificates, basic auth with bcrypt hashes, response headers, edits applied without a
//! restart, a broken file refused at start naming the key), `--web.max-connections`,
//! `--web.read-timeout` and `--web.cors.origin`. Upstream's own tools are the clients where
//! they can be: curl, and Debian's promtool (2.42, which predates `--http.config.file`, so it
//! gets credentials in the URL and the CA through `SSL_CERT_FILE`); `promtool check
//! web-config` confirms that upstream accepts the same files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use pyrite_tests::{bin, eventually, Pyrite, PyriteOpts, TempDir};

/// A configuration without scrape targets: no self-scrape takes a connection.
const NO_TARGETS: &str = "global:\n  scrape_interval: 1h\n";

/// A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, made by
/// `openssl`; plus a client certificate from a CA the server does not know.
struct Certs {
    dir: TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = TempDir::new("certs");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir.0)
                .output()
                .expect("openssl (installed by scripts/test)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ca = |name: &str, cn: &str| {
            let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
            run(&[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj",
                cn,
            ]);
        };
        let leaf = |name: &str, ca: &str, cn: &str, ext: &str| {
            let (key, csr, crt, extfile) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
            std::fs::write(dir.0.join(&extfile), ext).unwrap();
            run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", cn]);
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ]);
        };
        ca("ca", "/CN=Pyrite test CA");
        ca("other-ca", "/CN=Another CA");
        leaf("server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
        leaf("client", "ca", "/CN=client", "extendedKeyUsage=clientAuth\n");
        leaf("stranger", "other-ca", "/CN=stranger", "extendedKeyUsage=clientAuth\n");
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }
}

/// A bcrypt hash (the cheapest cost, for speed).
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

/// An answer curl got: status, headers (lower-cased names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `curl -i` with `args`; Err(curl's complaint) when no HTTP answer came.
fn curl(args: &[&str]) -> Result<Answer, String> {
    let out = Command::new("curl").args(["-sS", "-i", "--max-time", "10"]).args(args).output().expect("curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer { status, headers, body: body.to_string() })
}

/// A running pyrite with `--web.config.file`, and where its files are.
struct Secured {
    pyrite: Pyrite,
    web_config: PathBuf,
    base: String,
}

/// Starts pyrite with this web configuration (written next to the certificates) and waits until
/// `ready` (curl arguments for `/-/ready`) gets a 200.
fn start(certs: &Certs, web_config: &str, extra: &[&str], ready: &[&str]) -> Secured {
    let path = certs.dir.0.join("web.yml");
    std::fs::write(&path, web_config).unwrap();
    let mut extra_args = vec![format!("--web.config.file={}", path.display())];
    extra_args.extend(extra.iter().map(|s| s.to_string()));
    let mut pyrite = Pyrite::spawn(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        shards: Some(2),
        extra_args,
        ..Default::default()
    });
    let base = format!("https://127.0.0.1:{}", pyrite.port);
    let url = format!("{base}/-/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((status, err)) = pyrite.process.exited() {
            panic!("pyrite exited during start-up ({status}):\n{err}");
        }
        let mut args = ready.to_vec();
        args.push(&url);
        if curl(&args).is_ok_and(|a| a.status == 200) {
            return Secured { pyrite, web_config: path, base };
        }
        assert!(Instant::now() < deadline, "pyrite was not ready within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tls_and_users(certs: &Certs, users: &[(&str, &str)]) -> String {
    let users: String = users.iter().map(|(u, p)| format!("  {u}: {}\n", hash(p))).collect();
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: default-src 'self'\n\
         basic_auth_users:\n{users}",
    )
    .replace("server.crt", &certs.path("server.crt"))
    .replace("server.key", &certs.path("server.key"))
}

/// Sends raw bytes and closes, as a confused or hostile client would.
fn send_raw(port: u16, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.write_all(bytes);
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.read(&mut [0u8; 512]);
    }
}

fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(program).args(args).envs(env.iter().copied()).output().expect("run client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn tls_and_basic_auth_guard_every_route_and_edits_apply_without_restart() {
    let certs = Certs::new();
    let ca = certs.path("ca.crt");
    let s =
        start(&certs, &tls_and_users(&certs, &[("alice", "s3cret")]), &[], &["--cacert", &ca, "-u", "alice:s3cret"]);
    let url = |path: &str| format!("{}{path}", s.base);
    let file = s.web_config.display().to_string();
    let (status, out) = run(Path::new("promtool"), &["check", "web-config", &file], &[]);
    assert!(status, "upstream accepts the same file: {out}");
    let (status, out) = run(&bin("pyrite"), &["check", "web-config", &file], &[]);
    assert!(status && out.contains(&format!("{file} SUCCESS")), "pyrite check web-config: {out}");

    // No credentials, wrong ones, right ones.
    let none = curl(&["--cacert", &ca, &url("/api/v1/query?query=1")]).expect("an answer");
    assert_eq!((none.status, none.header("www-authenticate")), (401, Some("Basic")), "{none:?}");
    assert_eq!(none.header("x-frame-options"), Some("deny"), "configured headers are on a 401 too");
    let wrong = curl(&["--cacert", &ca, "-u", "alice:guess", &url("/-/healthy")]).expect("an answer");
    assert_eq!(wrong.status, 401);
    let nobody = curl(&["--cacert", &ca, "-u", "mallory:s3cret", &url("/-/healthy")]).expect("an answer");
    assert_eq!(nobody.status, 401);
    let ok = curl(&["--cacert", &ca, "-u", "alice:s3cret", &url("/api/v1/query?query=2")]).expect("an answer");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains(r#""result":["#), "{}", ok.body);
    assert_eq!(ok.header("x-frame-options"), Some("deny"));
    assert_eq!(ok.header("content-security-policy"), Some("default-src 'self'"));

    // Hostile input: plain HTTP, a garbage handshake, broken and huge credentials.
    let plain = curl(&[&url("/-/healthy").replace("https://", "http://")]).expect("an answer");
    assert_eq!(plain.status, 400, "plain HTTP to the TLS port, as Go answers it");
    assert_eq!(plain.body, "Client sent an HTTP request to an HTTPS server.\n");
    send_raw(s.pyrite.port, &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x02, 0x03]);
    send_raw(s.pyrite.port, &[0u8; 4096]);
    let long = format!("Authorization: Basic {}", "A".repeat(60_000));
    for header in [
        "Authorization: Basic !!!notbase64",
        "Authorization: Basic /w==",
        "Authorization: Basic //79Og==",
        "Authorization: Bearer x",
        &long,
    ] {
        let a = curl(&["--cacert", &ca, "-H", header, &url("/-/healthy")]).expect("an answer");
        assert_eq!(a.status, 401, "{header:.40}");
    }
    assert!(curl(&["--cacert", &ca, "-u", "alice:s3cret", &url("/-/healthy")]).is_ok_and(|a| a.status == 200));

    // Clients: Debian's promtool and pyrite query.
    let (status, out) = run(
        Path::new("promtool"),
        &["query", "instant", &url("").replace("https://", "https://alice:s3cret@"), "vector(7)"],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert!(status && out.contains("=> 7 @["), "promtool: {out}");
    let client_config = certs.dir.0.join("http.yml");
    std::fs::write(
        &client_config,
        format!("basic_auth:\n  username: alice\n  password: s3cret\ntls_config:\n  ca_file: {ca}\n"),
    )
    .unwrap();
    let flag = format!("--http.config.file={}", client_config.display());
    let (status, out) = run(&bin("pyrite"), &["query", "instant", &flag, &url(""), "vector(7)"], &[]);
    assert!(status && out.contains("=> 7 @["), "pyrite query: {out}");
    let (status, out) = run(&bin("pyrite"), &["query", "instant", &url(""), "vector(7)"], &[]);
    assert!(!status && out.contains("UnknownIssuer"), "without the CA: {out}");
    for (name, valid) in [("localhost", true), ("elsewhere.example", false)] {
        let text = format!(
            "basic_auth:\n  username: alice\n  password: s3cret\ntls_config:\n  ca_file: {ca}\n  server_name: {name}\n"
        );
        std::fs::write(&client_config, text).unwrap();
        let (status, out) = run(&bin("pyrite"), &["query", "instant", &flag, &url(""), "vector(7)"], &[]);
        assert_eq!(status, valid, "server_name {name}: {out}");
    }

    // A new user applies to the next connection, without a restart; a broken edit keeps the
    // last good file in force.
    std::fs::write(&s.web_config, tls_and_users(&certs, &[("alice", "s3cret"), ("bob", "hunter2")])).unwrap();
    let bob = eventually(Duration::from_secs(5), || {
        curl(&["--cacert", &ca, "-u", "bob:hunter2", &url("/-/healthy")]).ok().filter(|a| a.status == 200)
    });
    assert!(bob.is_some(), "bob is let in after the edit");
    std::fs::write(&s.web_config, "basic_auth_users:\n  carol: plaintext\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let still = curl(&["--cacert", &ca, "-u", "bob:hunter2", &url("/-/healthy")]).expect("an answer");
    assert_eq!(still.status, 200, "the last good configuration stays in force");
    std::fs::write(&s.web_config, "").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let still = curl(&["--cacert", &ca, "-u", "bob:hunter2", &url("/-/healthy")]).expect("an answer");
    assert_eq!(still.status, 200, "TLS is not switched off while running");
    // A FIFO put in the file's place is refused, not waited on: opening it held every shard.
    std::fs::remove_file(&s.web_config).unwrap();
    let path = std::ffi::CString::new(s.web_config.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let through = curl(&["--max-time", "3", "--cacert", &ca, "-u", "bob:hunter2", &url("/-/healthy")]);
    assert_eq!(through.map(|a| a.status), Ok(200), "the last good configuration stays in force");
    let plain = curl(&[&url("/-/healthy").replace("https://", "http://")]);
    assert!(plain.as_ref().map_or(true, |a| a.status != 200), "still no plain HTTP: {plain:?}");
}

/// The status of a GET with these basic-auth credentials, on an open plain connection.
fn status_on(stream: &mut TcpStream, credentials: &str) -> u16 {
    use std::io::BufRead;
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let request = format!("GET /-/healthy HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {encoded}\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
    let (mut status_line, mut length) = (String::new(), 0usize);
    reader.read_line(&mut status_line).expect("status line");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("body");
    status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn users_apply_per_request_so_a_removed_user_is_refused_on_an_open_connection() {
    let certs = Certs::new();
    let path = certs.dir.0.join("web.yml");
    let users = |names: &[&str]| -> String {
        let lines: String = names.iter().map(|n| format!("  {n}: {}\n", hash("pw"))).collect();
        format!("basic_auth_users:\n{lines}")
    };
    std::fs::write(&path, users(&["alice", "bob"])).unwrap();
    let extra_args = vec![format!("--web.config.file={}", path.display())];
    let p = Pyrite::spawn(PyriteOpts { config: Some(NO_TARGETS.into()), extra_args, ..Default::default() });
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", p.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(s)
    };
    let mut open = eventually(Duration::from_secs(20), || {
        let mut s = connect()?;
        (status_on(&mut s, "alice:pw") == 200).then_some(s)
    })
    .expect("pyrite serves plain HTTP with basic auth");
    assert_eq!(status_on(&mut open, "alice:nope"), 401);
    std::fs::write(&path, users(&["bob"])).unwrap();
    let refused = eventually(Duration::from_secs(5), || (status_on(&mut open, "alice:pw") == 401).then_some(()));
    assert!(refused.is_some(), "alice is refused on the connection she opened before the edit");
    assert_eq!(status_on(&mut open, "bob:pw"), 200);
}

#[test]
fn client_certificates_are_required_and_verified() {
    let certs = Certs::new();
    let [ca, cert, key] = [certs.path("ca.crt"), certs.path("client.crt"), certs.path("client.key")];
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {ca}\n  client_auth_type: RequireAndVerifyClientCert\n",
        certs.path("server.crt"),
        certs.path("server.key")
    );
    let s = start(&certs, &web, &[], &["--cacert", &ca, "--cert", &cert, "--key", &key]);
    let url = format!("{}/-/healthy", s.base);
    let without = curl(&["--cacert", &ca, &url]);
    assert!(without.is_err(), "no client certificate: {without:?}");
    let (stranger, stranger_key) = (certs.path("stranger.crt"), certs.path("stranger.key"));
    let unknown = curl(&["--cacert", &ca, "--cert", &stranger, "--key", &stranger_key, &url]);
    assert!(unknown.is_err(), "a certificate from another CA: {unknown:?}");
    let with = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]).expect("an answer");
    assert_eq!(with.status, 200);
    let client_config = certs.dir.0.join("http.yml");
    std::fs::write(&client_config, format!("tls_config:\n  ca_file: {ca}\n  cert_file: {cert}\n  key_file: {key}\n"))
        .unwrap();
    let flag = format!("--http.config.file={}", client_config.display());
    let (status, out) = run(&bin("pyrite"), &["query", "instant", &flag, &s.base, "vector(3)"], &[]);
    assert!(status && out.contains("=> 3 @["), "pyrite query with a client certificate: {out}");

    // The other policies, each applied to new connections by an edit: which of no certificate,
    // an unknown CA's and the known CA's gets through.
    let answers = || {
        let get = |args: &[&str]| {
            let mut all = vec!["--cacert", ca.as_str()];
            all.extend_from_slice(args);
            all.push(&url);
            curl(&all).is_ok_and(|a| a.status == 200)
        };
        [get(&[]), get(&["--cert", &stranger, "--key", &stranger_key]), get(&["--cert", &cert, "--key", &key])]
    };
    for (policy, expected) in [
        ("RequestClientCert", [true, true, true]),
        ("RequireAnyClientCert", [false, true, true]),
        ("VerifyClientCertIfGiven", [true, false, true]),
        ("RequireAndVerifyClientCert", [false, false, true]),
    ] {
        std::fs::write(&s.web_config, web.replace("RequireAndVerifyClientCert", policy)).unwrap();
        let applied = eventually(Duration::from_secs(5), || (answers() == expected).then_some(()));
        assert!(applied.is_some(), "{policy}: expected {expected:?}, got {:?}", answers());
    }
}

#[test]
fn inline_certificates_versions_and_cipher_suites_apply_and_follow_edits() {
    let certs = Certs::new();
    let ca = certs.path("ca.crt");
    // Certificate and key inline this time, as YAML block scalars.
    let inline = |name: &str| {
        let pem = std::fs::read_to_string(certs.dir.0.join(name)).unwrap();
        pem.lines().map(|l| format!("    {l}\n")).collect::<String>()
    };
    let (cert, key) = (inline("server.crt"), inline("server.key"));
    let tls = |settings: &str| format!("tls_server_config:\n  cert: |\n{cert}  key: |\n{key}{settings}");
    let only_aes128 = "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n";
    let s = start(&certs, &tls(only_aes128), &[], &["--cacert", &ca]);
    let url = format!("{}/-/healthy", s.base);
    let with = |args: &[&str]| {
        let mut all = vec!["--cacert", ca.as_str()];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&all).map(|a| a.status)
    };
    assert_eq!(with(&["--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"]), Ok(200));
    assert!(with(&["--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES256-GCM-SHA384"]).is_err(), "a suite not listed");
    assert!(with(&["--tlsv1.3"]).is_err(), "TLS 1.3 is above max_version");

    std::fs::write(&s.web_config, tls("  min_version: TLS13\n")).unwrap();
    let edited = eventually(Duration::from_secs(5), || with(&["--tls-max", "1.2"]).is_err().then_some(()));
    assert!(edited.is_some(), "TLS 1.2 is refused after the edit");
    assert_eq!(with(&["--tlsv1.3"]), Ok(200));
}

#[test]
fn a_broken_web_config_file_stops_the_start_naming_file_and_key() {
    let certs = Certs::new();
    for (text, expected) in [
        ("tls_server_config:\n  cert_fil: server.crt\n", "tls_server_config.cert_fil: unknown field `cert_fil`"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "TLS10 is not supported"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "tls_server_config.cert_file: unable to load",
        ),
        ("basic_auth_users:\n  bob: plaintext\n", "basic_auth_users.bob: not a bcrypt hash"),
    ] {
        let path = certs.dir.0.join("broken.yml");
        std::fs::write(&path, text).unwrap();
        let extra_args = vec![format!("--web.config.file={}", path.display())];
        let mut p = Pyrite::spawn(PyriteOpts { config: Some(NO_TARGETS.into()), extra_args, ..Default::default() });
        let (status, err) = p.process.wait_exit(Duration::from_secs(20));
        assert!(!status.success());
        assert!(err.contains(&path.display().to_string()) && err.contains(expected), "{text:?}: {err}");
        let (valid, out) = run(&bin("pyrite"), &["check", "web-config", &path.display().to_string()], &[]);
        assert!(!valid && out.contains(" FAILED: ") && out.contains(expected), "pyrite check web-config: {out}");
    }
}

/// Sends a request on `stream` and reads the first bytes of the answer.
fn exchange(stream: &mut TcpStream) -> std::io::Result<String> {
    stream.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn max_connections_makes_further_connections_wait_until_one_closes() {
    let extra_args = vec!["--web.max-connections=2".to_string()];
    let p = Pyrite::start(PyriteOpts {
        config: Some(NO_TARGETS.into()),
        shards: Some(2),
        extra_args,
        ..Default::default()
    });
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // The readiness probe's connection may still be closing: wait until two are served.
    let mut first = connect();
    assert!(exchange(&mut first).expect("first answered").starts_with("HTTP/1.1 200"));
    let mut second = connect();
    assert!(exchange(&mut second).expect("second answered").starts_with("HTTP/1.1 200"));
    let mut third = connect();
    third.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let waiting = exchange(&mut third);
    assert!(waiting.is_err(), "a third connection is not served while two are open: {waiting:?}");
    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    let n = third.read(&mut buf).expect("the third is served once one closed");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut second).expect("the second still works").starts_with("HTTP/1.1 200"));
}

#[test]
fn read_timeout_bounds_the_whole_request_read() {
    let extra_args = vec!["--web.read-timeout=1s".to_string()];
    let p = Pyrite::start(PyriteOpts { config: Some(NO_TARGETS.into()), extra_args, ..Default::default() });
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Headers at once, then a body that never completes.
    s.write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nquery=").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let read = s.read(&mut buf);
    let waited = started.elapsed();
    assert!(read.is_ok(), "the server ends the exchange instead of waiting for the body: {read:?}");
    assert!(waited < Duration::from_secs(5), "after about a second, not {waited:?}");
    assert_eq!(p.get("/-/healthy").0, 200);
}

#[test]
fn cors_headers_follow_the_origin_flag_as_upstream() {
    let header = |p: &Pyrite, origin: Option<&str>, method: &str| {
        let mut request = ureq::request(method, &format!("{}/api/v1/query?query=1", p.url));
        if let Some(origin) = origin {
            request = request.set("Origin", origin);
        }
        let r = request.call().expect("answer");
        (r.status(), r.header("Access-Control-Allow-Origin").map(str::to_string))
    };
    let any = Pyrite::start(PyriteOpts { config: Some(NO_TARGETS.into()), ..Default::default() });
    assert_eq!(header(&any, Some("https://anywhere.example"), "GET"), (200, Some("*".into())));
    assert_eq!(header(&any, None, "GET"), (200, None), "no Origin, no CORS headers");
    assert_eq!(header(&any, Some("https://anywhere.example"), "OPTIONS"), (204, Some("*".into())));
    let extra_args = vec![r"--web.cors.origin=https://grafana\.example\.com".to_string()];
    let one = Pyrite::start(PyriteOpts { config: Some(NO_TARGETS.into()), extra_args, ..Default::default() });
    let grafana = "https://grafana.example.com";
    assert_eq!(header(&one, Some(grafana), "GET"), (200, Some(grafana.into())));
    assert_eq!(header(&one, Some("https://evil.example.com"), "GET"), (200, None));
    assert_eq!(header(&one, Some("https://grafana.example.com.evil"), "GET"), (200, None), "the pattern is anchored");
}

/// `pyrite health`, the container health check, reaches a server behind TLS and basic auth
/// given the server's flags (`--web.config.file` turns on https) and a promtool-style HTTP
/// client file with the credentials and the CA; without them it fails.
#[test]
fn the_health_probe_passes_tls_and_basic_auth_with_a_client_file() {
    let certs = Certs::new();
    let ca = certs.path("ca.crt");
    let s =
        start(&certs, &tls_and_users(&certs, &[("alice", "s3cret")]), &[], &["--cacert", &ca, "-u", "alice:s3cret"]);
    let client = certs.dir.0.join("client.yml");
    let write = |text: String| std::fs::write(&client, text).unwrap();
    let listen = format!("--web.listen-address=127.0.0.1:{}", s.pyrite.port);
    let web = format!("--web.config.file={}", s.web_config.display());
    let http = format!("--http.config.file={}", client.display());
    let probe = || run(&bin("pyrite"), &["health", &listen, &web, &http], &[]);

    write(format!("basic_auth:\n  username: alice\n  password: s3cret\ntls_config:\n  ca_file: {ca}\n"));
    let (ok, out) = probe();
    assert!(ok && out.contains("Healthy"), "{out}");
    write(format!("tls_config:\n  ca_file: {ca}\n"));
    let (ok, out) = probe();
    assert!(!ok && out.contains("401"), "without credentials: {out}");
    write("basic_auth:\n  username: alice\n  password: s3cret\n".into());
    let (ok, out) = probe();
    assert!(!ok, "a server certificate from an unknown CA was trusted: {out}");
}
