//! Request parameters as Prometheus's API reads them with Go's `Request.FormValue`: for POST,
//! PUT and PATCH, an `application/x-www-form-urlencoded` body before the query string, or a
//! `multipart/form-data` body after it; times as RFC 3339 or Unix seconds; durations as
//! Prometheus durations or seconds.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, Method};
use pyrite_core::config::Duration;

use super::response::ApiError;

/// All parameters of a request, in the order Go's `Request.Form` holds them, repeated keys
/// kept (`match[]`).
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Where the values of a multipart body start in `pairs` (its length if there are none).
    multipart_from: usize,
    /// Why the first malformed pair was left out, as Go's `ParseForm` says it.
    malformed: Option<String>,
}

/// Parameters read from a request; the rest are ignored. A 10 MiB form of `a&a&…` is five
/// million pairs, each two allocations, which would hold half a gigabyte per request.
const MAX_PARAMS: usize = 100_000;

/// Adds the pairs of `input` (`a=1&b=2`) to `pairs`, up to [`MAX_PARAMS`], as Go's
/// `url.ParseQuery` reads them: `+` is a space, a pair with a `;` or a malformed `%` escape is
/// left out (and the first such noted in `malformed`), so that `query=up%zz` is no query
/// rather than `up % zz`.
fn parse_query(input: &[u8], pairs: &mut Vec<(String, String)>, malformed: &mut Option<String>) {
    for pair in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_PARAMS {
            return;
        }
        if pair.contains(&b';') {
            // Go notes this one even after another.
            *malformed = Some("invalid semicolon separator in query".to_string());
            continue;
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        match unescape(key).and_then(|k| Ok((k, unescape(value)?))) {
            Ok(kv) => pairs.push(kv),
            Err(why) => {
                malformed.get_or_insert(why);
            }
        }
    }
}

/// A form key or value unescaped as Go's `url.QueryUnescape` does; bytes that are not UTF-8
/// become U+FFFD.
fn unescape(s: &[u8]) -> Result<String, String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let digits = s.get(i + 1..i + 3).and_then(|d| Some(hex(d[0])? * 16 + hex(d[1])?));
                let Some(byte) = digits else {
                    let bad = String::from_utf8_lossy(&s[i..s.len().min(i + 3)]).into_owned();
                    return Err(format!("invalid URL escape {bad:?}"));
                };
                out.push(byte as u8);
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The body's form, if the method and content type make Go read one.
enum BodyForm<'a> {
    UrlEncoded,
    Multipart { boundary: &'a str },
}

impl<'a> BodyForm<'a> {
    fn of(method: &Method, headers: &'a HeaderMap) -> Option<BodyForm<'a>> {
        if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            return None;
        }
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let (kind, rest) = content_type.split_once(';').unwrap_or((content_type, ""));
        match kind.trim().to_ascii_lowercase().as_str() {
            "application/x-www-form-urlencoded" => Some(BodyForm::UrlEncoded),
            "multipart/form-data" => {
                let boundary = rest.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"'))
                })?;
                Some(BodyForm::Multipart { boundary })
            }
            _ => None,
        }
    }
}

impl Params {
    pub fn from_request(method: &Method, query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs = Vec::new();
        let mut malformed = None;
        let form = BodyForm::of(method, headers);
        if let Some(BodyForm::UrlEncoded) = form {
            parse_query(body, &mut pairs, &mut malformed);
        }
        parse_query(query.unwrap_or("").as_bytes(), &mut pairs, &mut malformed);
        let multipart_from = pairs.len();
        if let Some(BodyForm::Multipart { boundary }) = form {
            let room = MAX_PARAMS - pairs.len();
            pairs.extend(multipart_values(body, boundary).into_iter().flatten().take(room));
        }
        Params { pairs, multipart_from, malformed }
    }

