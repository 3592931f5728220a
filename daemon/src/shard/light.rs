//! Light queries evaluated on the shard itself (`Request::Evaluate`).
//!
//! A query worker keeps heavy evaluation off the shard's thread, but costs every query four
//! hand-offs between threads in a row (coordinator → worker → shard → worker → coordinator).
//! On an idle machine each is some microseconds; on a saturated one each waits for a core, a
//! scheduler slice of whatever runs there, and a small dashboard query then takes several times
//! its CPU time. So the shard first tries the query's fragments itself, in one go, reading its
//! storage directly: the coordinating shard with no hand-off at all, another shard with one
//! there and one back. The try is bounded ([`SERIES_STEPS`], [`SAMPLES`], and one slice of a
//! worker's read, [`SLICE`], in the thread's CPU time): once a select would go past the budget,
//! or the time is up, it stops, and the fragments go to a worker as they always did. So the shard is held
//! about as long as by one slice of a worker's read.
//!
//! Not tried: queries with remote-read stores (their reads go over the network), and reads
//! that meet a damaged block (the worker's read sets it aside).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrite_core::labels::{Matcher, Projection};
use pyrite_core::promql::{evaluate_fragments, EvalError, EvalParams, FragmentOutput, Interrupt, Plan, SeriesSource};
use pyrite_core::value::SeriesSamples;
use pyrite_tsdb::db::Db;
use pyrite_tsdb::querier::merge_parts;

use super::select::{block_series, head_series, read_labels, SLICE};

/// Series a light evaluation may read, over all its selects, times its steps: a dashboard's
/// stat panel or small graph, not a whole metric's worth.
const SERIES_STEPS: u64 = 4096;

/// Samples a light evaluation may read (about a millisecond of decoding).
const SAMPLES: u64 = 100_000;

/// Label values a light evaluation's select may try one by one against patterns, over all
/// its sources (a few milliseconds of regex matching).
const SCAN_VALUES: usize = 10_000;

/// What a `Request::Evaluate` carries.
pub struct Evaluate {
    pub plan: Arc<Plan>,
    pub params: EvalParams,
    pub reply: flume::Sender<Result<Vec<FragmentOutput>, EvalError>>,
    /// Queues the evaluation on a query worker: what a query too heavy for the shard gets.
    pub to_worker: Box<dyn FnOnce() + Send>,
}

/// Answers `evaluate` from `db` if it is light, else hands it to a worker (the mailbox drops it
/// if the coordinator gave up). The evaluation only reads: a panic fails this query, not the
/// process (see `crate::panic`).
pub fn serve(db: &Db, evaluate: Evaluate) {
    let Evaluate { plan, params, reply, to_worker } = evaluate;
    let handed_over = Arc::new(AtomicBool::new(false));
    let source = Budgeted {
        db,
        series: Cell::new(SERIES_STEPS / (params.steps() as u64).max(1)),
        samples: Cell::new(SAMPLES),
        handed_over: handed_over.clone(),
    };
    // Work that reads little can still be long (a subquery of many steps): past `SLICE` of
    // the thread's CPU time the try stops too. CPU time, not wall time: on a saturated machine
    // the thread may wait for a core in the middle of a try, and handing over then would
    // make the query pay for the try and the worker both, and wait for a core again. (Waits
    // for a block's pages from disk are not CPU time either: a cold read of the few series
    // the budget allows may hold the shard longer than a slice.) Its
    // loads must not count twice against `--query.max-samples` if it is handed over, so it
    // counts them apart.
    let started = (thread_cpu_time(), Instant::now());
    let (query, over_time) = (plan.limits.interrupt().clone(), handed_over.clone());
    let limits = plan.limits.trial(Interrupt::new(move || {
        let spent = match (started.0, thread_cpu_time()) {
            (Some(then), Some(now)) => now.saturating_sub(then),
            _ => started.1.elapsed(),
        };
        if spent > SLICE {
            over_time.store(true, Ordering::Relaxed);
            return Err(EvalError::Timeout("the shard's slice".into()));
        }
        query.check()
    }));
    let all = || evaluate_fragments(&plan, &params, &source, &limits);
    let out = crate::panic::catch(all).unwrap_or_else(|panic| Err(EvalError::Internal(panic)));
    if handed_over.load(Ordering::Relaxed) {
        to_worker();
    } else {
        let _ = reply.send(out.and_then(|out| plan.limits.absorb(&limits).map(|()| out)));
    }
}

