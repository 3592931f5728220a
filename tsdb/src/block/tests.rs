use std::fs;
use std::path::PathBuf;

use super::*;
use crate::head::Head;
use crate::querier::Querier;
use pyrite_core::labels::{Labels, MatchOp, Matcher, Projection};

const H: i64 = 3600 * 1000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pyrite-block-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "m"),
        ("i", &i.to_string()),
        ("job", if i.is_multiple_of(2) { "even" } else { "odd" }),
    ])
}

/// A head holding 20 series with a sample every 15 s from 0 to 5h.
fn head() -> Head {
    let mut head = Head::new();
    for i in 0..20 {
        let (id, _) = head.get_or_create(&labels(i));
        for k in 0..(5 * 240) {
            head.append(id, k * 15_000, (k * i as i64) as f64 / 4.0).unwrap();
        }
    }
    head
}

/// Cuts `[mint, maxt)` of `head` into a block under `dir` the way a shard does.
fn cut(head: &Head, dir: &std::path::Path, mint: i64, maxt: i64) -> Block {
    let mut w = BlockWriter::create(dir, new_ulid(maxt)).unwrap();
    for id in head.ids_overlapping(mint, maxt) {
        w.add(head.label_ids(id).unwrap(), &head.block_chunks(id, mint, maxt)).unwrap();
    }
    let level1 = Compaction { level: 1, sources: vec![], parents: vec![] };
    let (meta, path) = w.finish(&head.symbol_table(), mint, maxt, level1).unwrap();
    assert_eq!(meta.stats.num_series, 20);
    Block::open(&path).unwrap()
}

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).unwrap()
}