    /// These parameters without a multipart body's, as upstream's handlers that call
    /// `ParseForm` before `FormValue` see them (series, rules, federation, deletion); as they
    /// do, refused if a pair was malformed (`error parsing form values: …`).
    pub fn without_multipart(mut self) -> Result<Params, String> {
        if let Some(why) = self.malformed.take() {
            return Err(format!("error parsing form values: {why}"));
        }
        self.pairs.truncate(self.multipart_from);
        Ok(self)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A required timestamp parameter, in ms, clamped to the range time arithmetic keeps to.
    pub fn time(&self, key: &str) -> Result<i64, ApiError> {
        self.time_unclamped(key).map(clamp_time)
    }

    /// A required timestamp parameter, in ms as given (unclamped), for the checks upstream
    /// makes on the times before any clamping.
    pub fn time_unclamped(&self, key: &str) -> Result<i128, ApiError> {
        let v = self.get(key).unwrap_or("");
        parse_time_unclamped(v)
            .ok_or_else(|| ApiError::bad_param(key, format!("cannot parse {v:?} to a valid timestamp")))
    }

    /// An optional timestamp parameter, in ms, with a default.
    pub fn time_or(&self, key: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(_) => self.time(key),
        }
    }

    /// A required duration parameter, in ms.
    pub fn duration(&self, key: &str) -> Result<i64, ApiError> {
        parse_duration(self.get(key).unwrap_or("")).map_err(|e| ApiError::bad_param(key, e))
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    /// Reads the query string and, for a form POST, PUT or PATCH, the body; any other body is
    /// not read, as Go's `ParseForm` leaves it.
    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let (method, headers) = (req.method().clone(), req.headers().clone());
        let body = match BodyForm::of(&method, &headers) {
            Some(_) => super::collect_body(req.into_body(), super::MAX_FORM_BYTES)
                .await
                .map_err(|e| ApiError::bad_data(e.message))?,
            None => Bytes::new(),
        };
        Ok(Params::from_request(&method, query.as_deref(), &headers, &body))
    }
}

/// The text fields of a `multipart/form-data` body, in order, as Go's `multipart.Reader` reads
/// them: parts named by `Content-Disposition: form-data; name="…"`, without a file name. `None`
/// if the body is malformed, whose fields Go then ignores all of.
fn multipart_values(body: &[u8], boundary: &str) -> Option<Vec<(String, String)>> {
    let delimiter = format!("--{boundary}");
    let before_delimiter = format!("\r\n--{boundary}");
    let next_delimiter = memchr::memmem::Finder::new(&before_delimiter);
    // The preamble before the first delimiter is ignored.
    let first = memchr::memmem::find(body, delimiter.as_bytes())?;
    let mut rest = &body[first + delimiter.len()..];
    let mut values = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(values);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let headers_end = memchr::memmem::find(rest, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&rest[..headers_end]).ok()?;
        let content = &rest[headers_end + 4..];
        let end = next_delimiter.find(content)?;
        if let Some(name) = form_field_name(headers) {
            values.push((name, String::from_utf8_lossy(&content[..end]).into_owned()));
        }
        rest = &content[end + 2 + delimiter.len()..];
    }
}

/// The field name of a multipart part's headers; `None` for a file or an unnamed part.
fn form_field_name(headers: &str) -> Option<String> {
    let disposition = headers.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-disposition").then_some(v)
    })?;
    let mut parts = disposition.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let mut name = None;
    for param in parts {
        let (k, v) = param.split_once('=')?;
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "filename" => return None,
            "name" => name = Some(v),
            _ => {}
        }
    }
    name.filter(|n| !n.is_empty())
}

pub use pyrite_core::calendar::parse_timestamp as parse_time;
use pyrite_core::calendar::{clamp_time, parse_timestamp_unclamped as parse_time_unclamped};

/// A duration parameter upstream's API refuses, with its message.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DurationParamError {
    /// Seconds whose nanoseconds do not fit in an i64 (Go's `time.Duration`).
    #[error("cannot parse {0:?} to a valid duration. It overflows int64")]
    Overflows(String),
    /// Neither seconds nor a Prometheus duration (one past the range included).
    #[error("cannot parse {0:?} to a valid duration")]
    Invalid(String),
}