/// The CPU time the calling thread has used, if the kernel tells (else the try is bounded by
/// wall time).
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to write.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    read.then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// The shard's storage, read while a budget lasts. A select past it fails the evaluation and
/// marks it for a worker.
struct Budgeted<'a> {
    db: &'a Db,
    series: Cell<u64>,
    samples: Cell<u64>,
    /// Set once the try is to go to a worker (also by the try's interrupt, past its time).
    handed_over: Arc<AtomicBool>,
}

impl Budgeted<'_> {
    /// Takes `n` from `budget`, or marks the evaluation for a worker.
    fn spend(&self, budget: &Cell<u64>, n: u64) -> Result<(), EvalError> {
        match budget.get().checked_sub(n) {
            Some(left) => {
                budget.set(left);
                Ok(())
            }
            None => Err(self.hand_over()),
        }
    }

    fn hand_over(&self) -> EvalError {
        self.handed_over.store(true, Ordering::Relaxed);
        EvalError::Execution("too heavy to evaluate on the shard".into())
    }

    fn read(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        newest: bool,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        let q = self.db.querier();
        // Selecting must not hold the shard either: patterns tried on many values go to a
        // worker, whose read tries them a slice at a time.
        let cost = self.db.head.selection_cost(matchers)
            + q.blocks_in(mint, maxt).map(|b| b.selection_cost(matchers)).sum::<usize>();
        if cost > SCAN_VALUES {
            return Err(self.hand_over());
        }
        let blocks: Vec<_> = q.blocks_in(mint, maxt).map(|b| (b, b.matching(matchers))).collect();
        let head = self.db.head.candidates(matchers);
        self.spend(&self.series, head.len() + blocks.iter().map(|(_, ids)| ids.len()).sum::<u64>())?;
        let mut parts = Vec::with_capacity(blocks.len() + 1);
        for (block, ids) in &blocks {
            let mut part = Vec::new();
            for id in ids {
                // A damaged block is set aside by the worker's read.
                let series = block_series(block, id, mint, maxt, newest).map_err(|_| self.hand_over())?;
                self.spend(&self.samples, series.as_ref().map_or(0, |s| s.weight() as u64))?;
                part.extend(series);
            }
            parts.push(part);
        }
        let labels = read_labels(blocks.is_empty(), labels);
        let mut part = Vec::with_capacity(head.len() as usize);
        for id in &head {
            let series = head_series(&self.db.head, id, mint, maxt, newest, labels);
            self.spend(&self.samples, series.as_ref().map_or(0, |s| s.weight() as u64))?;
            part.extend(series);
        }
        parts.push(part);
        Ok(merge_parts(parts))
    }
}

