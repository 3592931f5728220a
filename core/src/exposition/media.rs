//! Which format a scrape answer's body is in, from its `Content-Type`, as upstream reads it
//! (`extractMediaType` in `model/textparse`): the media type decides, whatever its parameters;
//! `fallback_scrape_protocol` stands in for a type that does not parse or is not one of the
//! three Prometheus parses.
//!
//! One difference, deliberate: an answer with no `Content-Type` at all (or a blank one) is read
//! as the text format 0.0.4 when no fallback is configured, as Prometheus 2.x read it, where 3.x
//! fails the scrape. Exporters written by hand (a shell script behind netcat, a fixed file
//! served by a web server) often send none, and such a target should not stop working on a
//! move to Pyrite.
//!
//! The other way round, [`Negotiated`] is the format `/federate` answers in, from a request's
//! `Accept` header.

use super::escaping::Escaping;

/// The exposition format of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `text/plain` (versions 0.0.4 and 1.0.0).
    #[default]
    Text,
    /// `application/openmetrics-text`.
    OpenMetrics,
    /// `application/vnd.google.protobuf`: varint-delimited `io.prometheus.client.MetricFamily`
    /// messages.
    Protobuf,
}

impl Format {
    /// The format of a body whose answer said `content_type` (empty when it said none), or
    /// `fallback` where upstream would use `fallback_scrape_protocol`; the error says why
    /// neither applies, in upstream's words.
    pub fn of_content_type(content_type: &str, fallback: Option<Format>) -> Result<Format, String> {
        if content_type.trim().is_empty() {
            return Ok(fallback.unwrap_or(Format::Text));
        }
        let media_type = match media_type(content_type) {
            Some(m) => m,
            None => {
                return fallback.ok_or_else(|| {
                    format!("cannot parse Content-Type {content_type:?} and no fallback_scrape_protocol for target")
                })
            }
        };
        match media_type.as_str() {
            "text/plain" => Ok(Format::Text),
            "application/openmetrics-text" => Ok(Format::OpenMetrics),
            "application/vnd.google.protobuf" => Ok(Format::Protobuf),
            _ => fallback.ok_or_else(|| {
                format!(
                    "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
                )
            }),
        }
    }
}

/// The format `/federate` answers in, and the name escaping it declares, negotiated from a
/// request's `Accept` header as upstream's `expfmt.Negotiate` negotiates it (prometheus/common
/// 0.70, through `goautoneg`): the clauses by descending `q` (a `q` that does not parse is 0,
/// and a clause of `q=0` still counts), ties in their order; the first that asks for the
/// delimited protobuf format (`proto=io.prometheus.client.MetricFamily;
/// encoding=delimited`) or for `text/plain` of version 0.0.4 or none wins, and nothing matching
/// means the text format. Types, subtypes and parameter values compare exactly, as upstream
/// compares them.
///
/// One difference, deliberate: upstream also offers the protobuf text and compact-text
/// encodings (`encoding=text`, `encoding=compact-text`), Go's debugging print of the messages,
/// which no scraper reads; Pyrite skips such a clause, so the next one (or the text format)
/// decides.
///
/// Only the first [`MAX_ACCEPT_CLAUSES`] clauses are read (upstream reads every one), so that a
/// header of hundreds of kilobytes costs no more than a short one.
///
/// An `escaping` parameter (`allow-utf-8`, `underscores`, `dots` or `values`; another is
/// ignored) of any clause up to the winning one is echoed in the content type and writes the
/// body's names ([`Escaping`]), else upstream's default, `underscores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// [`Format::Text`] or [`Format::Protobuf`].
    pub format: Format,
    pub escaping: Escaping,
}

/// Most clauses of an `Accept` header read; a scraper sends a handful.
pub const MAX_ACCEPT_CLAUSES: usize = 64;

/// The media type of the text format 0.0.4, as `/federate` answers it.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One clause of an `Accept` header, as `goautoneg` reads it: what negotiation looks at.
#[derive(Debug, Default)]
struct Clause<'a> {
    media: (&'a str, &'a str),
    q: f32,
    proto: &'a str,
    encoding: &'a str,
    version: &'a str,
    escaping: &'a str,
}

