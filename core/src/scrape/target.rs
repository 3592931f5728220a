//! Scrape targets: from discovered label sets, through `relabel_configs`, to what a scrape loop
//! needs, as upstream's target labelling does.
//!
//! A discovered target is a label set: `__address__`, the service discovery's `__meta_*` labels
//! and the group's labels. To it come `job`, `__scheme__`, `__metrics_path__`,
//! `__scrape_interval__`, `__scrape_timeout__`, `__param_<name>` and upstream 3.x's histogram
//! options (`__scrape_native_histograms__`, `__always_scrape_classic_histograms__`,
//! `__convert_classic_histograms_to_nhcb__`, `true` or `false`) from the scrape config (unless
//! discovery set them). Relabeling may rewrite any of them or drop the target. Then
//! `instance` defaults to `__address__`, the `__param_*` labels become URL parameters, and every
//! label starting with `__` is removed from the target's labels.

use std::collections::{BTreeMap, HashSet};

use super::limits::HistogramLimits;
use crate::config::{accept_header, Config, Duration, HttpClientConfig, ScrapeConfig, ScrapeLimits};
use crate::discovery::TargetGroup;
use crate::exposition::{Format, HistogramOptions};
use crate::labels::{Labels, NameValidation};
use crate::relabel::{relabel, Rule};

/// One endpoint to scrape, with everything the scrape loop needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    pub scheme: String,
    pub metrics_path: String,
    /// URL query parameters, in order.
    pub params: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub limits: ScrapeLimits,
    /// The `Accept` header of its scrapes, from `scrape_protocols`.
    pub accept: String,
    /// The `Accept-Encoding` header of its scrapes, from `enable_compression`.
    pub accept_encoding: &'static str,
    /// `extra_scrape_metrics`; unset, the server's default.
    pub extra_scrape_metrics: Option<bool>,
    /// How to read an answer whose `Content-Type` names no format (`fallback_scrape_protocol`).
    pub fallback_format: Option<Format>,
    /// How its histograms are taken, and their limits.
    pub histograms: HistogramOptions,
    pub histogram_limits: HistogramLimits,
    /// The metric and label names its scrapes take (`metric_name_validation_scheme`).
    pub names: NameValidation,
    pub http: HttpClientConfig,
    pub metric_relabel_configs: Vec<Rule>,
    /// The `job_name` of the scrape config it comes from.
    pub scrape_pool: String,
    /// Where its failed scrapes are logged (`scrape_failure_log_file`).
    pub scrape_failure_log_file: Option<std::path::PathBuf>,
    /// The labels every series of this target gets: `job`, `instance` and the rest that
    /// relabeling left.
    pub labels: Labels,
    /// The labels before relabeling.
    pub discovered: Labels,
    /// Why every scrape of this target fails without being tried (its config's `target_limit`).
    pub refused: Option<String>,
}

impl Target {
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.address, self.path_and_query())
    }

    /// The metrics path with the URL parameters.
    pub fn path_and_query(&self) -> String {
        if self.params.is_empty() {
            return self.metrics_path.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish();
        let sep = if self.metrics_path.contains('?') { '&' } else { '?' };
        format!("{}{sep}{query}", self.metrics_path)
    }

    pub fn job(&self) -> &str {
        self.labels.get("job")
    }

    pub fn instance(&self) -> &str {
        self.labels.get("instance")
    }
}

/// A target that relabeling dropped, kept for `/api/v1/targets`.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    pub scrape_pool: String,
    pub discovered: Labels,
}

/// Every target of a configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSet {
    pub active: Vec<Target>,
    /// The dropped targets kept: each config's first `keep_dropped_targets` (all for 0).
    pub dropped: Vec<DroppedTarget>,
    /// How many targets relabeling dropped, by scrape pool: every pool, kept or not.
    pub dropped_counts: BTreeMap<String, u64>,
    /// Targets that could not be built (no address, a bad interval after relabeling), with
    /// the reason, for the log.
    pub invalid: Vec<String>,
}

/// What relabeling made of one discovered target.
#[derive(Debug, Clone, PartialEq)]
enum Resolution {
    Active(Box<Target>),
    Dropped(DroppedTarget),
    Invalid(String),
}

