//! What the tests of a shard's reads share: a runtime as the shard's and a storage of their
//! own.

use std::cell::RefCell;
use std::path::PathBuf;

use pyrite_tsdb::db::{Db, Dirs};
use pyrite_tsdb::wal::WalOptions;

/// The block range of the storage [`open`] gives.
pub const RANGE: i64 = 1000;

pub fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime")
}

/// A shard's storage in a directory named after `name` (unique among the tests), with it.
pub fn open(name: &str) -> (RefCell<Db>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("pyrite-shard-test-{name}-{}", std::process::id()));
    let options = WalOptions { compress: false, segment_size: 1 << 20 };
    let (db, _, _) = Db::open(&Dirs::of_shard(&dir, 0), options, RANGE, 0, i64::MAX).expect("open a Db");
    (RefCell::new(db), dir)
}
