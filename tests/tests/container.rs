//! The container image (`Containerfile`, which `scripts/test` builds with `scripts/image` before
//! the tests run) as the ECS task definition of `deploy/ecs/` runs it: its command, its health
//! check, its CPU and memory (`--cpus=0.25 --memory=512m`), under podman's default seccomp
//! profile, which blocks io_uring as Fargate's does, with a fresh named volume at `/prometheus`
//! and the configuration mounted at `/etc/prometheus/prometheus.yml`. The server must start on
//! epoll with one shard, scrape targets outside the container, answer under the route prefix,
//! pass its shell-less health check, stop on SIGTERM within the task's `stopTimeout`, and leave
//! its data whole for the next container on the same volume.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pyrite_tests::{encode, eventually, http_get, json, Loadgen, TempDir};

/// The image `scripts/image` builds.
const IMAGE: &str = "pyrite:latest";

/// How the host is named from inside a container (podman's /etc/hosts).
const HOST: &str = "host.containers.internal";

/// What the test takes from `deploy/ecs/task-definition.json`.
struct Task {
    /// `--cpus` and `--memory` from the task's CPU units and MiB.
    cpus: String,
    memory: String,
    command: Vec<String>,
    /// The health check's command, exec form (after `CMD`).
    health: Vec<String>,
    stop_timeout: u64,
    /// The path of its `--web.external-url`, e.g. `/prometheus`.
    route_prefix: String,
}

impl Task {
    fn load() -> Task {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ecs/task-definition.json");
        let task: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("task definition")).expect("JSON");
        let container = &task["containerDefinitions"][0];
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
        };
        let number = |v: &serde_json::Value| v.as_str().expect("a string").parse::<f64>().expect("a number");
        let health = strings(&container["healthCheck"]["command"]);
        assert_eq!(health[0], "CMD", "the health check is exec form (no shell in the image)");
        let command = strings(&container["command"]);
        let external = command.iter().find_map(|a| a.strip_prefix("--web.external-url=")).expect("an external URL");
        let path = external.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]));
        Task {
            route_prefix: path.unwrap_or("").trim_end_matches('/').to_string(),
            cpus: format!("{}", number(&task["cpu"]) / 1024.0),
            memory: format!("{}m", number(&task["memory"])),
            command,
            health: health[1..].to_vec(),
            stop_timeout: container["stopTimeout"].as_u64().expect("stopTimeout"),
        }
    }
}

/// Runs podman as the notes of this machine say it runs here (runc, cgroupfs).
fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"])
        .args(args)
        .output()
        .expect("podman is installed (scripts/test installs it)")
}

/// Runs podman and returns its trimmed stdout; panics with its stderr if it failed.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running container, removed when dropped.
struct Container {
    name: String,
}

impl Container {
    /// Starts `IMAGE` with the task's size and podman's default seccomp profile; `options` go
    /// before the image, `args` replace its default command.
    fn run(name: &str, task: &Task, options: &[&str], args: &[String]) -> Container {
        let (cpus, memory) = (format!("--cpus={}", task.cpus), format!("--memory={}", task.memory));
        let mut all = vec!["run", "-d", "--name", name, &cpus, &memory];
        all.extend(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]);
        all.extend(options);
        all.push(IMAGE);
        all.extend(args.iter().map(String::as_str));
        podman_ok(&all);
        Container { name: name.to_string() }
    }

    /// `http://<container address>:9090`.
    fn url(&self) -> String {
        let ip = podman_ok(&["inspect", "--format", "{{.NetworkSettings.IPAddress}}", &self.name]);
        format!("http://{ip}:9090")
    }

    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// Whether the image's or the run's health check passes now.
    fn healthy(&self) -> bool {
        podman(&["healthcheck", "run", &self.name]).status.success()
    }

    /// Waits until `url` answers 200, at most 30 s.
    fn wait_ready(&self, url: &str) {
        let ready = eventually(Duration::from_secs(30), || (http_get(url).ok()?.0 == 200).then_some(()));
        assert!(ready.is_some(), "{url} not ready within 30 s; logs:\n{}", self.logs());
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// A named volume, removed when dropped (after the containers that use it).
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        podman(&["volume", "rm", "-f", &self.0]);
    }
}

/// The result of an instant query at `time`.
fn query(base: &str, query: &str, time: f64) -> serde_json::Value {
    let (status, body) = http_get(&format!("{base}/api/v1/query?query={}&time={time}", encode(query))).expect("answer");
    assert_eq!(status, 200, "{body}");
    json(&body)["data"]["result"].clone()
}

