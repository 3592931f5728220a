//! The signer against real peers: remote-write POSTs sent over loopback to a stand-in for
//! the managed service that checks each signature with botocore's SigV4 signer
//! (`daemon/tests/standins/aws.py`, which also stands in for the container credentials
//! endpoint and STS). botocore is installed once into a virtual environment under
//! `~/.cache/pyrite-tests/` (nothing is fetched when it is there already).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use super::environment::Environment;
use super::{SigV4Error, SigV4Settings, Signer};

const REGION: &str = "us-east-1";
const PATH: &str = "/workspaces/ws-0123/api/v1/remote_write";

/// A Python with botocore: a virtual environment made (and botocore installed from PyPI) the
/// first time, under a temporary name renamed into place, so that concurrent test runs never
/// use a half-made one.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let home = std::env::var("HOME").expect("HOME");
        let dir = PathBuf::from(home).join(".cache/pyrite-tests/botocore-venv");
        let python = dir.join("bin/python");
        let has_botocore =
            |python: &Path| Command::new(python).args(["-c", "import botocore"]).status().is_ok_and(|s| s.success());
        if has_botocore(&python) {
            return python;
        }
        let building = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let run = |command: &mut Command| {
            let status = command.status().unwrap_or_else(|e| panic!("{command:?}: {e}"));
            assert!(status.success(), "{command:?}: {status}");
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&building));
        run(Command::new(building.join("bin/python")).args(["-m", "pip", "install", "--quiet", "botocore"]));
        let _ = std::fs::remove_dir_all(&dir);
        // Another run may have renamed its own into place meanwhile; either will do.
        if std::fs::rename(&building, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        assert!(has_botocore(&python), "no botocore in {}", dir.display());
        python
    })
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pyrite-sigv4-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stand-in process, killed on drop.
struct StandIn {
    child: Child,
    port: u16,
    _scratch: Scratch,
}

