//! The `mixed` profile, for benchmarks: targets shaped like the exporters operators run — an
//! HTTP service (request counters by handler/method/status/pod, latency histograms, in-flight
//! gauges), a node exporter (CPU seconds by cpu/mode, memory, load, filesystems) and a Redis
//! exporter (commands, clients, keys). Three targets in five are services, one a node, one a
//! Redis. Every value moves every scrape (counters at varying speed, gauges with jitter), so
//! compression is as hard as on real data, and with [`Churn`] a share of the services gets new
//! `pod` label values periodically, as prombench replaces pods every 15 minutes.

use std::fmt::Write;

const METHODS: [&str; 2] = ["GET", "POST"];
const STATUSES: [&str; 4] = ["200", "302", "404", "500"];
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const CPU_MODES: [&str; 8] = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
const REDIS_COMMANDS: [&str; 8] = ["get", "set", "del", "incr", "expire", "hget", "hset", "lpush"];

/// A share of the service targets that get new pods every so often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Fraction of service targets that churn, 0..=1.
    pub fraction: f64,
    /// Seconds between two pod replacements of a churning target.
    pub every: f64,
}

/// SplitMix64: a cheap, well-mixed hash of two numbers, for deterministic jitter.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A counter `seed` at `t` seconds: rising at 0.5–5.5 per second, faster and slower over time,
/// never falling.
fn counter(seed: u64, t: f64) -> f64 {
    let rate = 0.5 + (seed % 100) as f64 / 20.0;
    let phase = (seed % 628) as f64 / 100.0;
    rate * (t + 10.0 * (1.0 - (t / 37.0 + phase).cos()))
}

/// A gauge `seed` at `t` seconds around `base`: a slow wave plus jitter that changes every 5 s.
fn gauge(seed: u64, t: f64, base: f64) -> f64 {
    let phase = (seed % 628) as f64 / 100.0;
    let jitter = (mix(seed, (t / 5.0) as u64) % 1000) as f64 / 1000.0;
    (base * (1.0 + 0.3 * (t / 300.0 + phase).sin() + 0.05 * jitter)).round()
}

/// Writes series until `limit` is reached.
struct Body {
    out: String,
    left: usize,
    target: u64,
}

impl Body {
    fn full(&self) -> bool {
        self.left == 0
    }

