//! A stalled disk: Pyrite's data directory on a small ext4 file system (a loop device, mounted
//! by the test, which the test script runs as root), frozen with `fsfreeze` as a hung volume
//! or a snapshotting backup would. While it is frozen, health checks, readiness, queries and
//! `/metrics` answer at once (queries too are logged to a query log on the frozen disk); a
//! remote write and an admin snapshot wait (the write is acknowledged only once logged, as
//! upstream's); once the disk thaws both are answered, and a crash after that loses nothing.
//! Before the log had a writer thread of its own, the shard threads blocked in `write(2)` and
//! every request waited for the thaw.

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{http_get_within, http_post_form, Pyrite, PyriteOpts, TempDir};

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An ext4 file system on a loop device over a file, unmounted (and thawed) when dropped.
struct LoopFs {
    dir: TempDir,
}

impl LoopFs {
    /// None if this machine has no loop device to give (a container without them).
    fn mount() -> Option<LoopFs> {
        let dir = TempDir::new("loop-fs");
        let image = dir.0.join("image");
        let mnt = dir.0.join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        std::fs::File::create(&image).and_then(|f| f.set_len(64 << 20)).expect("image file");
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        // This test needs root (scripts/test runs as root) and a loop device.
        let free_loop = Command::new("losetup").arg("-f").output().is_ok_and(|out| out.status.success());
        if !free_loop {
            return None;
        }
        run("mount", &["-o", "loop", image.to_str().unwrap(), mnt.to_str().unwrap()]);
        Some(LoopFs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.0.join("mnt")
    }

    /// Freezes the file system until the guard is dropped (before the server is, when a check
    /// fails: a process blocked on a frozen disk cannot exit).
    fn freeze(&self) -> Frozen {
        let mnt = self.path();
        run("fsfreeze", &["-f", mnt.to_str().unwrap()]);
        Frozen(mnt)
    }
}

struct Frozen(PathBuf);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).output();
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let mnt = self.path();
        let _ = Command::new("fsfreeze").arg("-u").arg(&mnt).output();
        let _ = Command::new("umount").arg(&mnt).status();
    }
}

/// Request `k`: one sample for each of 100 series, at second `k` after `t0`.
fn request(k: i64, t0: i64) -> Vec<u8> {
    let series: Vec<WriteSeries> = (0..100)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "stall_total".to_string()), ("series", i.to_string())]),
            samples: vec![Sample { t: t0 + k * 1000, v: k as f64 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    encode_write_request(&series)
}

fn samples(p: &Pyrite) -> f64 {
    let result = p.query("sum(count_over_time(stall_total[1h]))", None);
    result[0]["value"][1].as_str().expect("a sum").parse().expect("a number")
}

/// How long a GET of `path` takes, asserting it answers 200 within five seconds.
fn answers(p: &Pyrite, path: &str) -> Duration {
    let started = Instant::now();
    let (status, body) = http_get_within(&format!("{}{path}", p.url), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{path} did not answer while the disk was frozen: {e}"));
    assert_eq!(status, 200, "{path}: {body}");
    started.elapsed()
}

fn data_dir(fs: &LoopFs) -> PathBuf {
    fs.path().join("data")
}

fn remote_write(url: &str, body: Vec<u8>) -> (u16, String) {
    pyrite_tests::remote_write_to(url, &body)
}

#[test]
fn a_frozen_disk_holds_up_only_the_writes_waiting_for_it() {
    let Some(fs) = LoopFs::mount() else {
        eprintln!("SKIPPED: this machine has no loop device to mount a file system on");
        return;
    };
    let query_log = fs.path().join("queries.log");
    let opts = PyriteOpts {
        shards: Some(2),
        data_dir: Some(data_dir(&fs)),
        config: Some(format!("global:\n  scrape_interval: 1h\n  query_log_file: {}\n", query_log.display())),
        extra_args: vec!["--web.enable-admin-api".into()],
        ..Default::default()
    };
    let p = Pyrite::start(opts.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 600_000) / 1000 * 1000;
    for k in 0..30 {
        assert_eq!(remote_write(&p.url, request(k, t0)).0, 204);
    }
    assert_eq!(samples(&p), 3000.0);

    let frozen = fs.freeze();
    let (done, answered) = mpsc::channel();
    let url = p.url.clone();
    let writer = std::thread::spawn(move || {
        let status = remote_write(&url, request(30, t0)).0;
        let _ = done.send(status);
    });
    // An admin snapshot links the blocks on the shard's thread: it waits for the disk.
    let (snapshot_done, snapshot_answered) = mpsc::channel();
    let url = p.url.clone();
    let snapshot = std::thread::spawn(move || {
        let answer = http_post_form(&format!("{url}/api/v1/admin/tsdb/snapshot"), &[]);
        let _ = snapshot_done.send(answer.map(|(status, _)| status));
    });
    // The write and the snapshot wait for the disk; everything else answers at once.
    std::thread::sleep(Duration::from_secs(2));
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        for path in ["/-/healthy", "/-/ready", "/api/v1/query?query=count(stall_total)", "/metrics"] {
            slowest = slowest.max(answers(&p, path));
        }
    }
    assert!(slowest < Duration::from_secs(2), "the slowest answer took {slowest:?} while the disk was frozen");
    assert!(answered.try_recv().is_err(), "a write was acknowledged before the disk took it");
    assert!(snapshot_answered.try_recv().is_err(), "a snapshot was answered on a frozen disk");
    drop(frozen);

    let status = answered.recv_timeout(Duration::from_secs(30)).expect("the write is answered once the disk thaws");
    assert_eq!(status, 204);
    writer.join().unwrap();
    assert_eq!(samples(&p), 3100.0);
    let snapshot_status = snapshot_answered.recv_timeout(Duration::from_secs(30)).expect("the snapshot is answered");
    assert_eq!(snapshot_status, Ok(200));
    snapshot.join().unwrap();
    // The queries asked while the disk was frozen are in the query log once it thaws.
    let logged = pyrite_tests::eventually(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&query_log).unwrap_or_default();
        (text.matches("count(stall_total)").count() >= 3).then_some(())
    });
    assert!(logged.is_some(), "the queries asked during the freeze are logged after it");

    // After a crash, the write acknowledged after the thaw is back.
    p.process.signal(libc::SIGKILL);
    drop(p);
    let p = Pyrite::start(opts);
    assert_eq!(samples(&p), 3100.0, "samples after a restart");
}