#[test]
fn blocks_and_head_read_as_the_head_alone() {
    let dir = temp_dir("merge");
    let full = head();
    let mut cut_head = head();
    let blocks = vec![cut(&cut_head, &dir, 0, 2 * H), cut(&cut_head, &dir, 2 * H, 4 * H)];
    assert_eq!(blocks[0].meta().stats.num_samples, 20 * 480);
    cut_head.set_min_valid(4 * H);
    cut_head.truncate_before(4 * H);
    let q = Querier { blocks: &blocks, head: &cut_head };
    for matchers in [vec![], vec![m("job", MatchOp::Equal, "odd")], vec![m("i", MatchOp::Regex, "1.")]] {
        for (mint, maxt) in [(0, 5 * H), (H, 3 * H), (2 * H - 1, 2 * H), (4 * H - 15_000, 4 * H + 15_000)] {
            let mut want = full.select(&matchers, mint, maxt, &Projection::All);
            want.sort_by(|a, b| a.labels.cmp(&b.labels));
            assert!(q.select(&matchers, mint, maxt).unwrap() == want, "{matchers:?} {mint}..{maxt}");
        }
    }
    for block in &blocks {
        let listed: Vec<Labels> =
            block.matching(&[]).iter().flat_map(|id| block.series_labels(id, 0, H).unwrap()).collect();
        assert_eq!(listed.len(), if block.overlaps(0, H) { 20 } else { 0 });
        let odd = block.matching(&[m("job", MatchOp::Equal, "odd")]);
        assert_eq!((odd.len(), block.label_values_among("job", &odd, 2)), (10, Some(vec!["odd"])));
        assert_eq!(block.label_values_among("job", &odd, 1), None, "two values to look at");
        assert!(block.label_names_among(&odd, 100).is_some_and(|names| names.contains(&"i")));
        assert!(odd.iter().all(|id| block.labels_of(id).unwrap().get("job") == "odd"));
    }
    // The head refuses what belongs to blocks now.
    assert_eq!(cut_head.append(0, 4 * H - 1, 1.0), Err(crate::head::AppendError::OutOfBounds));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compaction_merges_blocks_and_applies_tombstones() {
    let dir = temp_dir("compact");
    let head = head();
    let mut a = cut(&head, &dir, 0, 2 * H);
    let mut b = cut(&head, &dir, 2 * H, 4 * H);
    let metas = vec![a.meta().clone(), b.meta().clone()];
    assert_eq!(plan_compaction(&metas, &ranges(2 * H, 18 * H), |_| false), None, "6h window still open");
    let c = cut(&head, &dir, 4 * H, 6 * H);
    let metas = vec![a.meta().clone(), b.meta().clone(), c.meta().clone()];
    assert_eq!(plan_compaction(&metas, &ranges(2 * H, 18 * H), |_| false), Some(vec![0, 1, 2]), "6h window covered");
    for block in [&mut a, &mut b] {
        assert_eq!(block.delete(&[m("i", MatchOp::Equal, "3")], H, 3 * H).unwrap(), 1);
    }
    assert_eq!(Block::open(a.dir()).unwrap().tombstones().len(), 1, "tombstones are persisted");
    let (meta, path) = compact(&dir, new_ulid(0), &[&a, &b, &c]).unwrap();
    assert_eq!((meta.min_time, meta.max_time, meta.compaction.level), (0, 6 * H, 2));
    assert_eq!(meta.compaction.parents.len(), 3);
    let merged = Block::open(&path).unwrap();
    let want: Vec<_> = head
        .select(&[], 0, 5 * H, &Projection::All)
        .into_iter()
        .map(|mut s| {
            if s.labels == labels(3) {
                s.samples.retain(|x| x.t < H || x.t > 3 * H);
            }
            s
        })
        .collect();
    let mut got = merged.select(&[], 0, 5 * H).unwrap();
    got.sort_by(|x, y| x.labels.cmp(&y.labels));
    let mut want = want;
    want.sort_by(|x, y| x.labels.cmp(&y.labels));
    let count = |v: &[pyrite_core::value::SeriesSamples]| v.iter().map(|s| s.samples.len()).sum::<usize>();
    assert!(got == want, "merged block differs: {} vs {} samples", count(&got), count(&want));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_blocks_are_refused_or_reported_not_panics() {
    let dir = temp_dir("damage");
    let head = head();
    let block = cut(&head, &dir, 0, 2 * H);
    let path = block.dir().to_path_buf();
    drop(block);
    let index = fs::read(path.join(INDEX_FILE)).unwrap();
    for at in [9, index.len() / 2, index.len() - 1] {
        let mut bad = index.clone();
        bad[at] ^= 0x10;
        fs::write(path.join(INDEX_FILE), &bad).unwrap();
        let err = Block::open(&path).err().expect("a damaged index is refused");
        assert!(err.to_string().contains("index: checksum mismatch"), "{err}");
    }
    fs::write(path.join(INDEX_FILE), &index).unwrap();
    let mut chunks = fs::read(path.join(CHUNKS_FILE)).unwrap();
    let mid = chunks.len() / 2;
    chunks[mid] ^= 0x01;
    fs::write(path.join(CHUNKS_FILE), &chunks).unwrap();
    let block = Block::open(&path).expect("chunks are checked when read");
    let err = block.select(&[], 0, 2 * H).expect_err("the damaged chunk is reported");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    fs::write(path.join(META_FILE), b"{").unwrap();
    assert!(Block::open(&path).err().unwrap().to_string().contains("meta.json"));
    fs::remove_dir_all(&dir).unwrap();
}

/// A meta.json naming another block, or ending far past the clock, is refused and left on disk:
/// served, the first hid one of the two blocks, and the second made the head refuse every new
/// sample and skip its log's replay, without a word (red team L).
#[test]
fn blocks_whose_meta_names_another_or_ends_in_the_future_are_refused() {
    let dir = temp_dir("hostile-meta");
    let head = head();
    let paths = [cut(&head, &dir, 0, 2 * H), cut(&head, &dir, 2 * H, 4 * H)].map(|b| b.dir().to_path_buf());
    let meta = |path: &std::path::Path| fs::read_to_string(path.join(META_FILE)).unwrap();
    let (first, second) = (meta(&paths[0]), meta(&paths[1]));
    let ulid = |path: &std::path::Path| path.file_name().unwrap().to_string_lossy().into_owned();
    fs::write(paths[0].join(META_FILE), first.replace(&ulid(&paths[0]), &ulid(&paths[1]))).unwrap();
    let err = Block::open(&paths[0]).err().expect("a meta naming another block is refused");
    assert!(err.to_string().contains("is not the block directory's name"), "{err}");
    fs::write(paths[0].join(META_FILE), &first).unwrap();
    let far = second.replace(&format!("\"maxTime\": {}", 4 * H), &format!("\"maxTime\": {}", i64::MAX));
    assert_ne!(far, second, "{second}");
    fs::write(paths[1].join(META_FILE), far).unwrap();
    let (blocks, opened) = crate::blocks::Blocks::open(&dir, 8 * H).unwrap();
    assert_eq!(blocks.list().len(), 1);
    assert_eq!(blocks.max_time(), Some(2 * H), "the head may still take samples after the good block");
    assert!(
        opened.refused[0].to_string().contains("more than a day past this machine's clock"),
        "{:?}",
        opened.refused
    );
    assert!(paths[1].exists(), "left on disk");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ulids_sort_by_time_and_differ() {
    let (a, b) = (new_ulid(1_700_000_000_000), new_ulid(1_700_000_000_001));
    assert_eq!(a.len(), 26);
    assert!(a < b);
    assert_ne!(new_ulid(5), new_ulid(5));
}

#[test]
fn an_unfinished_block_leaves_no_directory_behind() {
    let dir = temp_dir("unfinished");
    let head = head();
    let mut w = BlockWriter::create(&dir, new_ulid(0)).unwrap();
    let id = head.ids_overlapping(0, H)[0];
    w.add(head.label_ids(id).unwrap(), &head.block_chunks(id, 0, H)).unwrap();
    // The chunks' writer makes the `.tmp` directory on its thread; a dropped block writer waits
    // for it, then removes the directory.
    drop(w);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "a dropped writer removes it");
    fs::remove_dir_all(&dir).unwrap();
}

/// A range holding a block a compaction failed on is not planned again, which would pick the
/// same group every pass (red team: one unreadable chunk kept a shard from compacting).
#[test]
fn blocks_a_compaction_failed_on_are_not_planned_again() {
    let dir = temp_dir("failed-plan");
    let head = head();
    let _ = [cut(&head, &dir, 0, 2 * H), cut(&head, &dir, 2 * H, 4 * H), cut(&head, &dir, 4 * H, 6 * H)];
    let (mut blocks, _) = crate::blocks::Blocks::open(&dir, i64::MAX).unwrap();
    let plan = blocks.plan(&ranges(2 * H, 18 * H)).expect("the 6h window is covered");
    assert_eq!(plan.len(), 3);
    // The middle block failed: its range is not selected, and the blocks around it are not
    // merged into one that would overlap it.
    blocks.compaction_failed(&plan[1..2]);
    assert_eq!(blocks.plan(&ranges(2 * H, 18 * H)), None);
    fs::remove_dir_all(&dir).unwrap();
}