    fn line(&mut self, name: &str, labels: std::fmt::Arguments<'_>, value: f64) {
        if self.left > 0 {
            self.left -= 1;
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    fn help(&mut self, name: &str, kind: &str) {
        if self.left > 0 {
            let _ = writeln!(self.out, "# HELP {name} Synthetic {kind}.\n# TYPE {name} {kind}");
        }
    }

    /// A seed unique to this target and `n`.
    fn seed(&self, n: u64) -> u64 {
        mix(self.target, n)
    }
}

/// The exposition body of target `target` (of `targets`) with exactly `series` series,
/// `elapsed` seconds after start.
pub fn render(series: usize, target: usize, targets: usize, elapsed: f64, churn: Option<Churn>) -> String {
    let mut body = Body { out: String::with_capacity(series * 110), left: series, target: target as u64 };
    match target % 5 {
        3 => node(&mut body, elapsed),
        4 => redis(&mut body, elapsed),
        _ => service(&mut body, &pod(target, targets, elapsed, churn), elapsed),
    }
    body.out
}

/// Whether target `target` gets new pods under `churn`: a service target drawn by [`drawn`].
pub fn churns(target: usize, churn: Churn) -> bool {
    !matches!(target % 5, 3 | 4) && drawn(target, churn)
}

/// Whether `target` is drawn to churn: by a hash of its index, with probability
/// `churn.fraction`.
fn drawn(target: usize, churn: Churn) -> bool {
    churn.every > 0.0 && (mix(target as u64, 7) % 10_000) as f64 / 10_000.0 < churn.fraction
}

/// The pod a service target runs as: a new one every `churn.every` seconds for churning
/// targets, with replacements spread evenly over the period.
fn pod(target: usize, targets: usize, elapsed: f64, churn: Option<Churn>) -> String {
    let generation = match churn {
        Some(c) if drawn(target, c) => {
            let offset = c.every * target as f64 / targets.max(1) as f64;
            ((elapsed + offset) / c.every) as u64
        }
        _ => 0,
    };
    format!("svc{}-{:08x}-{}", target % 50, mix(target as u64, generation) as u32, target)
}

/// Per handler: requests by method and status, a latency histogram, an in-flight gauge; then
/// cache gauges to fill up.
fn service(b: &mut Body, pod: &str, t: f64) {
    let handlers = (b.left / 21).max(1);
    b.help("http_requests_total", "counter");
    for h in 0..handlers {
        for (m, method) in METHODS.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let seed = b.seed((h * 8 + m * 4 + s) as u64);
                let share = if *status == "200" { 1.0 } else { 0.05 };
                b.line(
                    "http_requests_total",
                    format_args!("handler=\"/api/{h}\",method=\"{method}\",pod=\"{pod}\",status=\"{status}\""),
                    (counter(seed, t) * share).floor(),
                );
            }
        }
    }
    b.help("http_request_duration_seconds", "histogram");
    for h in 0..handlers {
        let count = counter(b.seed(1_000_000 + h as u64), t).floor();
        let labels = format!("handler=\"/api/{h}\",method=\"GET\",pod=\"{pod}\"");
        for le in BUCKETS {
            let share = 1.0 - (-le / 0.15).exp();
            b.line(
                "http_request_duration_seconds_bucket",
                format_args!("{labels},le=\"{le}\""),
                (count * share).floor(),
            );
        }
        b.line("http_request_duration_seconds_bucket", format_args!("{labels},le=\"+Inf\""), count);
        b.line("http_request_duration_seconds_sum", format_args!("{labels}"), (count * 0.15 * 1000.0).round() / 1000.0);
        b.line("http_request_duration_seconds_count", format_args!("{labels}"), count);
    }
    b.help("http_requests_in_flight", "gauge");
    for h in 0..handlers {
        let seed = b.seed(2_000_000 + h as u64);
        b.line("http_requests_in_flight", format_args!("handler=\"/api/{h}\",pod=\"{pod}\""), gauge(seed, t, 20.0));
    }
    b.help("app_cache_entries", "gauge");
    for c in 0.. {
        if b.full() {
            break;
        }
        let seed = b.seed(3_000_000 + c);
        b.line("app_cache_entries", format_args!("cache=\"c{c}\",pod=\"{pod}\""), gauge(seed, t, 5e4));
    }
}

/// Memory and load gauges, CPU seconds per cpu and mode, then filesystems to fill up.
fn node(b: &mut Body, t: f64) {
    for (i, (name, base)) in
        [("node_memory_MemTotal_bytes", 3.4e10), ("node_memory_MemAvailable_bytes", 1.2e10), ("node_load1", 2.0)]
            .into_iter()
            .enumerate()
    {
        b.help(name, "gauge");
        let value = if i == 0 { base } else { gauge(b.seed(i as u64), t, base) };
        b.line(name, format_args!(""), value);
    }
    let cpus = (b.left / 16).max(1);
    b.help("node_cpu_seconds_total", "counter");
    for cpu in 0..cpus {
        for (m, mode) in CPU_MODES.iter().enumerate() {
            let seed = b.seed(100 + (cpu * 8 + m) as u64);
            let share = if *mode == "idle" { 0.8 } else { 0.02 };
            let value = (counter(seed, t) * share * 100.0).round() / 100.0;
            b.line("node_cpu_seconds_total", format_args!("cpu=\"{cpu}\",mode=\"{mode}\""), value);
        }
    }
    b.help("node_filesystem_avail_bytes", "gauge");
    for d in 0.. {
        if b.full() {
            break;
        }
        let seed = b.seed(1_000_000 + d);
        b.line(
            "node_filesystem_avail_bytes",
            format_args!("device=\"/dev/sd{d}\",fstype=\"ext4\",mountpoint=\"/mnt/d{d}\""),
            gauge(seed, t, 2e11),
        );
    }
}

