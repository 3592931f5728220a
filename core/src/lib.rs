//! # pyrite-core
//!
//! Everything Pyrite computes, with no I/O, threads or clocks of its own ("sans-I/O"): the
//! exposition-format parser, labels and relabeling, the PromQL parser, planner and evaluator
//! (over any [`promql::SeriesSource`]), rules and templates, the remote-write wire messages and
//! the configuration model.
//!
//! The storage engine is `pyrite-tsdb`; the daemon crate wires these pieces to sockets, files,
//! timers and shard threads. Keeping them
//! here means every behaviour that matters for correctness is tested with plain `#[test]`s and
//! benchmarked deterministically, without a runtime in the way.

// The PromQL grammar's generated parser names `alloc` (pest without its `std` feature, which
// would bring a stack-probing dependency on libc; `promql::depth` bounds recursion instead).
extern crate alloc;

pub mod calendar;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod excerpt;
pub mod exposition;
pub mod histogram;
pub mod kahan;
pub mod labels;
pub mod promql;
pub mod protowire;
pub mod re2;
pub mod relabel;
pub mod remote;
pub mod rules;
pub mod scrape;
pub mod series_notation;
pub mod strconv;
pub mod value;
pub mod value_regex;
