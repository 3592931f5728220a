//! Durability: every remote-written sample that was acknowledged survives `kill -9` (also in
//! the middle of block cuts and compactions), a clean restart, a torn or bit-flipped
//! write-ahead log; nothing comes back twice; a data directory written with another shard
//! count is refused with the count to use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyrite_core::labels::Labels;
use pyrite_core::remote::{encode_write_request, WriteSeries};
use pyrite_core::value::Sample;
use pyrite_tests::{Pyrite, PyriteOpts, TempDir};

const SERIES: usize = 20;
/// Samples per series in one remote-write request.
const PER_BATCH: i64 = 5;

fn start_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (now - 3_600_000) / 1000 * 1000
}

/// Remote-write request `k`: samples `k*PER_BATCH ..` of every series, one millisecond apart
/// (so that tens of thousands of requests stay within an hour).
fn batch(k: i64, t0: i64) -> Vec<u8> {
    let series: Vec<WriteSeries> = (0..SERIES)
        .map(|i| WriteSeries {
            labels: Labels::from_pairs([("__name__", "durable_total".to_string()), ("series", i.to_string())]),
            samples: (k * PER_BATCH..(k + 1) * PER_BATCH).map(|j| Sample { t: t0 + j, v: j as f64 }).collect(),
            exemplars: Vec::new(),
            histograms: Vec::new(),
        })
        .collect();
    encode_write_request(&series)
}

/// Sends request `k`; true only for a 2xx answer (the acknowledgement).
fn send(url: &str, body: &[u8]) -> bool {
    ureq::post(&format!("{url}/api/v1/write"))
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .timeout(Duration::from_secs(5))
        .send_bytes(body)
        .is_ok_and(|r| r.status() / 100 == 2)
}

/// A configuration without scrape targets: only the test's writes reach the log.
const NO_SCRAPES: &str = "global:\n  scrape_interval: 1h\n";

fn opts(data: &Path, shards: usize) -> PyriteOpts {
    PyriteOpts {
        shards: Some(shards),
        data_dir: Some(data.to_path_buf()),
        config: Some(NO_SCRAPES.into()),
        ..Default::default()
    }
}

fn start(data: &Path, shards: usize) -> Pyrite {
    Pyrite::start(opts(data, shards))
}

/// One-second blocks and head snapshots every second: the writes below (a millisecond apart)
/// are cut into blocks, compacted and snapshotted every second, so kills land in the middle of
/// each.
fn start_with_small_blocks(data: &Path, shards: usize) -> Pyrite {
    Pyrite::start(PyriteOpts {
        extra_args: vec![
            "--storage.tsdb.min-block-duration=1s".into(),
            "--storage.tsdb.head-snapshot-interval=1s".into(),
        ],
        ..opts(data, shards)
    })
}

/// Every stored sample, per series label, as (t, v) in time order (a query per series keeps
/// each answer small).
fn stored(p: &Pyrite, t0: i64) -> BTreeMap<String, Vec<(i64, f64)>> {
    let at = (t0 + 3 * 3_600_000) as f64 / 1000.0;
    let mut out = BTreeMap::new();
    for i in 0..SERIES {
        let result = p.query(&format!("durable_total{{series=\"{i}\"}}[4h]"), Some(at));
        for s in result.as_array().expect("a matrix") {
            let values = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| ((p[0].as_f64().unwrap() * 1000.0).round() as i64, p[1].as_str().unwrap().parse().unwrap()))
                .collect();
            out.insert(i.to_string(), values);
        }
    }
    out
}

/// Checks that every sample of the acknowledged batches is stored, once, with its value, and
/// that nothing stored was never sent.
fn check(stored: &BTreeMap<String, Vec<(i64, f64)>>, acked: &BTreeSet<i64>, sent: i64, t0: i64) {
    for i in 0..SERIES {
        let got = stored.get(&i.to_string()).cloned().unwrap_or_default();
        let times: BTreeSet<i64> = got.iter().map(|s| s.0).collect();
        assert_eq!(times.len(), got.len(), "series {i}: a sample came back twice");
        for &(t, v) in &got {
            let j = t - t0;
            assert_eq!(v, j as f64, "series {i}: wrong value at {t}");
            assert!(j < sent * PER_BATCH, "series {i}: sample {j} was never sent");
        }
        for &k in acked {
            for j in k * PER_BATCH..(k + 1) * PER_BATCH {
                assert!(times.contains(&(t0 + j)), "series {i}: acknowledged sample {j} (request {k}) lost");
            }
        }
    }
}

/// Writes from another thread and kills the server at a random moment within `kill_within`
/// (after 50 ms), `rounds` times, then
/// checks every acknowledged sample on a last start; returns that server.
fn kill_rounds(data: &Path, rounds: u64, kill_within: Duration, start: fn(&Path, usize) -> Pyrite) -> Pyrite {
    let t0 = start_ms();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    eprintln!("kill timing seed {seed}");
    let (mut acked, mut next) = (BTreeSet::new(), 0i64);
    for round in 0..rounds {
        let p = start(data, 2);
        let url = p.url.clone();
        let first = next;
        // Write as fast as acknowledgements come back, from another thread, until the kill.
        let writer = std::thread::spawn(move || {
            let mut acks = Vec::new();
            let mut k = first;
            let deadline = Instant::now() + kill_within + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !send(&url, &batch(k, t0)) {
                    break;
                }
                acks.push(k);
                k += 1;
            }
            (acks, k + 1)
        });
        let wait =
            50 + (seed.wrapping_mul(round * 2 + 1).wrapping_mul(0x9e37_79b9) >> 20) % kill_within.as_millis() as u64;
        std::thread::sleep(Duration::from_millis(wait));
        p.process.signal(libc::SIGKILL);
        let (acks, sent) = writer.join().expect("writer");
        assert!(!acks.is_empty(), "round {round}: nothing was acknowledged before the kill");
        acked.extend(acks);
        next = sent;
        drop(p);
    }
    let p = start(data, 2);
    check(&stored(&p, t0), &acked, next, t0);
    p
}

