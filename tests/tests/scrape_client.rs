//! The scrape client's connections and name resolution, against loopback targets that count
//! the connections they accept and a loopback DNS server that answers slowly:
//!
//! * scrapes reuse one keep-alive connection, closed when the target is removed; a target that
//!   closes idle connections, or that closes one just as the next request arrives, is still
//!   scraped successfully every time;
//! * a host name whose nameserver is slow delays only its own target: on one shard, a target
//!   given by IP keeps its schedule, the slow one fails with a timeout until the answer comes,
//!   and is scraped once it has;
//! * a target that refuses connections is logged at debug only, as upstream (a line every
//!   interval at warn would fill the log): its error shows in the targets API and `up`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyrite_tests::{eventually, free_port, http_post_form, json, Pyrite, PyriteOpts};
use serde_json::Value;

/// How a [`CountingTarget`] treats its connections.
#[derive(Clone, Copy)]
enum Manner {
    /// Answers every request, keeps the connection open.
    KeepAlive,
    /// Closes a connection idle for this long.
    CloseIdleAfter(Duration),
    /// Answers the first request of a connection; at the next one closes it without an answer
    /// (the race where a server closes an idle connection as a request comes).
    AnswerOnce,
    /// Answers every request with this many more headers (a proxy's, say); Go's client takes
    /// any number within 10 MB.
    ManyHeaders(usize),
    /// Sends this many `100 Continue` answers before each answer.
    Informational(usize),
    /// Sends `100 Continue` answers as fast as the connection takes them, for at most 30 s.
    EndlessInformational,
}

