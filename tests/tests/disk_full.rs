//! A full disk: Pyrite's data directory on a 4 MiB tmpfs (mounted by the test, which the test
//! script runs as root). When the write-ahead log cannot be written, remote writes are answered
//! 500 (so senders retry), the failure is counted and logged, queries keep answering from what
//! is stored, and writing resumes as soon as space returns; nothing acknowledged is lost, not
//! even a retry of the refused request, which the head takes as duplicates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{Pyrite, PyriteOpts, TempDir};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallFs {
    dir: TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> SmallFs {
        let dir = TempDir::new("small-fs");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir.0)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root (scripts/test runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        &self.dir.0
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir.0).status();
    }
}

/// Request `k`: one sample for each of 200 series, at second `k` of the last hour.
fn request(k: i64, t0: i64) -> Vec<u8> {
    let series: Vec<WriteSeries> = (0..200)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "filler_total".to_string()), ("series", i.to_string())]),
            samples: vec![Sample { t: t0 + k * 1000, v: (k * 1_000_003 + i) as f64 }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    encode_write_request(&series)
}

fn status_of(url: &str, body: &[u8]) -> (u16, String) {
    pyrite_tests::remote_write_to(url, body)
}

fn count(p: &Pyrite, t0: i64) -> usize {
    let at = (t0 + 3_600_000) as f64 / 1000.0;
    p.query("count_over_time(filler_total[2h])", Some(at))
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<usize>().unwrap())
        .sum()
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_writing_resumes_when_space_returns() {
    let fs = SmallFs::mount("4m");
    let data: PathBuf = fs.path().join("data");
    let opts = PyriteOpts {
        shards: Some(1),
        data_dir: Some(data.clone()),
        config: Some("global:\n  scrape_interval: 1h\n".into()),
        ..Default::default()
    };
    let p = Pyrite::start(opts.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now - 3_600_000) / 1000 * 1000;

    // Fill the filesystem, leaving a little room for the log.
    let filler = fs.path().join("filler");
    let free = free_bytes(fs.path());
    std::fs::write(&filler, vec![0u8; free.saturating_sub(64 << 10) as usize]).expect("write filler");

    let mut acknowledged = 0;
    let mut refused = None;
    for k in 0..2000 {
        let (status, body) = status_of(&p.url, &request(k, t0));
        match status {
            204 => acknowledged += 1,
            500 => {
                refused = Some((k, body));
                break;
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    let (refused_at, body) = refused.expect("the log filled the disk within 2000 requests");
    assert!(body.contains("write-ahead log"), "{body}");
    assert!(p.metric("prometheus_tsdb_wal_writes_failed_total") >= 1.0, "the failure is counted");
    // Queries answer from what is stored, including the samples of the refused request,
    // which are in memory (only their durability failed).
    assert_eq!(count(&p, t0), (acknowledged + 1) * 200);

    // While the disk stays full, a retry is refused too: its samples are in memory already
    // (the head takes them as duplicates) but the refused write's records are not on disk.
    assert_eq!(status_of(&p.url, &request(refused_at, t0)).0, 500, "a retry on a full disk");
    let segments = || std::fs::read_dir(data.join("wal/0")).map_or(0, |d| d.count());
    let before = segments();
    for _ in 0..20 {
        status_of(&p.url, &request(refused_at, t0));
    }
    assert_eq!(segments(), before, "failed writes leave no new files in the log");

    // Space returns: within a second or so (the log's writer tries again every second), the
    // same request goes through, and so do later ones.
    std::fs::remove_file(&filler).expect("remove filler");
    let through = pyrite_tests::eventually(Duration::from_secs(5), || {
        let (status, body) = status_of(&p.url, &request(refused_at, t0));
        assert!(status == 204 || status == 500, "{status}: {body}");
        (status == 204).then_some(())
    });
    assert!(through.is_some(), "the refused request goes through once space returns");
    for k in refused_at + 1..refused_at + 20 {
        assert_eq!(status_of(&p.url, &request(k, t0)).0, 204);
    }

    // After a crash, every acknowledged request is back.
    p.process.signal(libc::SIGKILL);
    drop(p);
    std::thread::sleep(Duration::from_millis(100));
    let p = Pyrite::start(opts);
    assert_eq!(count(&p, t0), (acknowledged + 20) * 200, "samples after restart");
}

/// Free bytes on the filesystem holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statvfs fills the zeroed struct it is given; the path is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0, "statvfs");
        s.f_bavail as u64 * s.f_frsize as u64
    }
}