impl<'a> Clause<'a> {
    /// A clause, `goautoneg`'s way: spaces trimmed, `*` alone as `*/*`, a media range of other
    /// than two parts skipped, parameters without `=` ignored, the last of a name kept.
    fn parse(part: &'a str) -> Option<Clause<'a>> {
        let mut pieces = part.trim_matches(' ').split(';');
        let range = pieces.next().unwrap_or_default();
        let media = match range.split_once('/') {
            None if range.trim_matches(' ') == "*" => ("*", "*"),
            Some((kind, subtype)) if !subtype.contains('/') => (kind.trim_matches(' '), subtype.trim_matches(' ')),
            _ => return None,
        };
        let mut clause = Clause { media, q: 1.0, ..Clause::default() };
        for param in pieces {
            let Some((name, value)) = param.split_once('=') else { continue };
            let trimmed = value.trim_matches(' ');
            match name.trim_matches(' ') {
                // Go parses the value untrimmed; what does not parse (NaN too, here) is 0.
                "q" => clause.q = value.parse::<f32>().ok().filter(|q| !q.is_nan()).unwrap_or(0.0),
                "proto" => clause.proto = trimmed,
                "encoding" => clause.encoding = trimmed,
                "version" => clause.version = trimmed,
                "escaping" => clause.escaping = trimmed,
                _ => {}
            }
        }
        Some(clause)
    }

    /// The format this clause asks for, if `/federate` offers it.
    fn format(&self) -> Option<Format> {
        match self.media {
            ("application", "vnd.google.protobuf")
                if self.proto == "io.prometheus.client.MetricFamily" && self.encoding == "delimited" =>
            {
                Some(Format::Protobuf)
            }
            ("text", "plain") if matches!(self.version, "0.0.4" | "") => Some(Format::Text),
            _ => None,
        }
    }
}

impl Negotiated {
    /// The answer to a request whose `Accept` header is `accept` (empty when it has none).
    pub fn from_accept(accept: &str) -> Negotiated {
        let mut clauses: Vec<Clause<'_>> =
            accept.split(',').take(MAX_ACCEPT_CLAUSES).filter_map(Clause::parse).collect();
        clauses.sort_by(|a, b| b.q.total_cmp(&a.q));
        let mut escaping = Escaping::Underscores;
        for clause in &clauses {
            if let Some(known) = Escaping::ALL.into_iter().find(|e| e.name() == clause.escaping) {
                escaping = known;
            }
            if let Some(format) = clause.format() {
                return Negotiated { format, escaping };
            }
        }
        Negotiated { format: Format::Text, escaping }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(&self) -> String {
        let media = match self.format {
            Format::Protobuf => super::protobuf::CONTENT_TYPE,
            _ => TEXT_CONTENT_TYPE,
        };
        format!("{media}; escaping={}", self.escaping.name())
    }
}

/// Whether `c` may be part of a token (RFC 1521; Go's `mime.isTokenChar`).
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// The lower-cased `type/subtype` of a `Content-Type`, if it parses as Go's
/// `mime.ParseMediaType` parses it: a type and subtype that are tokens, then `; name=value`
/// parameters whose names are tokens, values tokens or quoted strings, no name twice.
fn media_type(content_type: &str) -> Option<String> {
    let (media, mut rest) = content_type.split_once(';').unwrap_or((content_type, ""));
    let media = media.trim().to_ascii_lowercase();
    let (kind, subtype) = media.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    // A set: a hostile target may send tens of thousands of parameters.
    let mut names = std::collections::HashSet::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(media);
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        if !is_token(&name) || !names.insert(name) {
            return None;
        }
        let after = after.trim_start();
        let (_, remainder) = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted)?,
            None => {
                let end = after.find(|c: char| !is_token_char(c)).unwrap_or(after.len());
                if end == 0 {
                    return None;
                }
                after.split_at(end)
            }
        };
        let remainder = remainder.trim_start();
        rest = match remainder.strip_prefix(';') {
            Some(r) => r,
            None if remainder.is_empty() => remainder,
            None => return None,
        };
    }
}

