//! # pyrite-loadgen
//!
//! Synthetic scrape targets for tests and benchmarks. Each target exposes a fixed set of series
//! shaped like a real HTTP service: request counters by method/status/handler, memory gauges by
//! pool, and classic request-duration histograms. Values are pure functions of time since the
//! generator started, so a test can compute what `rate()` must return instead of hard-coding
//! it ([`counter_rate_sum`]), and values move every scrape so compression is realistic.

pub mod exposition;
pub mod server;

pub use exposition::{counter_rate_sum, render, SeriesMix};