/// The one number an instant query at `time` answers (0 if it answers nothing).
fn number(base: &str, expr: &str, time: f64) -> f64 {
    query(base, expr, time)[0]["value"][1].as_str().map_or(0.0, |v| v.parse().expect("a number"))
}

/// Every sample of the scraped series in the ten minutes before `time`.
fn samples(base: &str, time: f64) -> Vec<serde_json::Value> {
    let result = query(base, "{job=\"app\"}[10m]", time);
    result
        .as_array()
        .expect("a matrix")
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
}

#[test]
fn the_image_runs_as_a_fargate_task_and_keeps_its_data_across_containers() {
    let inspect = |format: &str| podman_ok(&["image", "inspect", "--format", format, IMAGE]);
    assert_eq!(inspect("{{.Config.User}}"), "65534:65534", "the image runs as nobody");
    assert_eq!(inspect("{{json .Config.Entrypoint}}"), r#"["/bin/pyrite"]"#);
    assert_eq!(
        inspect("{{json .Config.Cmd}}"),
        r#"["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"]"#
    );
    assert!(inspect("{{json .Config.Volumes}}").contains("/prometheus"));
    assert!(inspect("{{json .Config.ExposedPorts}}").contains("9090/tcp"));
    assert!(inspect("{{json .Config.Healthcheck}}").contains(r#"["CMD","/bin/pyrite","health"]"#));
    eprintln!("image size: {} bytes", inspect("{{.Size}}"));

    // Targets on the host, reached from the container's network by the host's name.
    let apps = Loadgen::start_with(2, 50, &["--ip".into(), "0.0.0.0".into()]);
    let targets: Vec<String> = apps.targets.iter().map(|t| format!("\"{}\"", t.replace("0.0.0.0", HOST))).collect();
    let dir = TempDir::new("container");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("write config");
    let unique = format!("pyrite-test-{}-{}", std::process::id(), now_seconds() as u64);
    let volume = Volume(unique.clone());
    let mounts =
        [format!("{}:/prometheus", volume.0), format!("{}:/etc/prometheus/prometheus.yml:ro", config.display())];

    // The first task, as the task definition has it: behind a load balancer at /prometheus.
    let task = Task::load();
    assert_eq!((task.cpus.as_str(), task.memory.as_str()), ("0.25", "512m"));
    let health = serde_json::to_string(&task.health).expect("JSON");
    let first = Container::run(
        &format!("{unique}-1"),
        &task,
        &["-v", &mounts[0], "-v", &mounts[1], "--health-cmd", &health],
        &task.command,
    );
    assert_eq!(task.route_prefix, "/prometheus", "the seed deployment sits behind a load balancer at /prometheus");
    let base = format!("{}{}", first.url(), task.route_prefix);
    first.wait_ready(&format!("{base}/-/ready"));
    let logs = first.logs();
    assert!(logs.contains("driver=\"epoll\"") && logs.contains("shards=1"), "not epoll on one shard:\n{logs}");
    let scraped = eventually(Duration::from_secs(30), || {
        (number(&base, "min(count_over_time(up{job=\"app\"}[1m]))", now_seconds()) >= 3.0).then_some(())
    });
    assert!(scraped.is_some(), "the targets were not scraped three times in 30 s:\n{}", first.logs());
    assert!(first.healthy(), "the health check with the route prefix failed");
    let unprefixed = podman(&["exec", &first.name, "/bin/pyrite", "health"]);
    assert!(!unprefixed.status.success(), "a probe of /-/healthy outside the route prefix passed");

    let until = now_seconds() - 2.0;
    let stored = samples(&base, until);
    assert!(stored.len() > 100, "{} samples", stored.len());
    let asked = Instant::now();
    podman_ok(&["stop", "-t", &task.stop_timeout.to_string(), &first.name]);
    let stopping = asked.elapsed();
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &first.name]);
    eprintln!("stopped in {stopping:?} with exit code {code}");
    assert_eq!(code, "0", "SIGTERM did not stop the server cleanly:\n{}", first.logs());
    assert!(stopping < Duration::from_secs(task.stop_timeout), "stopping took {stopping:?}");

    // The next task on the same volume, with the image's own command and health check.
    let second = Container::run(&format!("{unique}-2"), &task, &["-v", &mounts[0], "-v", &mounts[1]], &[]);
    let base = second.url();
    second.wait_ready(&format!("{base}/-/ready"));
    assert!(second.healthy(), "the image's health check failed");
    assert!(samples(&base, until) == stored, "samples were lost across containers");
}