impl StandIn {
    /// Starts the stand-in with `config` (see aws.py).
    fn start(name: &str, config: serde_json::Value) -> StandIn {
        let scratch = Scratch::new(&format!("standin-{name}"));
        let config_file = scratch.path("config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standins/aws.py");
        let mut child =
            Command::new(python()).arg(script).arg(&config_file).stdout(Stdio::piped()).spawn().expect("aws.py starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("aws.py did not start: {line:?}")
        });
        StandIn { child, port, _scratch: scratch }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many requests each endpoint answered.
    fn stats(&self) -> serde_json::Value {
        let body = ureq::get(&self.url("/stats")).call().unwrap().into_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in config accepting `service_keys` for `aps`.
fn config(service_keys: serde_json::Value) -> serde_json::Value {
    json!({ "region": REGION, "service_keys": service_keys })
}

/// The headers a remote-write sender sends.
fn remote_write_headers() -> Vec<(String, String)> {
    [
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ("User-Agent", "Pyrite/test"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// A snappy-framed write request's worth of bytes, binary as one is.
const BODY: &[u8] =
    b"\x1c\x6c\x0a\x1a\x0a\x08\x5f\x5f\x6e\x61\x6d\x65\x5f\x5f\x12\x02up\x12\x09\x09\0\0\0\0\0\0\xf0\x3f";

/// Sends `sent` to `url`, signed as `signed` by `signer`; the status.
fn post(signer: &Signer, url: &str, signed: &[u8], sent: &[u8]) -> u16 {
    let headers = remote_write_headers();
    let mut request = crate::http_client::request(&Default::default(), "POST", url, Duration::from_secs(10)).unwrap();
    for (name, value) in headers.iter().chain(&signer.sign("POST", url, &headers, signed).unwrap()) {
        request = request.set(name, value);
    }
    match request.send_bytes(sent) {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, response)) => {
            eprintln!("{status}: {}", response.into_string().unwrap_or_default());
            status
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

/// An environment with no AWS settings but `vars`, and a home without `.aws`.
fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars([("HOME", "/nonexistent/pyrite-sigv4")].iter().chain(vars).copied())
}

fn keys(access_key: &str, secret_key: &str) -> SigV4Settings {
    SigV4Settings {
        region: Some(REGION.into()),
        access_key: Some(access_key.into()),
        secret_key: Some(secret_key.into()),
        ..SigV4Settings::default()
    }
}

#[test]
fn static_keys_sign_a_remote_write_the_service_accepts() {
    let service = StandIn::start("static", config(json!({ "AKIDSTATIC": { "secret": "static-secret" } })));
    let url = service.url(PATH);
    let signer = Signer::with_environment(&keys("AKIDSTATIC", "static-secret"), &env(&[])).unwrap();
    assert_eq!(post(&signer, &url, BODY, BODY), 204);
    // The stand-in does check: another body, another secret and another region are refused.
    assert_eq!(post(&signer, &url, BODY, b"another body of the same size.."), 403);
    let wrong_secret = Signer::with_environment(&keys("AKIDSTATIC", "not-the-secret"), &env(&[])).unwrap();
    assert_eq!(post(&wrong_secret, &url, BODY, BODY), 403);
    let other_region = SigV4Settings { region: Some("eu-west-1".into()), ..keys("AKIDSTATIC", "static-secret") };
    assert_eq!(post(&Signer::with_environment(&other_region, &env(&[])).unwrap(), &url, BODY, BODY), 403);
    assert_eq!(service.stats()["service_accepted"], 1);
}

#[test]
fn environment_credentials_with_a_session_token_and_region() {
    let service = StandIn::start(
        "env",
        config(json!({ "ASIAENV": { "secret": "env-secret", "token": "env-session-token/+=" } })),
    );
    let env = env(&[
        ("AWS_ACCESS_KEY_ID", "ASIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_SESSION_TOKEN", "env-session-token/+="),
        ("AWS_REGION", REGION),
    ]);
    let signer = Signer::with_environment(&SigV4Settings::default(), &env).unwrap();
    assert_eq!(signer.region(), REGION);
    assert_eq!(post(&signer, &service.url(PATH), BODY, BODY), 204);
}

#[test]
fn threads_sign_at_once_with_credentials_fetched_once() {
    let mut config = config(json!({ "ASIATASK": { "secret": "task-secret", "token": "task-token" } }));
    config["container"] = json!({
        "authorization": null,
        "credentials": { "AccessKeyId": "ASIATASK", "SecretAccessKey": "task-secret", "Token": "task-token" },
        "expires_in": 3600,
    });
    let service = StandIn::start("threads", config);
    let endpoint = service.url("/container-credentials");
    let env = env(&[("AWS_REGION", REGION), ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint)]);
    let signer = Signer::with_environment(&SigV4Settings::default(), &env).unwrap();
    let url = service.url(PATH);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..3 {
                    assert_eq!(post(&signer, &url, BODY, BODY), 204);
                }
            });
        }
    });
    let stats = service.stats();
    assert_eq!((stats["service_accepted"].as_u64(), stats["container"].as_u64()), (Some(12), Some(1)));
}

