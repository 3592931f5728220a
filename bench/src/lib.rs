//! # pyrite-bench
//!
//! Criterion micro-benchmarks of Pyrite's core (`benches/core.rs`): exposition parsing, the
//! steady-state scrape path, the chunk codec, head appends and query evaluation, each on data
//! shaped like production load (loadgen's series mix). Run with `cargo bench -p pyrite-bench`.
//!
//! The side-by-side comparison against upstream Prometheus and VictoriaMetrics joins this crate
//! with the benchmarks issue.