impl SeriesSource for Budgeted<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.read(matchers, mint, maxt, false, labels)
    }

    fn select_newest(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labels: &Projection,
    ) -> Result<Vec<SeriesSamples>, EvalError> {
        self.read(matchers, mint, maxt, true, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrite_core::labels::Labels;
    use pyrite_core::promql::{parse, plan, Limits, QueryResult};
    use pyrite_core::remote::WriteSeries;
    use pyrite_core::value::Sample;
    use pyrite_tsdb::db::Dirs;
    use pyrite_tsdb::wal::WalOptions;

    /// A shard's storage with `n` series `m{i="…"}` of 31 samples each, one every 10 s.
    fn db(name: &str, n: usize) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pyrite-light-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = WalOptions { compress: false, segment_size: 1 << 20 };
        let (mut db, _, _) = Db::open(&Dirs::of_shard(&dir, 0), options, 7_200_000, 0, i64::MAX).expect("open a Db");
        let _ = db.write(
            (0..n)
                .map(|i| WriteSeries {
                    labels: Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())]),
                    samples: (0..=30).map(|k| Sample { t: k * 10_000, v: (k * i as i64) as f64 }).collect(),
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                })
                .collect(),
        );
        (db, dir)
    }

    const AT: EvalParams = EvalParams { start: 300_000, end: 300_000, step: 0, lookback: 300_000 };

    /// `query` planned at 300 s, with at most `max_samples`.
    fn planned(query: &str, max_samples: usize) -> Arc<Plan> {
        let mut planned = plan(&parse(query).expect("parse"), &AT).expect("plan");
        planned.limits = Limits::new(max_samples, Default::default());
        Arc::new(planned)
    }

    /// Runs `plan` through [`serve`] as one shard: its fragments' outputs, or None if they
    /// went to a worker.
    fn serve_plan(db: &Db, plan: &Arc<Plan>) -> Option<Result<Vec<FragmentOutput>, EvalError>> {
        let (reply, answer) = flume::bounded(1);
        let (handed, handed_over) = flume::bounded(1);
        let to_worker = Box::new(move || handed.send(()).unwrap());
        serve(db, Evaluate { plan: plan.clone(), params: AT, reply, to_worker });
        match (answer.try_recv(), handed_over.try_recv()) {
            (Ok(out), Err(_)) => Some(out),
            (Err(_), Ok(())) => None,
            other => panic!("answered and handed over, or neither: {other:?}"),
        }
    }

    /// The answer to `query` tried on one shard with at most `max_samples`, or None if it went
    /// to a worker.
    fn try_on_shard(db: &Db, query: &str, max_samples: usize) -> Option<Result<QueryResult, EvalError>> {
        let plan = planned(query, max_samples);
        serve_plan(db, &plan).map(|out| out.and_then(|out| plan.finish(&AT, vec![out])))
    }

    #[test]
    fn a_light_query_is_answered_on_the_shard_as_from_the_head() {
        let (db, dir) = db("light", 100);
        let query = "sum(rate(m{i=~\"1.\"}[1m]))";
        let got = try_on_shard(&db, query, usize::MAX).expect("light").expect("answer");
        let params = EvalParams::instant(300_000, 300_000);
        let planned = Arc::new(plan(&parse(query).unwrap(), &params).unwrap());
        let want = evaluate_fragments(&planned, &params, &db.head, &planned.limits)
            .and_then(|out| planned.finish(&params, vec![out]))
            .unwrap();
        assert_eq!(got.value, want.value);
        assert!(format!("{:?}", got.value).contains("14.5"), "sum of i/10 over i in 10..20: {:?}", got.value);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_query_past_the_budget_goes_to_a_worker_and_limits_still_hold() {
        let (db, dir) = db("heavy", 5000);
        assert!(try_on_shard(&db, "count(m)", usize::MAX).is_none(), "5000 series is past the budget");
        assert!(try_on_shard(&db, "sum(m{i=~\"1..\"})", usize::MAX).is_some(), "100 series is not");
        let over = try_on_shard(&db, "sum(rate(m{i=~\"1..\"}[5m]))", 1000).expect("light");
        assert!(matches!(over, Err(EvalError::TooManySamples)), "{over:?}");

        // Reads little, computes long: stopped by the time bound, not the read budget.
        let long = "max_over_time(m{i=~\"1.\"}[300s:1ms])";
        assert!(try_on_shard(&db, long, usize::MAX).is_none(), "a long subquery goes to a worker");

        // A kept try counts against the query's limit as a worker's evaluation does: two
        // shards' loads of some 1,800 samples each pass a limit of 3,000 only apart.
        let plan = planned("sum(rate(m{i=~\"1[0-5].\"}[5m]))", 3000);
        assert!(serve_plan(&db, &plan).expect("light").is_ok());
        let second = serve_plan(&db, &plan).expect("light");
        assert!(matches!(second, Err(EvalError::TooManySamples)), "{second:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
