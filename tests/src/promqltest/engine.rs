//! The engine the scripts run against: `pyrite_tsdb`'s in-memory engine, N heads with each
//! series on its owner shard, exactly as the server splits them, queried through the server's
//! one executor.

use pyrite_core::promql::{self, Expr, ParseOptions};

pub use pyrite_tsdb::memory::MemoryEngine as Engine;

/// Lookback delta the scripts assume (§10).
pub const LOOKBACK_MS: i64 = 300_000;

/// Parses with every optional syntax feature on (§5.1).
pub fn parse(text: &str) -> Result<Expr, String> {
    promql::parse_with(text, ParseOptions::all()).map_err(|e| e.to_string())
}