/// Clients and memory gauges, calls and time per command, then per-database key counts.
fn redis(b: &mut Body, t: f64) {
    for (i, (name, base)) in [("redis_connected_clients", 150.0), ("redis_memory_used_bytes", 2.5e9)].iter().enumerate()
    {
        b.help(name, "gauge");
        b.line(name, format_args!(""), gauge(b.seed(i as u64), t, *base));
    }
    let commands = b.left / 4;
    b.help("redis_commands_total", "counter");
    for c in 0..commands {
        let cmd = REDIS_COMMANDS[c % REDIS_COMMANDS.len()];
        let round = c / REDIS_COMMANDS.len();
        b.line(
            "redis_commands_total",
            format_args!("cmd=\"{cmd}{round}\""),
            counter(b.seed(100 + c as u64), t).floor(),
        );
    }
    b.help("redis_commands_duration_seconds_total", "counter");
    for c in 0..commands {
        let cmd = REDIS_COMMANDS[c % REDIS_COMMANDS.len()];
        let round = c / REDIS_COMMANDS.len();
        let value = (counter(b.seed(100 + c as u64), t) * 2e-5 * 1e6).round() / 1e6;
        b.line("redis_commands_duration_seconds_total", format_args!("cmd=\"{cmd}{round}\""), value);
    }
    b.help("redis_db_keys", "gauge");
    for db in 0.. {
        if b.full() {
            break;
        }
        b.line("redis_db_keys", format_args!("db=\"db{db}\""), gauge(b.seed(1_000_000 + db), t, 1e5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Vec<String> {
        body.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0.to_string()).collect()
    }

    #[test]
    fn every_kind_has_exactly_the_series_asked_for_and_no_duplicates() {
        for target in 0..5 {
            for n in [1, 7, 21, 100, 1000, 5000] {
                let mut k = keys(&render(n, target, 5, 100.0, None));
                assert_eq!(k.len(), n, "target {target}, {n} series");
                k.sort();
                k.dedup();
                assert_eq!(k.len(), n, "duplicates for target {target}, {n} series");
            }
        }
    }

    #[test]
    fn bodies_parse_as_text_exposition_with_unique_series() {
        for target in 0..5 {
            let body = render(300, target, 5, 42.0, Some(Churn { fraction: 1.0, every: 10.0 }));
            for entry in pyrite_core::exposition::text::TextParser::new(&body) {
                entry.unwrap_or_else(|e| panic!("target {target}: {e:?}\n{body}"));
            }
        }
    }

    #[test]
    fn counters_never_fall_and_values_move_every_scrape() {
        let (a, b) = (render(500, 0, 5, 600.0, None), render(500, 0, 5, 615.0, None));
        let mut moved = 0;
        for (x, y) in a.lines().zip(b.lines()).filter(|(l, _)| !l.starts_with('#')) {
            let (vx, vy): (f64, f64) =
                (x.rsplit_once(' ').unwrap().1.parse().unwrap(), y.rsplit_once(' ').unwrap().1.parse().unwrap());
            if x.contains("_total") || x.contains("_bucket") || x.contains("_count") {
                assert!(vy >= vx, "{x} -> {y}");
            }
            moved += usize::from(vx != vy);
        }
        assert!(moved > 450, "only {moved} of 500 values moved in 15 s");
    }

    #[test]
    fn churning_services_get_new_pods_and_the_rest_keep_theirs() {
        let churn = Some(Churn { fraction: 0.5, every: 60.0 });
        let pods = |t: f64| (0..100).map(|i| pod(i, 100, t, churn)).collect::<Vec<_>>();
        let (before, after) = (pods(0.0), pods(60.0));
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!((35..=65).contains(&changed), "{changed} of 100 targets churned in one period");
        assert!((0..100).all(|i| pod(i, 100, 0.0, None) == pod(i, 100, 600.0, None)), "no churn: pods stay");
    }

    #[test]
    fn churns_names_the_services_whose_pods_change() {
        let churn = Churn { fraction: 0.5, every: 60.0 };
        for t in 0..100 {
            let changes = t % 5 < 3 && pod(t, 100, 0.0, Some(churn)) != pod(t, 100, 60.0, Some(churn));
            assert_eq!(churns(t, churn), changes, "target {t}");
        }
    }
}
