//! Request parameters as Prometheus's API reads them: from the query string and, for POST, from
//! an `application/x-www-form-urlencoded` body; times as RFC 3339 or Unix seconds; durations as
//! Prometheus durations or seconds.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use pyrite_core::config::Duration;

use super::response::ApiError;

/// All parameters of a request, in order, repeated keys kept (`match[]`).
pub struct Params(Vec<(String, String)>);

/// Parameters read from a request; the rest are ignored. A 10 MiB form of `a&a&…` is five
/// million pairs, each two allocations, which would hold half a gigabyte per request.
const MAX_PARAMS: usize = 100_000;

impl Params {
    pub fn from_request(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .take(MAX_PARAMS)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let room = MAX_PARAMS - pairs.len();
            pairs.extend(form_urlencoded::parse(body).take(room).map(|(k, v)| (k.into_owned(), v.into_owned())));
        }
        Params(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A required timestamp parameter, in ms.
    pub fn time(&self, key: &str) -> Result<i64, ApiError> {
        let v = self.get(key).unwrap_or("");
        parse_time(v).ok_or_else(|| ApiError::bad_param(key, format!("cannot parse {v:?} to a valid timestamp")))
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
        let v = self.get(key).unwrap_or("");
        parse_duration(v).ok_or_else(|| ApiError::bad_param(key, format!("cannot parse {v:?} to a valid duration")))
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    /// Reads the query string and, for a form POST, the body.
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| ApiError::bad_data(e.body_text()))?;
        Ok(Params::from_request(query.as_deref(), &headers, &body))
    }
}

pub use pyrite_core::calendar::parse_timestamp as parse_time;

/// Seconds (float) or a Prometheus duration, to ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        return (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    Duration::parse(s).ok().map(Duration::millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("0.5"), Some(500));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("x"), None);
    }
}
