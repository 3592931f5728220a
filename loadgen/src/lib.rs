//! # pyrite-loadgen
//!
//! Synthetic load for tests and benchmarks: scrape targets on loopback ([`server`]) serving
//! either the `uniform` profile ([`exposition`]: one HTTP-service shape with exactly known
//! counter rates, so a test can compute what `rate()` must return, [`counter_rate_sum`]; in
//! the protobuf format too ([`protobuf`]), its latency histograms native ones on demand
//! ([`latency`])) or
//! the `mixed` profile ([`exporters`]: service, node and Redis exporters with moving values and
//! optional pod churn); the record of when each target was scraped and by whom ([`arrivals`]);
//! and client load ([`drive`]): dashboard queries and remote writes at fixed rates.

pub mod arrivals;
pub mod drive;
pub mod exporters;
pub mod exposition;
pub mod latency;
pub mod protobuf;
pub mod server;

pub use exposition::{counter_rate_sum, render, SeriesMix};
