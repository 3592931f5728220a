//! Applying the configuration: at start, again on SIGHUP or `/-/reload`, and whenever service
//! discovery finds new targets.
//!
//! A reload reads and validates the whole file before touching anything. An invalid file is
//! refused with its reason, the running configuration stays in force, and
//! `prometheus_config_last_reload_successful` drops to 0. A valid one replaces the rule groups and
//! the scraped targets through the [`ScrapeManager`]: unchanged targets keep their schedule,
//! removed ones go stale.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use pyrite_core::config::Config;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::{GroupDefaults, RuleFile};
use pyrite_core::scrape::targets_from_config;

use crate::discovery::Discovery;
use crate::live_config::{LiveConfig, Loaded};
use crate::metrics::Metrics;
use crate::remote_write::RemoteWriters;
use crate::retention::{Limits, LiveRetention};
use crate::rules::RuleManager;
use crate::scrape::{Applied, ScrapeManager};
use crate::shards::{HeadSettings, Request, Shards};

/// What a configuration is applied to.
pub struct Reloader {
    pub config: Arc<LiveConfig>,
    pub scrape: Arc<ScrapeManager>,
    pub discovery: Arc<Discovery>,
    pub rules: Arc<RuleManager>,
    pub remote_write: Arc<RemoteWriters>,
    pub metrics: Arc<Metrics>,
    /// How PromQL in rule files is parsed (feature flags).
    pub parse: ParseOptions,
    /// The shards, whose exemplar storage a reload resizes.
    pub shards: Shards,
    /// `--enable-feature=exemplar-storage` (or agent mode).
    pub exemplar_storage: bool,
    /// The retention in force, the flags' one (which the configuration may replace), and
    /// the data directory (whose file system a percentage is of).
    pub retention: Arc<LiveRetention>,
    pub retention_flags: Limits,
    pub storage_path: std::path::PathBuf,
}

impl Reloader {
    /// Starts scraping the targets of the configuration in force and evaluating its rules (at
    /// start-up).
    pub fn apply_initial(&self) -> Result<(), String> {
        let config = self.config.current();
        crate::query_log::install(crate::query_log::open(config.global.query_log_file.as_deref())?);
        crate::scrape_failure_log::install(crate::scrape_failure_log::open(&config)?);
        self.remote_write.apply(&config)?;
        self.apply_targets(&config);
        self.apply_rules(&config, &self.config.take_initial_rules())?;
        self.config.record(&self.metrics, true);
        Ok(())
    }

    fn apply_rules(&self, config: &Config, rules: &[(String, RuleFile)]) -> Result<(), String> {
        let g = &config.global;
        let defaults =
            GroupDefaults { interval: g.evaluation_interval.millis(), query_offset: g.rule_query_offset.millis() };
        self.rules.apply(rules, defaults, self.parse, g.external_labels.clone())
    }

    /// Applies the configuration in force again with the groups service discovery has just
    /// found.
    pub fn apply_discovered(&self) {
        let _one_at_a_time = self.config.one_at_a_time();
        let applied = self.apply_targets(&self.config.current());
        tracing::info!(
            kept = applied.kept,
            started = applied.started,
            stopped = applied.stopped,
            "discovered targets applied"
        );
    }

    /// Makes `config`'s targets (static and discovered) the scraped ones, and counts them per
    /// job as upstream's scrape pools and discovery do. Pyrite syncs every job's targets at
    /// once: each job's sync is that whole time.
    fn apply_targets(&self, config: &Config) -> Applied {
        let started = Instant::now();
        let set = targets_from_config(config, &self.discovery.groups());
        let mut jobs: BTreeMap<String, (i64, i64)> =
            config.scrape_configs.iter().map(|sc| (sc.job_name.clone(), (0, 0))).collect();
        for pool in set.active.iter().map(|t| &t.scrape_pool) {
            jobs.entry(pool.clone()).or_default().0 += 1;
        }
        for (pool, dropped) in &set.dropped_counts {
            jobs.entry(pool.clone()).or_default().1 += *dropped as i64;
        }
        let applied = self.scrape.apply(set);
        let took = started.elapsed().as_secs_f64();
        let m = &self.metrics;
        m.pool_targets.clear();
        m.discovered_targets.clear();
        m.sync_length.retain(|labels| labels.iter().any(|(_, job)| jobs.contains_key(job)));
        for (job, (active, dropped)) in jobs {
            let scrape_job = vec![("scrape_job", job.clone())];
            m.pool_targets.get_or_create(&scrape_job).set(active);
            m.sync_length.observe(&scrape_job, took);
            let discovered = vec![("config", job), ("name", "scrape".to_string())];
            m.discovered_targets.get_or_create(&discovered).set(active + dropped);
        }
        applied
    }

