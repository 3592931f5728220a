//! # pyrite-bench
//!
//! Pyrite's measuring instruments:
//! * criterion micro-benchmarks of the core (`benches/core.rs`: parsing, the scrape path, chunk
//!   codec, head appends) and of dashboard queries fanned out over shards (`benches/query.rs`);
//! * the `pyrite-bench` binary, which runs the same load against Pyrite and the servers users
//!   would pick instead, on loopback in the same run, and reports ratios.
//!
//! This library holds what both share: the dashboard data set and queries.

pub mod dashboard;
