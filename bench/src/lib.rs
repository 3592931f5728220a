//! # pyrite-bench
//!
//! Pyrite's measuring instruments:
//! * criterion micro-benchmarks of the core (`benches/core.rs`: parsing, the scrape path, chunk
//!   codec, postings, head appends) and of dashboard queries fanned out over shards
//!   (`benches/query.rs`);
//! * the `pyrite-bench` binary, which runs the same load against Pyrite and the servers users
//!   would pick instead, on loopback in the same run, and reports ratios: `compare` (scraping,
//!   with Prometheus and VictoriaMetrics, [`compare`]), `gaps` (scrape regularity under queries
//!   and block cuts, with Prometheus, [`gaps`]), `churn` (head series and memory while series
//!   churn, with Prometheus, [`churn`]), `query-latency` (remote-written data, with
//!   Prometheus), `agent` (agent mode's memory and cost of sending, with Prometheus's agent,
//!   [`agent`]) and `histograms` (native histograms' memory, disk and queries, with
//!   Prometheus, [`histograms`]).
//!
//! The servers ([`servers`]), what they run on ([`environment`]), their resource use
//! ([`usage`]) and the markdown tables ([`report`]) are shared by every side-by-side run.

pub mod agent;
pub mod churn;
pub mod compare;
pub mod dashboard;
pub mod environment;
pub mod gaps;
pub mod histograms;
pub mod report;
pub mod scraping;
pub mod servers;
pub mod usage;
