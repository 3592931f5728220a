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
    let mut names: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(media);
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        if !is_token(&name) || names.contains(&name) {
            return None;
        }
        names.push(name);
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
}