/// A metrics target on loopback that counts the connections it accepted, and those open.
struct CountingTarget {
    address: String,
    connections: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl CountingTarget {
    fn start(manner: Manner) -> CountingTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let address = listener.local_addr().expect("address").to_string();
        let (connections, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (counted, still_open) = (connections.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                still_open.fetch_add(1, Ordering::SeqCst);
                let still_open = still_open.clone();
                std::thread::spawn(move || {
                    serve(stream, manner);
                    still_open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingTarget { address, connections, open }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request head; false when the connection ended, failed or idled out.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&byte[..n]),
        }
    }
    true
}

fn serve(mut stream: TcpStream, manner: Manner) {
    if let Manner::CloseIdleAfter(idle) = manner {
        let _ = stream.set_read_timeout(Some(idle));
    }
    let body = "# TYPE answered gauge\nanswered 1\n";
    let extra = match manner {
        Manner::ManyHeaders(n) => (0..n).map(|i| format!("X-Hop-{i}: {i}\r\n")).collect(),
        _ => String::new(),
    };
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answered = 0;
    while read_request(&mut stream) {
        let informational = "HTTP/1.1 100 Continue\r\n\r\n";
        match manner {
            Manner::Informational(n) if stream.write_all(informational.repeat(n).as_bytes()).is_err() => return,
            Manner::EndlessInformational => {
                let burst = informational.repeat(1000);
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_secs(30) && stream.write_all(burst.as_bytes()).is_ok() {}
                return;
            }
            _ => {}
        }
        if answered == 1 && matches!(manner, Manner::AnswerOnce) {
            return;
        }
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
        answered += 1;
    }
}

/// The samples of `up` for `instance` over the last `range` (e.g. `30s`): (time s, value).
fn up_samples(p: &Pyrite, instance: &str, range: &str) -> Vec<(f64, f64)> {
    let result = p.query(&format!("up{{instance=\"{instance}\"}}[{range}]"), None);
    let values = result[0]["values"].as_array().cloned().unwrap_or_default();
    values.iter().map(|v| (v[0].as_f64().unwrap(), v[1].as_str().unwrap().parse::<f64>().unwrap())).collect()
}

/// The active target whose `instance` label is `instance`.
fn target(p: &Pyrite, instance: &str) -> Value {
    let targets = json(&p.get("/api/v1/targets").1)["data"]["activeTargets"].clone();
    let found = targets.as_array().into_iter().flatten().find(|t| t["labels"]["instance"] == instance);
    found.cloned().unwrap_or(Value::Null)
}

fn config(jobs: &[(&str, &str)], timeout: &str) -> String {
    let mut config = format!("global:\n  scrape_interval: 1s\n  scrape_timeout: {timeout}\nscrape_configs:\n");
    for (job, address) in jobs {
        config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n"));
    }
    config
}

#[test]
fn scrapes_reuse_their_connection_and_survive_servers_that_close_it_or_send_many_headers() {
    let steady = CountingTarget::start(Manner::KeepAlive);
    let closing = CountingTarget::start(Manner::CloseIdleAfter(Duration::from_millis(300)));
    let racing = CountingTarget::start(Manner::AnswerOnce);
    let chatty = CountingTarget::start(Manner::ManyHeaders(500));
    let jobs = [
        ("steady", steady.address.as_str()),
        ("closing", closing.address.as_str()),
        ("racing", racing.address.as_str()),
        ("chatty", chatty.address.as_str()),
    ];
    let p = Pyrite::start(PyriteOpts {
        config: Some(config(&jobs, "1s")),
        extra_args: vec!["--web.enable-lifecycle".into()],
        ..PyriteOpts::default()
    });
    let scrapes = 8;
    let scraped = eventually(Duration::from_secs(20), || {
        jobs.iter().all(|(_, address)| up_samples(&p, address, "1m").len() >= scrapes).then_some(())
    });
    assert!(scraped.is_some(), "not every target was scraped {scrapes} times");
    // One connection, kept: far fewer than one per scrape.
    let opened = steady.connections();
    assert!(opened <= 2, "{opened} connections for {scrapes} scrapes of a keep-alive target");
    // The other two made the client open a connection for nearly every scrape, and every one
    // of those scrapes succeeded.
    assert!(closing.connections() >= scrapes - 1, "the idle connections were not closed: {}", closing.connections());
    assert!(racing.connections() >= scrapes - 1, "the second requests were not refused: {}", racing.connections());
    for (job, address) in jobs {
        let samples = up_samples(&p, address, "1m");
        assert!(
            samples.iter().all(|&(_, up)| up == 1.0),
            "{job}: a scrape failed: {samples:?} {}",
            target(&p, address)
        );
    }
    // A target taken out of the configuration has its connection closed.
    assert_eq!(steady.open.load(Ordering::SeqCst), 1);
    std::fs::write(p.data_dir.parent().unwrap().join("prometheus.yml"), config(&jobs[1..], "1s")).unwrap();
    let (status, body) = http_post_form(&format!("{}/-/reload", p.url), &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    let closed = eventually(Duration::from_secs(5), || (steady.open.load(Ordering::SeqCst) == 0).then_some(()));
    assert!(closed.is_some(), "the removed target's connection stayed open");
}

/// A DNS server on loopback that answers `name`'s A query with 127.0.0.1 and its AAAA query
/// with no address, each after `delay`, and any other name at once with NXDOMAIN.
fn slow_dns(name: &'static str, delay: Duration) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
    let address = socket.local_addr().expect("address").to_string();
    std::thread::spawn(move || loop {
        let mut buf = [0u8; 512];
        let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
        let Some((asked, qtype, question_end)) = question(&buf[..n]) else { continue };
        let socket = socket.try_clone().expect("clone DNS socket");
        let query = buf[..question_end].to_vec();
        std::thread::spawn(move || {
            let known = asked.eq_ignore_ascii_case(name);
            if known {
                std::thread::sleep(delay);
            }
            let _ = socket.send_to(&answer(&query, known, qtype == 1), from);
        });
    });
    address
}

/// The name (without the root dot), type and end of a query's question.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).into_owned());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// The answer to `query` (header and question): NXDOMAIN for an unknown name, else NOERROR
/// with 127.0.0.1 when `with_address`.
fn answer(query: &[u8], known: bool, with_address: bool) -> Vec<u8> {
    let mut out = query.to_vec();
    out[2] = 0x81;
    out[3] = if known { 0x80 } else { 0x83 };
    out[6..12].copy_from_slice(&[0, u8::from(known && with_address), 0, 0, 0, 0]);
    if known && with_address {
        out.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    out
}

#[test]
fn a_slow_nameserver_delays_only_the_target_it_names() {
    let fast = CountingTarget::start(Manner::KeepAlive);
    let slow = CountingTarget::start(Manner::KeepAlive);
    let slow_port = slow.address.rsplit_once(':').unwrap().1;
    let slow_address = format!("slow.pyrite.test:{slow_port}");
    let dns = slow_dns("slow.pyrite.test", Duration::from_secs(4));
    let jobs = [("fast", fast.address.as_str()), ("slow", slow_address.as_str())];
    let p = Pyrite::start(PyriteOpts {
        config: Some(config(&jobs, "1s")),
        shards: Some(1),
        extra_args: vec![format!("--dns.server={dns}")],
        ..PyriteOpts::default()
    });
    // While the name is being resolved (4 s for A, then 4 s for AAAA), the slow target's
    // scrapes fail at their timeout.
    let timed_out = eventually(Duration::from_secs(6), || {
        let t = target(&p, &slow_address);
        t["lastError"].as_str().filter(|e| !e.is_empty()).map(str::to_string)
    });
    assert_eq!(timed_out.as_deref(), Some("context deadline exceeded"));
    // Once the answer has come, the slow target is scraped.
    let up = eventually(Duration::from_secs(15), || (target(&p, &slow_address)["health"] == "up").then_some(()));
    assert!(up.is_some(), "the slow name's target never came up: {}", target(&p, &slow_address));
    // All along, the target given by IP on the same shard kept its 1 s schedule.
    let samples = up_samples(&p, &fast.address, "1m");
    assert!(samples.len() >= 8, "{samples:?}");
    let gaps: Vec<f64> = samples.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|&gap| gap <= 3.0), "the IP target's scrapes were held up: gaps {gaps:?}");
    assert!(samples.iter().all(|&(_, up)| up == 1.0), "{samples:?}");
}

#[test]
fn a_failing_target_is_logged_at_debug_only_and_shown_in_the_targets_api() {
    let address = format!("127.0.0.1:{}", free_port());
    let refused = |p: &Pyrite| {
        let t = target(p, &address);
        (t["health"] == "down" && t["lastError"].as_str().is_some_and(|e| !e.is_empty())).then_some(t)
    };
    let stderr_after_three_scrapes = |log_level: &str| {
        let mut p = Pyrite::start(PyriteOpts {
            config: Some(config(&[("refusing", &address)], "1s")),
            extra_args: vec![format!("--log.level={log_level}")],
            ..PyriteOpts::default()
        });
        let t = eventually(Duration::from_secs(10), || refused(&p)).expect("the target is down with an error");
        assert!(t["lastError"].as_str().unwrap().contains("refused"), "{t}");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(p.query(&format!("up{{instance=\"{address}\"}}"), None)[0]["value"][1], "0");
        p.process.signal(libc::SIGTERM);
        p.process.wait_exit(Duration::from_secs(20)).1
    };
    // Upstream's default level, and warn: nothing about the scrapes.
    for level in ["info", "warn"] {
        let stderr = stderr_after_three_scrapes(level);
        assert!(!stderr.contains("scrape failed"), "at {level}:\n{stderr}");
    }
    // At debug, every failed scrape, naming the target.
    let stderr = stderr_after_three_scrapes("warn,pyrite::scrape=debug");
    let failures = stderr.lines().filter(|l| l.contains("scrape failed") && l.contains(&address)).count();
    assert!(failures >= 3, "{stderr}");
}

/// A target that answers `100 Continue` without end fails its scrape at once, as Prometheus
/// 2.42's ("too many 1xx informational responses": Go's client took five before Go 1.24; five
/// pass, six fail), and holds up nothing on its shard: before, it held the shard's thread for as long as it kept sending, so the
/// scrapes beside it, queries and `/-/healthy` all waited.
#[test]
fn endless_informational_answers_fail_the_scrape_and_hold_up_nothing() {
    let endless = CountingTarget::start(Manner::EndlessInformational);
    let five = CountingTarget::start(Manner::Informational(5));
    let six = CountingTarget::start(Manner::Informational(6));
    let healthy = CountingTarget::start(Manner::KeepAlive);
    let jobs = [
        ("endless", endless.address.as_str()),
        ("five", five.address.as_str()),
        ("six", six.address.as_str()),
        ("healthy", healthy.address.as_str()),
    ];
    let p = Pyrite::start(PyriteOpts { config: Some(config(&jobs, "1s")), shards: Some(1), ..Default::default() });
    let failed = eventually(Duration::from_secs(10), || {
        let t = target(&p, &endless.address);
        (t["health"] == "down").then_some(t)
    })
    .expect("the endless target goes down");
    assert!(failed["lastError"].as_str().unwrap_or("").contains("too many 1xx informational responses"), "{failed}");
    std::thread::sleep(Duration::from_secs(6));
    let six_failed = target(&p, &six.address)["lastError"].clone();
    assert!(six_failed.as_str().unwrap_or("").contains("too many 1xx informational responses"), "{six_failed}");
    for (instance, want) in
        [(&healthy.address, 1.0), (&five.address, 1.0), (&six.address, 0.0), (&endless.address, 0.0)]
    {
        let ups = up_samples(&p, instance, "6s");
        assert!(ups.len() >= 5 && ups.iter().all(|&(_, up)| up == want), "{instance}: {ups:?}");
        let gaps = ups.windows(2).map(|w| w[1].0 - w[0].0);
        assert!(gaps.clone().all(|gap| gap < 1.5), "{instance} kept its 1 s schedule: {ups:?}");
    }
    let started = std::time::Instant::now();
    assert_eq!(p.get("/-/healthy").0, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}