/// The labels that turn a target's histogram options on or off (upstream 3.x's), set from its
/// scrape config's and open to relabeling.
const SCRAPE_NATIVE: &str = "__scrape_native_histograms__";
const ALWAYS_SCRAPE_CLASSIC: &str = "__always_scrape_classic_histograms__";
const CONVERT_TO_NHCB: &str = "__convert_classic_histograms_to_nhcb__";

/// The target's histogram options from its relabeled `labels` (an option whose label
/// relabeling emptied is its scrape config's); an error naming a label that is no boolean, in
/// upstream's words.
fn histogram_options(sc: &ScrapeConfig, labels: &Labels) -> Result<HistogramOptions, String> {
    let option = |name: &str, what: &str, default: bool| match labels.get(name) {
        "" => Ok(default),
        value => crate::strconv::parse_bool(value)
            .ok_or_else(|| format!("error parsing {what}: strconv.ParseBool: parsing {value:?}: invalid syntax")),
    };
    let histograms = &sc.histograms;
    Ok(HistogramOptions {
        native: option(SCRAPE_NATIVE, "scrape native histograms", histograms.scrape_native_histograms)?,
        keep_classic: option(
            ALWAYS_SCRAPE_CLASSIC,
            "always scrape classic histograms",
            histograms.always_scrape_classic_histograms,
        )?,
        convert_to_nhcb: option(
            CONVERT_TO_NHCB,
            "convert classic histograms to nhcb",
            histograms.convert_classic_histograms_to_nhcb,
        )?,
    })
}

/// The discovered labels of a target at `address` in a group with `group_labels`, completed
/// with the scrape config's defaults.
fn discovered_labels(sc: &ScrapeConfig, address: &str, group_labels: &BTreeMap<String, String>) -> Labels {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("job".into(), sc.job_name.clone());
    labels.insert("__address__".into(), address.to_string());
    labels.insert("__scheme__".into(), sc.scheme.clone());
    labels.insert("__metrics_path__".into(), sc.metrics_path.clone());
    labels.insert("__scrape_interval__".into(), sc.scrape_interval.to_string());
    labels.insert("__scrape_timeout__".into(), sc.scrape_timeout.to_string());
    let histograms = &sc.histograms;
    for (name, on) in [
        (SCRAPE_NATIVE, histograms.scrape_native_histograms),
        (ALWAYS_SCRAPE_CLASSIC, histograms.always_scrape_classic_histograms),
        (CONVERT_TO_NHCB, histograms.convert_classic_histograms_to_nhcb),
    ] {
        labels.insert(name.into(), on.to_string());
    }
    for (name, values) in &sc.params {
        if let Some(first) = values.first() {
            labels.insert(format!("__param_{name}"), first.clone());
        }
    }
    labels.extend(group_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    Labels::from_pairs(labels)
}

/// A relabeled target's interval and timeout, refused in upstream's words where either is no
/// duration or zero, or the timeout is the longer.
fn scrape_interval_and_timeout(labels: &Labels) -> Result<(Duration, Duration), String> {
    let duration = |name: &str, what: &str| {
        let text = labels.get(name);
        match Duration::parse(text) {
            Ok(d) if d.millis() == 0 => Err(format!("scrape {what} cannot be 0")),
            Ok(d) => Ok((d, text)),
            Err(e) => Err(format!("error parsing scrape {what}: {e}")),
        }
    };
    let (interval, interval_text) = duration("__scrape_interval__", "interval")?;
    let (timeout, timeout_text) = duration("__scrape_timeout__", "timeout")?;
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout_text:?} > {interval_text:?})"
        ));
    }
    Ok((interval, timeout))
}