/// Seconds (float) or a Prometheus duration, to ms, bounded as upstream's API bounds them.
pub fn parse_duration(s: &str) -> Result<i64, DurationParamError> {
    if let Some(secs) = pyrite_core::strconv::parse_float(s) {
        // Go turns NaN into an undefined int64; it is refused here. Infinities overflow.
        if secs.is_nan() {
            return Err(DurationParamError::Invalid(s.to_string()));
        }
        let nanos = secs * 1e9;
        if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
            return Err(DurationParamError::Overflows(s.to_string()));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    Duration::parse(s).map(Duration::millis).map_err(|_| DurationParamError::Invalid(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: Method, query: &str, content_type: &str, body: &str) -> Params {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        Params::from_request(&method, Some(query), &headers, &Bytes::from(body.to_string()))
    }

    #[test]
    fn a_form_body_comes_before_the_query_string_as_in_gos_form_value() {
        let form = "application/x-www-form-urlencoded";
        let p = params(Method::POST, "query=1&match[]=a", form, "query=2&match[]=b");
        assert_eq!(p.get("query"), Some("2"));
        assert_eq!(p.all("match[]"), ["b", "a"]);
        assert_eq!(params(Method::GET, "query=1", form, "query=2").get("query"), Some("1"), "GET has no form body");
        assert_eq!(params(Method::GET, "", form, "query=2").get("query"), None);
    }

    #[test]
    fn multipart_fields_come_after_the_query_string_and_files_are_not_fields() {
        let body = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\n1+1\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n\
                    --XyZ\r\ncontent-disposition: form-data; name=\"match[]\"\r\nContent-Type: text/plain\r\n\r\nup\r\nx\r\n\
                    --XyZ--\r\n";
        let p = params(Method::POST, "time=1", "multipart/form-data; boundary=\"XyZ\"", body);
        assert_eq!((p.get("query"), p.get("time"), p.get("f")), (Some("1+1"), Some("1"), None));
        assert_eq!(p.all("match[]"), ["up\r\nx"]);
        let p = params(Method::POST, "query=3", "multipart/form-data; boundary=XyZ", body);
        assert_eq!(p.get("query"), Some("3"), "the query string first");
        assert_eq!(p.without_multipart().expect("well formed").all("match[]"), Vec::<&str>::new());
        let cut = &body[..body.len() - 12];
        assert_eq!(params(Method::POST, "", "multipart/form-data; boundary=XyZ", cut).get("query"), None, "malformed");
    }

    #[test]
    fn malformed_pairs_are_left_out_as_go_leaves_them_out() {
        let p = params(Method::GET, "query=up%zz&time=1&a;b=c&match[]=%7Bx%3D%22y+z%22%7D&%=1&e=%4", "", "");
        assert_eq!((p.get("query"), p.get("time"), p.get("a")), (None, Some("1"), None));
        assert_eq!(p.all("match[]"), vec!["{x=\"y z\"}"]);
        let refused = p.without_multipart().err();
        assert_eq!(refused.as_deref(), Some("error parsing form values: invalid semicolon separator in query"));
        let refused = params(Method::GET, "query=up%zz&e=%4", "", "").without_multipart().err();
        assert_eq!(refused.as_deref(), Some("error parsing form values: invalid URL escape \"%zz\""));
        let body = params(Method::POST, "", "application/x-www-form-urlencoded", "query=1%2");
        assert_eq!(body.get("query"), None);
        assert_eq!(params(Method::GET, "q=%ff", "", "").get("q"), Some("\u{fffd}"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1_0"), Ok(10_000), "Go's digit separators");
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("x"), Err(DurationParamError::Invalid("x".into())));
    }

    #[test]
    fn durations_past_go_nanoseconds_are_refused_as_upstream_refuses_them() {
        assert_eq!(parse_duration("9223372036"), Ok(9_223_372_036_000));
        assert_eq!(parse_duration("292y"), Ok(292 * 365 * 86_400_000));
        for s in ["9223372037", "1e10", "-1e10", "+Inf"] {
            assert_eq!(parse_duration(s), Err(DurationParamError::Overflows(s.into())), "{s}");
        }
        assert_eq!(
            parse_duration("300y").unwrap_err().to_string(),
            "cannot parse \"300y\" to a valid duration",
            "a duration past the range is not one, as upstream says"
        );
    }
}