#[test]
fn acknowledged_samples_survive_kill_9_at_random_moments() {
    let dir = TempDir::new("durability-kill");
    kill_rounds(&dir.0.join("data"), 4, Duration::from_millis(400), start);
}

#[test]
fn acknowledged_samples_survive_kill_9_during_block_cuts_compactions_and_snapshots() {
    let dir = TempDir::new("durability-blocks");
    let data: PathBuf = dir.0.join("data");
    let p = kill_rounds(&data, 6, Duration::from_millis(3000), start_with_small_blocks);
    let blocks = |shard: usize| std::fs::read_dir(data.join("blocks").join(shard.to_string())).unwrap().count();
    // A loaded machine may have killed every round before a cut; the last server cuts soon. A
    // block being written is on disk (as a temporary directory) before the shard serves it.
    let cut = pyrite_tests::eventually(Duration::from_secs(20), || {
        (blocks(0) + blocks(1) > 0 && p.metric("prometheus_tsdb_blocks_loaded") > 0.0).then_some(())
    });
    assert!(cut.is_some(), "no block was written and served");
    let snapshots = |shard: usize| {
        std::fs::read_dir(data.join("wal").join(shard.to_string()))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("snapshot."))
            .count()
    };
    assert!(snapshots(0) + snapshots(1) > 0, "no periodic head snapshot was written");
}

#[test]
fn a_clean_restart_loads_a_snapshot_and_a_crash_after_it_loses_nothing() {
    let dir = TempDir::new("durability-restart");
    let data = dir.0.join("data");
    let t0 = start_ms();
    let mut p = start(&data, 3);
    for k in 0..20 {
        assert!(send(&p.url, &batch(k, t0)));
    }
    p.process.signal(libc::SIGTERM);
    let (status, _) = p.process.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM should end the server cleanly: {status}");
    drop(p);
    for shard in 0..3 {
        let files: Vec<String> = std::fs::read_dir(data.join("wal").join(shard.to_string()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(files.iter().any(|f| f.starts_with("snapshot.")), "shard {shard} wrote no snapshot: {files:?}");
    }
    let p = start(&data, 3);
    check(&stored(&p, t0), &(0..20).collect(), 20, t0);
    // More writes on top of the snapshot, then a crash: the snapshot and the new log together.
    for k in 20..30 {
        assert!(send(&p.url, &batch(k, t0)));
    }
    p.process.signal(libc::SIGKILL);
    drop(p);
    let p = start(&data, 3);
    check(&stored(&p, t0), &(0..30).collect(), 30, t0);
}

/// The newest segment of shard `shard`'s log.
fn newest_segment(data: &Path, shard: usize) -> PathBuf {
    let dir = data.join("wal").join(shard.to_string());
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().parse::<u64>().is_ok() && p.metadata().unwrap().len() > 0)
        .collect();
    segments.sort();
    segments.pop().expect("a segment with data")
}

#[test]
fn a_torn_or_bit_flipped_log_costs_only_the_damaged_records() {
    let dir = TempDir::new("durability-damage");
    let data = dir.0.join("data");
    let t0 = start_ms();
    let p = start(&data, 1);
    for k in 0..30 {
        assert!(send(&p.url, &batch(k, t0)));
    }
    p.process.signal(libc::SIGKILL);
    drop(p);

    // A torn tail: the last request's record is cut short.
    let segment = newest_segment(&data, 0);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 7).unwrap();
    let p = start(&data, 1);
    assert_eq!(p.metric("prometheus_tsdb_wal_corruptions_total"), 1.0);
    check(&stored(&p, t0), &(0..29).collect(), 30, t0);
    p.process.signal(libc::SIGKILL);
    drop(p);

    // A flipped bit in the middle of the same segment: that record is lost, the rest is served.
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();
    let p = start(&data, 1);
    assert_eq!(p.metric("prometheus_tsdb_wal_corruptions_total"), 1.0);
    let kept = stored(&p, t0);
    let samples: usize = kept.values().map(Vec::len).sum();
    let written = SERIES * 29 * PER_BATCH as usize;
    assert!(samples < written && samples > written / 2, "{samples} of {written} samples kept");
    check(&kept, &BTreeSet::new(), 30, t0);
}

#[test]
fn data_written_by_another_shard_count_is_refused_with_the_count_to_use() {
    let dir = TempDir::new("durability-shards");
    let data = dir.0.join("data");
    let p = start(&data, 2);
    drop(p);
    let mut p = Pyrite::spawn(opts(&data, 3));
    let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("written by 2 shards; start with --shards=2"), "{stderr}");
    // Without the record of the count, the shards' directories tell it (red team: one shard
    // served half the data, and three routed series away from their history).
    std::fs::remove_file(data.join("wal").join("shards")).unwrap();
    for shards in [1, 3] {
        let mut p = Pyrite::spawn(opts(&data, shards));
        let (status, stderr) = p.process.wait_exit(Duration::from_secs(20));
        assert!(!status.success());
        assert!(stderr.contains("holds the directories of 2 shards"), "{stderr}");
    }
    drop(start(&data, 2));
    assert_eq!(std::fs::read_to_string(data.join("wal").join("shards")).unwrap(), "2\n");
}
