//! `scrape_protocols` and `fallback_scrape_protocol`: the exposition formats a scrape asks a
//! target for, most wanted first, and the `Accept` header upstream builds from them
//! (`acceptHeader` in `scrape/scrape.go`), with its defaults and its checks.
//!
//! The text formats that can carry names outside the legacy character set (text 1.0.0 and
//! OpenMetrics 1.0.0) are asked for with the scrape config's `metric_name_escaping_scheme`:
//! `escaping=allow-utf-8` (upstream 3.x's default) has a target write such names as they are,
//! quoted; `underscores` (the default under `metric_name_validation_scheme: legacy`), `dots` or
//! `values` have it escape them.

use crate::exposition::{Escaping, Format};

/// One protocol `scrape_protocols` may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeProtocol {
    PrometheusProto,
    OpenMetricsText1_0_0,
    OpenMetricsText0_0_1,
    PrometheusText1_0_0,
    PrometheusText0_0_4,
}

impl ScrapeProtocol {
    /// Every protocol, in the order of upstream's error message (sorted by name).
    pub const ALL: [ScrapeProtocol; 5] = [
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::PrometheusText0_0_4,
        ScrapeProtocol::PrometheusText1_0_0,
    ];

    /// Upstream's default preference (`DefaultScrapeProtocols`).
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// The default with `scrape_native_histograms` (`DefaultProtoFirstScrapeProtocols`): only
    /// the protobuf format carries native histograms.
    pub const PROTO_FIRST: [ScrapeProtocol; 5] = [
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// Its name in a configuration file.
    pub fn name(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "PrometheusProto",
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
        }
    }

    /// The protocol named `name` (case-sensitive, as upstream), or upstream's error.
    pub fn parse(name: &str) -> Result<ScrapeProtocol, String> {
        ScrapeProtocol::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ScrapeProtocol::ALL.iter().map(|p| p.name()).collect();
            format!("unknown scrape protocol {name}, supported: [{}]", names.join(" "))
        })
    }

    /// What it stands for in an `Accept` header, without its weight, asking for `escaping`
    /// where the format takes it (see the module doc).
    fn media_type(self, escaping: Escaping) -> String {
        let escaping = escaping.name();
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited".into()
            }
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                format!("application/openmetrics-text;version=1.0.0;escaping={escaping}")
            }
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1".into(),
            ScrapeProtocol::PrometheusText1_0_0 => format!("text/plain;version=1.0.0;escaping={escaping}"),
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4".into(),
        }
    }

    /// The format of a body in this protocol (what `fallback_scrape_protocol` parses a body
    /// as).
    pub fn format(self) -> Format {
        match self {
            ScrapeProtocol::PrometheusProto => Format::Protobuf,
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::OpenMetricsText0_0_1 => Format::OpenMetrics,
            ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::PrometheusText0_0_4 => Format::Text,
        }
    }
}

/// A `scrape_protocols` list as upstream checks it: not empty, no protocol twice (compared
/// without case), each known; the error in upstream's words.
pub fn parse_protocols(names: &[String]) -> Result<Vec<ScrapeProtocol>, String> {
    if names.is_empty() {
        return Err("scrape_protocols cannot be empty".into());
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for name in names {
        let lower = name.to_lowercase();
        if seen.contains(&lower) {
            return Err(format!("duplicated protocol in scrape_protocols, got [{}]", names.join(" ")));
        }
        out.push(ScrapeProtocol::parse(name)?);
        seen.push(lower);
    }
    Ok(out)
}

/// The `Accept` header for `protocols`, weighted in order as upstream weighs them: the first
/// gets `q=0.6` (one more tenth than there are protocols), each next one a tenth less, and
/// `*/*` the last tenth.
pub fn accept_header(protocols: &[ScrapeProtocol], escaping: Escaping) -> String {
    let mut weight = ScrapeProtocol::ALL.len() + 1;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for p in protocols {
        parts.push(format!("{};q=0.{weight}", p.media_type(escaping)));
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream 3.x's headers for its default lists and escapings.
    #[test]
    fn accept_headers_are_upstreams() {
        assert_eq!(
            accept_header(&ScrapeProtocol::DEFAULT, Escaping::AllowUtf8),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert_eq!(
            accept_header(&ScrapeProtocol::PROTO_FIRST, Escaping::Underscores),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,\
             application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,\
             application/openmetrics-text;version=0.0.1;q=0.4,\
             text/plain;version=1.0.0;escaping=underscores;q=0.3,\
             text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        assert_eq!(
            accept_header(&[ScrapeProtocol::PrometheusText0_0_4], Escaping::Dots),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn lists_are_checked_as_upstream_checks_them() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_protocols(&names(&["PrometheusProto", "PrometheusText0.0.4"])),
            Ok(vec![ScrapeProtocol::PrometheusProto, ScrapeProtocol::PrometheusText0_0_4])
        );
        assert_eq!(parse_protocols(&[]), Err("scrape_protocols cannot be empty".into()));
        assert_eq!(
            parse_protocols(&names(&["PrometheusProto", "prometheusproto"])),
            Err("duplicated protocol in scrape_protocols, got [PrometheusProto prometheusproto]".into())
        );
        assert_eq!(
            parse_protocols(&names(&["Proto"])),
            Err("unknown scrape protocol Proto, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0]".into())
        );
        for p in ScrapeProtocol::ALL {
            assert_eq!(ScrapeProtocol::parse(p.name()), Ok(p));
        }
    }
}