#[test]
fn container_endpoint_credentials_are_cached_until_five_minutes_before_they_expire() {
    let issued = json!({ "AccessKeyId": "ASIATASK", "SecretAccessKey": "task-secret", "Token": "task-token" });
    let stand_in = |name: &str, expires_in: u64| {
        let mut config = config(json!({ "ASIATASK": { "secret": "task-secret", "token": "task-token" } }));
        config["container"] =
            json!({ "authorization": "Bearer task", "credentials": issued, "expires_in": expires_in });
        StandIn::start(name, config)
    };
    let task_env = |service: &StandIn, token: &str| {
        let endpoint = service.url("/container-credentials");
        Environment::from_vars([
            ("HOME", "/nonexistent/pyrite-sigv4"),
            ("AWS_REGION", REGION),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token),
        ])
    };

    let service = stand_in("container-hour", 3600);
    let signer = Signer::with_environment(&SigV4Settings::default(), &task_env(&service, "Bearer task")).unwrap();
    for _ in 0..2 {
        assert_eq!(post(&signer, &service.url(PATH), BODY, BODY), 204);
    }
    assert_eq!(service.stats()["container"], 1, "fetched once, when the signer was built");

    let service = stand_in("container-short", 120);
    let signer = Signer::with_environment(&SigV4Settings::default(), &task_env(&service, "Bearer task")).unwrap();
    for _ in 0..2 {
        assert_eq!(post(&signer, &service.url(PATH), BODY, BODY), 204);
    }
    assert_eq!(service.stats()["container"], 3, "credentials expiring within 5 minutes are fetched again");

    let refused = Signer::with_environment(&SigV4Settings::default(), &task_env(&service, "Bearer other"));
    assert!(matches!(refused, Err(SigV4Error::Container { .. })), "{:?}", refused.err());
    let remote = Environment::from_vars([
        ("AWS_REGION", REGION),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds"),
    ]);
    assert!(matches!(Signer::with_environment(&SigV4Settings::default(), &remote), Err(SigV4Error::Container { .. })));
}

#[test]
fn a_named_profile_gives_keys_and_region() {
    let service = StandIn::start("profile", config(json!({ "AKIDPROFILE": { "secret": "profile-secret" } })));
    let files = Scratch::new("profile-files");
    std::fs::write(files.path("credentials"), "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n\n[writer]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n").unwrap();
    std::fs::write(files.path("config"), format!("[profile writer]\nregion = {REGION}\n")).unwrap();
    let env =
        env(&[("AWS_SHARED_CREDENTIALS_FILE", &files.path("credentials")), ("AWS_CONFIG_FILE", &files.path("config"))]);
    let settings = SigV4Settings { profile: Some("writer".into()), ..SigV4Settings::default() };
    let signer = Signer::with_environment(&settings, &env).unwrap();
    assert_eq!(signer.region(), REGION);
    assert_eq!(post(&signer, &service.url(PATH), BODY, BODY), 204);
    assert!(matches!(Signer::with_environment(&SigV4Settings::default(), &env), Err(SigV4Error::NoRegion)));
}

#[test]
fn role_arn_is_assumed_through_sts_with_the_chain_credentials() {
    let role_arn = "arn:aws:iam::123456789012:role/prometheus-writer";
    let mut config = config(json!({ "ASIAROLE": { "secret": "role-secret", "token": "role-token" } }));
    config["sts"] = json!({
        "role_arn": role_arn,
        "keys": { "AKIDSOURCE": { "secret": "source-secret" } },
        "issued": { "AccessKeyId": "ASIAROLE", "SecretAccessKey": "role-secret", "SessionToken": "role-token" },
        "expires_in": 900,
    });
    let service = StandIn::start("role", config);
    let env = env(&[("AWS_ENDPOINT_URL_STS", &service.url("/sts/"))]);
    let settings = SigV4Settings { role_arn: Some(role_arn.into()), ..keys("AKIDSOURCE", "source-secret") };
    let signer = Signer::with_environment(&settings, &env).unwrap();
    for _ in 0..2 {
        assert_eq!(post(&signer, &service.url(PATH), BODY, BODY), 204);
    }
    assert_eq!(service.stats()["sts"], 1, "the role's credentials are cached");
    // The source credentials alone are not accepted by the service, nor a role STS refuses.
    assert_eq!(
        post(
            &Signer::with_environment(&keys("AKIDSOURCE", "source-secret"), &env).unwrap(),
            &service.url(PATH),
            BODY,
            BODY
        ),
        403
    );
    let other_role = SigV4Settings { role_arn: Some("arn:aws:iam::123456789012:role/other".into()), ..settings };
    let signer = Signer::with_environment(&other_role, &env).unwrap();
    let refused = signer.sign("POST", &service.url(PATH), &[], BODY);
    assert!(matches!(refused, Err(SigV4Error::AssumeRole { .. })), "{refused:?}");
}