/// Relabels a discovered target and builds what its scrape loop needs.
fn resolve(sc: &ScrapeConfig, discovered: Labels) -> Resolution {
    let Some(labels) = relabel(&sc.relabel_configs, &discovered) else {
        return Resolution::Dropped(DroppedTarget { scrape_pool: sc.job_name.clone(), discovered });
    };
    let address = labels.get("__address__").to_string();
    if address.is_empty() {
        return Resolution::Invalid(format!("{discovered}: no address"));
    }
    if let Err(e) = crate::config::check_target_address(&address) {
        return Resolution::Invalid(format!("{discovered}: {e}"));
    }
    let (interval, timeout) = match scrape_interval_and_timeout(&labels) {
        Ok(both) => both,
        Err(e) => return Resolution::Invalid(format!("{discovered}: {e}")),
    };
    let histograms = match histogram_options(sc, &labels) {
        Ok(options) => options,
        Err(e) => return Resolution::Invalid(format!("{discovered}: {e}")),
    };
    let scheme = labels.get("__scheme__").to_string();
    if scheme != "http" && scheme != "https" {
        return Resolution::Invalid(format!("{discovered}: unknown scheme {scheme:?}"));
    }
    // As upstream: a `__param_<name>` label replaces the first value of that parameter (or
    // adds it); the query string is sorted by name.
    let mut by_name = sc.params.clone();
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix("__param_") {
            let values = by_name.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = l.value.clone(),
                None => values.push(l.value.clone()),
            }
        }
    }
    let params: Vec<(String, String)> =
        by_name.into_iter().flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v))).collect();
    let mut kept: Vec<(String, String)> =
        labels.iter().filter(|l| !l.name.starts_with("__")).map(|l| (l.name.clone(), l.value.clone())).collect();
    if labels.get("instance").is_empty() {
        kept.push(("instance".into(), address.clone()));
    }
    // As Go's URL: a path is joined to the host with a slash.
    let metrics_path = match labels.get("__metrics_path__") {
        path if path.starts_with('/') => path.to_string(),
        path => format!("/{path}"),
    };
    Resolution::Active(Box::new(Target {
        address,
        scheme,
        metrics_path,
        params,
        interval,
        timeout,
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
        track_timestamps_staleness: sc.track_timestamps_staleness,
        limits: sc.limits,
        accept: accept_header(&sc.scrape_protocols, sc.names.escaping),
        accept_encoding: if sc.enable_compression { "gzip" } else { "identity" },
        extra_scrape_metrics: sc.extra_scrape_metrics,
        fallback_format: sc.fallback_scrape_protocol.map(|p| p.format()),
        histograms,
        histogram_limits: HistogramLimits::new(sc.native_histogram_bucket_limit, sc.native_histogram_min_bucket_factor),
        names: sc.names.validation,
        http: sc.http.clone(),
        metric_relabel_configs: sc.metric_relabel_configs.clone(),
        scrape_pool: sc.job_name.clone(),
        scrape_failure_log_file: sc.scrape_failure_log_file.clone(),
        labels: Labels::from_pairs(kept),
        discovered,
        refused: None,
    }))
}

/// Resolves discovered targets of one scrape config into `set`, applying its `target_limit`.
/// Targets whose final labels are identical within a config are kept once, as upstream does.
fn add_resolved(set: &mut TargetSet, sc: &ScrapeConfig, discovered: impl IntoIterator<Item = Labels>) {
    let first = set.active.len();
    // Targets of this scrape config already taken, so that duplicates are found in linear time
    // (40,000 static targets took 20 s to compare pairwise).
    let mut seen: HashSet<(Labels, String)> = HashSet::new();
    let dropped = set.dropped_counts.entry(sc.job_name.clone()).or_default();
    let keep = sc.limits.keep_dropped_targets;
    for d in discovered {
        match resolve(sc, d) {
            Resolution::Active(t) => {
                if seen.insert((t.labels.clone(), t.url())) {
                    set.active.push(*t);
                }
            }
            Resolution::Dropped(d) => {
                if keep == 0 || *dropped < keep {
                    set.dropped.push(d);
                }
                *dropped += 1;
            }
            Resolution::Invalid(reason) => set.invalid.push(format!("{}: {reason}", sc.job_name)),
        }
    }
    let count = set.active.len() - first;
    let limit = sc.limits.target_limit;
    if limit > 0 && count as u64 > limit {
        let reason = format!("target_limit exceeded (number of targets: {count}, limit: {limit})");
        for t in &mut set.active[first..] {
            t.refused = Some(reason.clone());
        }
    }
}