/// A quoted string's content and what follows its closing quote; `s` starts after the
/// opening one. A backslash escapes the next character.
fn quoted_string(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_type_picks_the_parser_whatever_its_parameters() {
        let format = |ct: &str| Format::of_content_type(ct, None);
        assert_eq!(format("application/openmetrics-text; version=1.0.0; charset=utf-8"), Ok(Format::OpenMetrics));
        assert_eq!(format("text/plain; version=0.0.4"), Ok(Format::Text));
        assert_eq!(format("TEXT/Plain;version=1.0.0;escaping=underscores"), Ok(Format::Text));
        assert_eq!(
            format("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"),
            Ok(Format::Protobuf)
        );
        assert_eq!(format("text/plain; charset=\"utf-8\""), Ok(Format::Text));
        // No Content-Type: the text format (see the module doc), or the fallback.
        assert_eq!(format(""), Ok(Format::Text));
        assert_eq!(Format::of_content_type(" ", Some(Format::Protobuf)), Ok(Format::Protobuf));
    }

    const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

    #[test]
    fn federation_negotiates_protobuf_or_text_as_upstream() {
        let format = |accept: &str| Negotiated::from_accept(accept).format;
        // What Prometheus sends with native histograms on, and without.
        let native = format!("{PROTOBUF};q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1");
        assert_eq!(format(&native), Format::Protobuf);
        assert_eq!(
            format("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::Text
        );
        assert_eq!(format(""), Format::Text);
        assert_eq!(format(PROTOBUF), Format::Protobuf);
        // The highest q wins, ties in order; a q that does not parse is 0, and 0 still counts.
        assert_eq!(format(&format!("text/plain;q=0.5, {PROTOBUF};q=0.9")), Format::Protobuf);
        assert_eq!(format(&format!("text/plain;q=0.9, {PROTOBUF};q=0.5")), Format::Text);
        assert_eq!(format(&format!("text/plain;q=x, {PROTOBUF};q=0")), Format::Text);
        assert_eq!(format(&format!("{PROTOBUF};q=0,text/plain;q=0")), Format::Protobuf);
        // Spaces around parts are trimmed; types and values compare exactly.
        let spaced =
            " application/vnd.google.protobuf ; proto = io.prometheus.client.MetricFamily ; encoding= delimited";
        assert_eq!(format(spaced), Format::Protobuf);
        assert_eq!(format(&PROTOBUF.to_uppercase()), Format::Text);
        // Neither other encodings, other messages, other text versions nor wildcards match.
        for other in ["encoding=text", "encoding=compact-text", "proto=x;encoding=delimited"] {
            let accept = format!("application/vnd.google.protobuf;{other},text/plain;version=1.0.0,*/*");
            assert_eq!(format(&accept), Format::Text, "{accept}");
        }
        assert_eq!(format(&format!("text/plain;version=1.0.0, {PROTOBUF};q=0.1")), Format::Protobuf);
        assert_eq!(format(&format!("a/b/c, *, text/*, {PROTOBUF}")), Format::Protobuf);
        // Hostile headers: long, odd, many clauses; an answer, never a panic. Clauses past the
        // first MAX_ACCEPT_CLAUSES are not read.
        let many = |n: usize| format!("{}{PROTOBUF};q=0.001", "x/y;q=0.5;;=,".repeat(n));
        assert_eq!(format(&many(MAX_ACCEPT_CLAUSES - 1)), Format::Protobuf);
        assert_eq!(format(&many(MAX_ACCEPT_CLAUSES)), Format::Text);
        assert_eq!(format(&many(50_000)), Format::Text);
        assert_eq!(format(&format!("{PROTOBUF};escaping=dots;q={}", "9".repeat(100_000))), Format::Protobuf);
        assert_eq!(format(";;;,,,=,/,//,q=1,\u{fffd}"), Format::Text);
    }

    #[test]
    fn the_content_type_echoes_a_known_escaping() {
        let content_type = |accept: &str| Negotiated::from_accept(accept).content_type();
        assert_eq!(
            content_type(PROTOBUF),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        );
        assert_eq!(content_type(""), "text/plain; version=0.0.4; charset=utf-8; escaping=underscores");
        assert_eq!(
            content_type("text/plain;version=0.0.4;escaping=allow-utf-8"),
            "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
        );
        // From a clause before the winner too; an unknown one is ignored.
        assert_eq!(
            content_type(&format!("application/json;escaping=dots, {PROTOBUF};escaping=bogus;q=0.5")),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=dots"
        );
    }

    #[test]
    fn unparsable_and_unsupported_types_need_the_fallback() {
        for bad in ["text", "text/", "/plain", "text/plain; version", "text/plain; a=1; a=2", "text/plain; q=\"x"] {
            assert_eq!(
                Format::of_content_type(bad, None),
                Err(format!("cannot parse Content-Type {bad:?} and no fallback_scrape_protocol for target")),
            );
            assert_eq!(Format::of_content_type(bad, Some(Format::OpenMetrics)), Ok(Format::OpenMetrics));
        }
        assert_eq!(
            Format::of_content_type("application/json", None),
            Err("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target".into())
        );
        assert_eq!(Format::of_content_type("text/html; charset=utf-8", Some(Format::Text)), Ok(Format::Text));
    }

    /// A hostile target's 400 KB `Content-Type` of 40,000 parameters (each checked against the
    /// names before it, that was seconds of a shard's time every scrape): a name twice is found.
    #[test]
    fn many_parameters_are_read_and_a_repeated_name_found() {
        let many: String = (0..40_000).map(|i| format!("; p{i}=1")).collect();
        assert_eq!(media_type(&format!("text/plain{many}")).as_deref(), Some("text/plain"));
        assert_eq!(media_type(&format!("text/plain{many}; P0=2")), None);
    }
}