    /// Reads the configuration again and applies it; on error the running one stays in force.
    pub fn reload(&self) -> Result<(), String> {
        let live = &self.config;
        let _one_at_a_time = live.one_at_a_time();
        let Loaded { config, rules } = match live.load(self.parse) {
            Ok(loaded) => loaded,
            Err(e) => {
                live.record(&self.metrics, false);
                tracing::error!(error = %format!("{e:#}"), "configuration refused; the previous one stays in force");
                return Err(format!("{e:#}"));
            }
        };
        let logs = crate::query_log::open(config.global.query_log_file.as_deref())
            .and_then(|query_log| Ok((query_log, crate::scrape_failure_log::open(&config)?)));
        let (query_log, failure_logs) = match logs {
            Ok(files) => files,
            Err(e) => {
                live.record(&self.metrics, false);
                tracing::error!(error = %e, "log file refused; the previous configuration stays in force");
                return Err(e);
            }
        };
        let retention = match Limits::in_force(&config, self.retention_flags, &self.storage_path) {
            Ok(r) => r,
            Err(e) => {
                live.record(&self.metrics, false);
                tracing::error!(error = %e, "retention refused; the previous configuration stays in force");
                return Err(e);
            }
        };
        if let Err(e) = self.apply_rules(&config, &rules) {
            live.record(&self.metrics, false);
            tracing::error!(error = %e, "rules refused; the previous configuration stays in force");
            return Err(e);
        }
        if let Err(e) = self.remote_write.apply(&config) {
            live.record(&self.metrics, false);
            tracing::error!(error = %e, "remote write refused; the previous configuration stays in force");
            return Err(e);
        }
        crate::query_log::install(query_log);
        crate::scrape_failure_log::install(failure_logs);
        let config = Arc::new(config);
        live.replace(config.clone());
        let settings = HeadSettings::of(&config, self.exemplar_storage, self.shards.len());
        self.shards.tell_all(|| Request::HeadSettings(settings));
        if self.retention.set(retention) {
            self.metrics.set_retention(retention.time_ms, retention.bytes);
            tracing::info!(retention = %retention.describe(), "TSDB retention updated");
        }
        let applied = self.apply_targets(&config);
        live.record(&self.metrics, true);
        self.discovery.reconfigure();
        tracing::info!(
            kept = applied.kept,
            started = applied.started,
            stopped = applied.stopped,
            "configuration reloaded"
        );
        Ok(())
    }
}

/// What a reload answers: `Err` with the reason the configuration was refused.
type Outcome = Result<(), String>;

/// `/-/reload` requests, served on a thread of their own, not on the shard serving the request:
/// a reload blocks (it reads files, and waits for removed remote-write queues to stop, which
/// may be waiting for that very shard to name their series), and the shard's queries, scrapes
/// and appends must go on meanwhile. One thread, whatever the requests: those that arrive while
/// a reload runs are all answered by the next one, which reads the configuration after each of
/// them came, so a flood of requests costs neither a thread each nor a reload each.
#[derive(Clone)]
pub struct ReloadRequests(flume::Sender<flume::Sender<Outcome>>);

impl ReloadRequests {
    /// Starts the thread that reloads through `reloader`. A panic there ends the process, as in
    /// any work that changes state (see `crate::panic`).
    pub fn start(reloader: Arc<Reloader>) -> std::io::Result<Self> {
        let (requests, waiting) = flume::unbounded::<flume::Sender<Outcome>>();
        std::thread::Builder::new().name("reload".into()).spawn(move || {
            while let Ok(first) = waiting.recv() {
                let askers: Vec<_> = std::iter::once(first).chain(waiting.drain()).collect();
                let outcome = reloader.reload();
                for asker in askers {
                    let _ = asker.send(outcome.clone());
                }
            }
        })?;
        Ok(ReloadRequests(requests))
    }

    /// Reloads, or joins the next reload, and waits for it without blocking the shard.
    pub async fn reload(&self) -> Outcome {
        let (answer, outcome) = flume::bounded(1);
        self.0.send(answer).map_err(|_| "the reload thread stopped".to_string())?;
        outcome.recv_async().await.unwrap_or_else(|_| Err("the reload stopped".to_string()))
    }
}