/// Every target of every scrape config: its static configs, and the groups service discovery
/// found for it (by job name; their labels carry the `__meta_*` labels).
pub fn targets_from_config(config: &Config, discovered: &BTreeMap<String, Vec<TargetGroup>>) -> TargetSet {
    let mut set = TargetSet::default();
    for sc in &config.scrape_configs {
        let statics = sc.static_configs.iter().map(|st| (&st.targets, &st.labels));
        let found = discovered.get(&sc.job_name).into_iter().flatten().map(|g| (&g.targets, &g.labels));
        let labels: Vec<Labels> = statics
            .chain(found)
            .flat_map(|(targets, labels)| targets.iter().map(move |address| discovered_labels(sc, address, labels)))
            .collect();
        add_resolved(&mut set, sc, labels);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(yaml: &str) -> TargetSet {
        targets_from_config(&Config::parse(yaml, "p.yml").unwrap(), &BTreeMap::new())
    }

    #[test]
    fn targets_get_job_instance_and_static_labels() {
        let t = set(
            "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['a:1', 'b:2', 'a:1']\n        labels: {env: prod}\n",
        )
        .active;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].labels.to_string(), r#"{env="prod", instance="a:1", job="node"}"#);
        assert_eq!(t[1].url(), "http://b:2/metrics");
        assert_eq!(t[0].discovered.get("__address__"), "a:1");
        assert_eq!(t[0].discovered.get("__scrape_interval__"), "1m");
        assert_eq!(t[0].scrape_pool, "node");
    }

    #[test]
    fn relabeling_rewrites_address_path_params_and_drops_targets() {
        let s = set(concat!(
            "scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    params: {module: [http_2xx]}\n",
            "    relabel_configs:\n",
            "      - {source_labels: [__address__], target_label: __param_target}\n",
            "      - {source_labels: [__param_target], target_label: instance}\n",
            "      - {target_label: __address__, replacement: 'exporter:9115'}\n",
            "      - {source_labels: [instance], regex: 'skip.*', action: drop}\n",
            "      - {source_labels: [__meta_none], target_label: __tmp_x, replacement: x}\n",
            "    static_configs:\n      - targets: ['example.com:443', 'skip.me:80']\n",
        ));
        assert_eq!(s.active.len(), 1);
        let t = &s.active[0];
        assert_eq!(t.url(), "http://exporter:9115/probe?module=http_2xx&target=example.com%3A443");
        assert_eq!(t.labels.to_string(), r#"{instance="example.com:443", job="blackbox"}"#);
        assert_eq!(s.dropped.len(), 1);
        assert_eq!(s.dropped[0].discovered.get("__address__"), "skip.me:80");
    }

    #[test]
    fn relabeling_sets_a_targets_histogram_options() {
        let s = set(concat!(
            "scrape_configs:\n  - job_name: a\n    scrape_native_histograms: true\n    relabel_configs:\n",
            "      - {source_labels: [__address__], regex: 'classic:.*', target_label: __scrape_native_histograms__, replacement: 'False'}\n",
            "      - {source_labels: [__address__], regex: 'classic:.*', target_label: __convert_classic_histograms_to_nhcb__, replacement: '1'}\n",
            "      - {source_labels: [__address__], regex: 'bad:.*', target_label: __always_scrape_classic_histograms__, replacement: 'yes'}\n",
            "      - {source_labels: [__address__], regex: 'empty:.*', target_label: __scrape_native_histograms__, replacement: ''}\n",
            "    static_configs:\n      - targets: ['classic:1', 'bad:1', 'plain:1', 'empty:1']\n",
        ));
        let options = |t: &Target| (t.histograms.native, t.histograms.keep_classic, t.histograms.convert_to_nhcb);
        let by_address: Vec<_> = s.active.iter().map(|t| (t.address.as_str(), options(t))).collect();
        assert_eq!(
            by_address,
            [("classic:1", (false, false, true)), ("plain:1", (true, false, false)), ("empty:1", (true, false, false))]
        );
        assert_eq!(s.active[1].discovered.get("__scrape_native_histograms__"), "true");
        assert_eq!(s.active[1].discovered.get("__always_scrape_classic_histograms__"), "false");
        assert!(s.active.iter().all(|t| !t.labels.to_string().contains("histograms")), "not a target label");
        assert_eq!(s.invalid.len(), 1, "{:?}", s.invalid);
        assert!(
            s.invalid[0].ends_with(
                "error parsing always scrape classic histograms: strconv.ParseBool: parsing \"yes\": invalid syntax"
            ),
            "{:?}",
            s.invalid
        );
    }

    #[test]
    fn relabeled_intervals_apply_and_bad_ones_are_reported() {
        let s = set(concat!(
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n",
            "      - {source_labels: [__address__], regex: 'fast:.*', target_label: __scrape_interval__, replacement: 5s}\n",
            "      - {source_labels: [__address__], regex: 'fast:.*', target_label: __scrape_timeout__, replacement: 2s}\n",
            "      - {source_labels: [__address__], regex: 'bad:.*', target_label: __scrape_interval__, replacement: soon}\n",
            "    static_configs:\n      - targets: ['fast:1', 'bad:1', 'plain:1']\n",
        ));
        assert_eq!(s.active.len(), 2);
        assert_eq!(s.active[0].interval, Duration::from_secs(5));
        assert_eq!(s.active[1].interval, Duration::from_secs(60));
        assert_eq!(s.invalid.len(), 1, "{:?}", s.invalid);
    }

    #[test]
    fn discovered_targets_upstream_refuses_are_refused_and_paths_get_their_slash() {
        let config =
            Config::parse("scrape_configs:\n  - job_name: f\n    static_configs: [{targets: [localhost]}]\n", "p")
                .unwrap();
        let group = |address: &str, label: &str, value: &str| crate::discovery::TargetGroup {
            targets: vec![address.into()],
            labels: BTreeMap::from([(label.to_string(), value.to_string())]),
            source: String::new(),
        };
        let groups = vec![
            group("a:1", "__scrape_timeout__", "0s"),
            group("b:1", "__scrape_interval__", "0s"),
            group("c:1", "__scrape_timeout__", "2m"),
            group("http://d:1/x", "env", "prod"),
            group("e:1", "__metrics_path__", "probe"),
            group("f:1", "__metrics_path__", ""),
        ];
        let s = targets_from_config(&config, &BTreeMap::from([("f".to_string(), groups)]));
        let urls: Vec<String> = s.active.iter().map(Target::url).collect();
        assert_eq!(urls, ["http://localhost/metrics", "http://e:1/probe", "http://f:1/"]);
        let reasons: Vec<&str> = s.invalid.iter().map(|r| r.rsplit_once("}: ").unwrap().1).collect();
        assert_eq!(
            reasons,
            [
                "scrape timeout cannot be 0",
                "scrape interval cannot be 0",
                "scrape timeout cannot be greater than scrape interval (\"2m\" > \"1m\")",
                "\"http://d:1/x\" is not a valid hostname",
            ]
        );
    }

    #[test]
    fn keep_dropped_targets_keeps_the_first_dropped_and_counts_all() {
        let s = set(concat!(
            "global: {keep_dropped_targets: 1}\nscrape_configs:\n  - job_name: a\n",
            "    relabel_configs: [{source_labels: [__address__], regex: 'x.*', action: drop}]\n",
            "    static_configs: [{targets: ['x:1', 'x:2', 'y:1']}]\n",
        ));
        assert_eq!(s.active.len(), 1);
        let kept: Vec<&str> = s.dropped.iter().map(|d| d.discovered.get("__address__")).collect();
        assert_eq!(kept, ["x:1"]);
        assert_eq!(s.dropped_counts, BTreeMap::from([("a".to_string(), 2)]));
    }

    #[test]
    fn target_limit_refuses_every_target_of_the_config() {
        let s = set("scrape_configs:\n  - job_name: a\n    target_limit: 1\n    static_configs:\n      - targets: ['x:1', 'y:1']\n");
        assert!(s
            .active
            .iter()
            .all(|t| t.refused.as_deref() == Some("target_limit exceeded (number of targets: 2, limit: 1)")));
    }
}
