//! The configuration: loaded at start, applied again on SIGHUP or `/-/reload`.
//!
//! A reload reads and validates the whole file before touching anything. An invalid file is
//! refused with its reason, the running configuration stays in force, and
//! `pyrite_config_last_reload_successful` drops to 0. A valid one replaces the scraped targets
//! through the [`ScrapeManager`](crate::scrape::ScrapeManager): unchanged targets keep their
//! schedule, removed ones go stale.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use pyrite_core::config::Config;
use pyrite_core::promql::ParseOptions;
use pyrite_core::rules::{GroupDefaults, RuleFile};
use pyrite_core::scrape::targets_from_config;

use crate::clock::now_ms;
use crate::context::Context;
use crate::scrape::Applied;

/// Where the configuration comes from: the file, or the embedded default pointed at this
/// server's own address and `/metrics` under its route prefix.
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub listen_address: String,
    pub metrics_path: String,
}

/// A configuration and the rule files it names, both valid.
pub struct Loaded {
    pub config: Config,
    pub rules: Vec<(String, RuleFile)>,
}

impl ConfigSource {
    /// Reads and checks the configuration and its rule files.
    pub fn load(&self, options: ParseOptions) -> anyhow::Result<Loaded> {
        let config = self.load_config()?;
        let rules = crate::rules::load_rule_files(&config.rule_files, options)
            .map_err(|e| anyhow::anyhow!("error loading rules: {e}"))?;
        Ok(Loaded { config, rules })
    }

    fn load_config(&self) -> anyhow::Result<Config> {
        let (text, name) = match &self.file {
            Some(path) => {
                let text = crate::files::read_text(path).with_context(|| format!("cannot read {}", path.display()))?;
                (text, path.display().to_string())
            }
            None => {
                let addr = crate::http::server::parse_listen_address(&self.listen_address)?;
                let host = if addr.ip().is_unspecified() { "localhost".to_string() } else { addr.ip().to_string() };
                let own = if addr.is_ipv6() && host != "localhost" {
                    format!("[{host}]:{}", addr.port())
                } else {
                    format!("{host}:{}", addr.port())
                };
                (
                    include_str!("default_config.yml")
                        .replace("SELF_ADDRESS", &own)
                        .replace("SELF_METRICS_PATH", &self.metrics_path),
                    "the embedded default configuration".into(),
                )
            }
        };
        Ok(Config::parse(&text, &name)?)
    }
}

/// The configuration in force and how the last reload went.
pub struct LiveConfig {
    source: ConfigSource,
    /// The rule files read at start, until they are applied.
    initial_rules: Mutex<Vec<(String, RuleFile)>>,
    current: Mutex<Arc<Config>>,
    /// (whether the last load succeeded, Unix ms of the last success).
    last: Mutex<(bool, i64)>,
    /// Serialises reloads (SIGHUP and `/-/reload` may come together).
    reloading: Mutex<()>,
}

impl LiveConfig {
    pub fn new(source: ConfigSource, loaded: Loaded) -> Self {
        let Loaded { config, rules } = loaded;
        LiveConfig {
            source,
            initial_rules: Mutex::new(rules),
            current: Mutex::new(Arc::new(config)),
            last: Mutex::new((true, now_ms())),
            reloading: Mutex::new(()),
        }
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the last (re)load succeeded, and when the last success was (Unix ms).
    pub fn last_reload(&self) -> (bool, i64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, ctx: &Context, ok: bool) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.0 = ok;
        if ok {
            last.1 = now_ms();
        }
        ctx.metrics.config_reload_successful.set(i64::from(ok));
        ctx.metrics.config_reload_success_time.set(last.1 / 1000);
    }
}

/// Starts scraping the targets of the configuration in force and evaluating its rules (at
/// start-up).
pub fn apply_initial(ctx: &Context) -> Result<(), String> {
    let config = ctx.config.current();
    apply(ctx, &config);
    let rules = std::mem::take(&mut *ctx.config.initial_rules.lock().unwrap_or_else(|p| p.into_inner()));
    apply_rules(ctx, &config, &rules)?;
    ctx.config.record(ctx, true);
    Ok(())
}

fn apply_rules(ctx: &Context, config: &Config, rules: &[(String, RuleFile)]) -> Result<(), String> {
    let g = &config.global;
    let defaults =
        GroupDefaults { interval: g.evaluation_interval.millis(), query_offset: g.rule_query_offset.millis() };
    ctx.rules.apply(rules, defaults, ctx.parse_options)
}

/// Applies the configuration in force again with the groups service discovery has just found.
pub fn apply_discovered(ctx: &Context) {
    let _one_at_a_time = ctx.config.reloading.lock().unwrap_or_else(|p| p.into_inner());
    let applied = apply(ctx, &ctx.config.current());
    tracing::info!(
        kept = applied.kept,
        started = applied.started,
        stopped = applied.stopped,
        "discovered targets applied"
    );
}

/// Makes `config`'s targets (static and discovered) the scraped ones.
fn apply(ctx: &Context, config: &Config) -> Applied {
    let applied = ctx.scrape.apply(&ctx.shards, targets_from_config(config, &ctx.discovery.groups()));
    ctx.metrics.active_targets.set(ctx.scrape.active().len() as i64);
    applied
}

/// Reads the configuration again and applies it; on error the running one stays in force.
pub fn reload(ctx: &Context) -> Result<(), String> {
    let live = &ctx.config;
    let _one_at_a_time = live.reloading.lock().unwrap_or_else(|p| p.into_inner());
    let Loaded { config, rules } = match live.source.load(ctx.parse_options) {
        Ok(loaded) => loaded,
        Err(e) => {
            live.record(ctx, false);
            tracing::error!(error = %format!("{e:#}"), "configuration refused; the previous one stays in force");
            return Err(format!("{e:#}"));
        }
    };
    if let Err(e) = apply_rules(ctx, &config, &rules) {
        live.record(ctx, false);
        tracing::error!(error = %e, "rules refused; the previous configuration stays in force");
        return Err(e);
    }
    let config = Arc::new(config);
    *live.current.lock().unwrap_or_else(|p| p.into_inner()) = config.clone();
    let applied = apply(ctx, &config);
    live.record(ctx, true);
    ctx.discovery.reconfigure();
    tracing::info!(kept = applied.kept, started = applied.started, stopped = applied.stopped, "configuration reloaded");
    Ok(())
}
