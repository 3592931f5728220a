//! OAuth 2.0 client credentials (`oauth2` in an HTTP client configuration), as upstream's
//! `oauth2RoundTripper` over Go's `clientcredentials`: a token is asked of `token_url` with a
//! form-encoded `grant_type=client_credentials` (with `scope` and `endpoint_params`), the
//! client id and secret as basic auth (then, if that is refused, in the form: Go's auto-detected
//! auth style), and sent as `Authorization: <token_type> <access_token>`.
//!
//! Tokens are cached per configuration and client secret, in one process-wide table, until
//! 10 s before they expire (Go's `expiryDelta`); a token without `expires_in` is kept until
//! the configuration or the secret changes. Every thread that sends with the same
//! configuration (remote read workers, the notifier, remote write senders, scrapes) shares one
//! token, and while one of them fetches it, the others wait for its answer instead of asking
//! too; a failed fetch is the answer of the callers that waited for it, and the next caller
//! asks again (as Go does at every request while it has no token). Scrapes, which must not
//! block their shard, fetch on a thread of their own, one at a time per configuration
//! ([`Slot::lookup`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyrite_core::config::{basic_credentials, OAuth2, SecretError};
use serde::Deserialize as _;

/// A token is renewed this long before it expires.
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// The most of a token answer that is read (as Go's client).
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum OAuth2Error {
    #[error("unable to read oauth2 client secret: {0}")]
    Secret(#[from] SecretError),
    #[error("oauth2: cannot overwrite parameter {0:?}")]
    Parameter(String),
    #[error("oauth2: token request to {url}: {error}")]
    Request { url: String, error: String },
    #[error("oauth2: cannot fetch token: {status}\nResponse: {body}")]
    Status { status: u16, body: String },
    #[error("oauth2: {code:?} {description:?}")]
    Refused { code: String, description: String },
    #[error("oauth2: cannot parse response: {0}")]
    Answer(String),
    #[error("oauth2: server response missing access_token")]
    NoToken,
}

impl OAuth2Error {
    /// Whether the token endpoint answered with a refusal (worth asking again with the
    /// credentials in the form), rather than not answering at all.
    fn refused(&self) -> bool {
        matches!(self, OAuth2Error::Status { .. } | OAuth2Error::Refused { .. })
    }
}

/// A token, as its `Authorization` header value.
#[derive(Clone)]
struct Token {
    authorization: String,
    expires: Option<Instant>,
}

impl Token {
    fn fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now + EXPIRY_DELTA < at)
    }
}

/// Where the client id and secret go in the token request.
#[derive(Clone, Copy, PartialEq)]
enum Credentials {
    BasicAuth,
    Form,
}

/// One configuration's token, how its endpoint takes the credentials once known, and how its
/// last fetch failed.
#[derive(Default)]
struct Entry {
    token: Option<Token>,
    style: Option<Credentials>,
    failure: Option<(Instant, String)>,
}

/// A configuration's entry, held while a token is fetched (the threads wanting it wait for it),
/// and whether a caller that must not block has claimed the next fetch.
#[derive(Default)]
pub struct Slot {
    entry: Mutex<Entry>,
    claimed: AtomicBool,
}

type Key = (OAuth2, String);

static TOKENS: Mutex<Option<HashMap<Key, Arc<Slot>>>> = Mutex::new(None);

/// The `Authorization` header value for a request with `config`: its cached token, or a new
/// one asked for within `timeout`.
pub fn authorization(config: &OAuth2, timeout: Duration) -> Result<String, OAuth2Error> {
    let (slot, secret) = slot_of(config)?;
    slot.authorization(config, &secret, timeout)
}

/// `config`'s slot and client secret (read now).
pub fn slot_of(config: &OAuth2) -> Result<(Arc<Slot>, String), OAuth2Error> {
    let secret = config.client_secret(&crate::files::read_text)?;
    Ok((slot(config, &secret), secret))
}

/// The table's slot for `config` with `secret`, made if there is none.
fn slot(config: &OAuth2, secret: &str) -> Arc<Slot> {
    let mut tokens = TOKENS.lock().unwrap_or_else(PoisonError::into_inner);
    let tokens = tokens.get_or_insert_with(HashMap::new);
    // Forget the tokens of configurations no one is asking for that have expired.
    let now = Instant::now();
    tokens.retain(|_, s| {
        Arc::strong_count(s) > 1 || s.entry.try_lock().is_ok_and(|e| e.token.as_ref().is_some_and(|t| t.fresh(now)))
    });
    tokens.entry((config.clone(), secret.to_string())).or_default().clone()
}

/// What a caller that must not block finds in a slot.
pub enum Lookup {
    /// A fresh token's `Authorization`.
    Token(String),
    /// A fetch that ended after the caller began looking failed so.
    Failed(String),
    /// Another fetch is under way: look again shortly.
    Wait,
    /// This caller fetches, on a thread of its own; the others wait until the claim is dropped.
    Fetch(Claim),
}

/// The claim to a slot's next fetch, released when dropped (also when the thread meant to fetch
/// could not start).
pub struct Claim(Arc<Slot>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.claimed.store(false, Ordering::Release);
    }
}

impl Slot {
    /// The token, fetched within `timeout` unless a fresh one is cached; a failure is kept for
    /// the callers waiting on this fetch.
    pub fn authorization(&self, config: &OAuth2, secret: &str, timeout: Duration) -> Result<String, OAuth2Error> {
        let mut entry = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = entry.token.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(token.authorization.clone());
        }
        let fetched = match entry.style {
            Some(style) => fetch(config, secret, style, timeout).map(|token| (token, style)),
            None => match fetch(config, secret, Credentials::BasicAuth, timeout) {
                Ok(token) => Ok((token, Credentials::BasicAuth)),
                Err(e) if e.refused() => {
                    fetch(config, secret, Credentials::Form, timeout).map(|token| (token, Credentials::Form))
                }
                Err(e) => Err(e),
            },
        };
        match fetched {
            Ok((token, style)) => {
                entry.style = Some(style);
                entry.token = Some(token.clone());
                entry.failure = None;
                Ok(token.authorization)
            }
            Err(e) => {
                entry.failure = Some((Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Without waiting (a scrape on its shard): the fresh token, the failure of a fetch that
    /// ended after `since`, or whether to wait for another caller's fetch or to fetch. At most
    /// one such caller fetches at a time, so a token endpoint that hangs or refuses costs one
    /// thread per configuration, not one per scrape.
    pub fn lookup(self: &Arc<Self>, since: Instant) -> Lookup {
        let Ok(entry) = self.entry.try_lock() else { return Lookup::Wait };
        if let Some(token) = entry.token.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Lookup::Token(token.authorization.clone());
        }
        let claimed = self.claimed.load(Ordering::Acquire);
        match &entry.failure {
            Some((at, why)) if *at > since && !claimed => return Lookup::Failed(why.clone()),
            _ => {}
        }
        match self.claimed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Lookup::Fetch(Claim(self.clone())),
            Err(_) => Lookup::Wait,
        }
    }
}

/// Asks the token endpoint for a token.
fn fetch(config: &OAuth2, secret: &str, style: Credentials, timeout: Duration) -> Result<Token, OAuth2Error> {
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    let scope = config.scopes.join(" ");
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    for (name, value) in &config.endpoint_params {
        match form.iter_mut().find(|(n, _)| n == name) {
            // Go lets `grant_type` be replaced, for servers that want another.
            Some(param) if name == "grant_type" => param.1 = value,
            Some(_) => return Err(OAuth2Error::Parameter(name.clone())),
            None => form.push((name, value)),
        }
    }
    let url = config.token_url.as_str();
    let failed = |error: String| OAuth2Error::Request { url: url.into(), error };
    let mut headers = Vec::new();
    match style {
        Credentials::BasicAuth => {
            let escape = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            headers.push(("Authorization".to_string(), basic_credentials(&escape(&config.client_id), &escape(secret))));
        }
        Credentials::Form => {
            if !config.client_id.is_empty() {
                form.push(("client_id", &config.client_id));
            }
            if !secret.is_empty() {
                form.push(("client_secret", secret));
            }
        }
    }
    // The client's credentials go to the token endpoint's host only, as Go's client keeps
    // them from a redirect elsewhere.
    let host = |u: &str| url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_string));
    let for_url = |to: &str, _: &str| Ok(if host(to) == host(url) { headers.clone() } else { Vec::new() });
    let response = super::send(&config.token_client(), "POST", url, timeout, &for_url, super::Payload::Form(&form))
        .map_err(failed)?;
    let status = response.status();
    let media = response.content_type().to_ascii_lowercase();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(response.into_reader(), MAX_ANSWER_BYTES), &mut body)
        .map_err(|e| failed(e.to_string()))?;
    let refusal = || OAuth2Error::Status { status, body: String::from_utf8_lossy(&body).into_owned() };
    let answer = match parse(&media, &body) {
        Ok(answer) => answer,
        Err(_) if !(200..300).contains(&status) => return Err(refusal()),
        Err(e) => return Err(OAuth2Error::Answer(e)),
    };
    if let Some(code) = answer.error {
        return Err(OAuth2Error::Refused { code, description: answer.error_description.unwrap_or_default() });
    }
    if !(200..300).contains(&status) {
        return Err(refusal());
    }
    let token = answer.access_token.filter(|t| !t.is_empty()).ok_or(OAuth2Error::NoToken)?;
    let kind = match answer.token_type.as_deref().unwrap_or("") {
        "" => "Bearer".to_string(),
        t if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        t if t.eq_ignore_ascii_case("mac") => "MAC".to_string(),
        t if t.eq_ignore_ascii_case("basic") => "Basic".to_string(),
        t => t.to_string(),
    };
    Ok(Token { authorization: format!("{kind} {token}"), expires: expiry(answer.expires_in, Instant::now()) })
}

/// When a token given at `now` with `expires_in` seconds expires: never without a lifetime (or
/// with 0, or one past what the clock can hold); already with a negative one, as Go reads it
/// (such a token is asked for again at every request).
fn expiry(expires_in: Option<i64>, now: Instant) -> Option<Instant> {
    match expires_in? {
        0 => None,
        s if s < 0 => Some(now),
        s => now.checked_add(Duration::from_secs(s.unsigned_abs())),
    }
}

/// The fields of a token answer that matter.
#[derive(Default, serde::Deserialize)]
struct Answer {
    access_token: Option<String>,
    token_type: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `expires_in` as a number or, as some servers send it, a string of one.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Ok(n.as_i64()),
        serde_json::Value::String(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// A token answer: a form for `application/x-www-form-urlencoded` and `text/plain` (as Go
/// reads them), JSON otherwise.
fn parse(media: &str, body: &[u8]) -> Result<Answer, String> {
    if matches!(media, "application/x-www-form-urlencoded" | "text/plain") {
        let mut answer = Answer::default();
        for (name, value) in form_urlencoded::parse(body) {
            let value = Some(value.into_owned());
            match name.as_ref() {
                "access_token" => answer.access_token = value,
                "token_type" => answer.token_type = value,
                "expires_in" => answer.expires_in = value.and_then(|v| v.parse().ok()),
                "error" => answer.error = value.filter(|v| !v.is_empty()),
                "error_description" => answer.error_description = value,
                _ => {}
            }
        }
        return Ok(answer);
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_json_or_forms() {
        let a =
            parse("application/json", br#"{"access_token":"t","token_type":"bearer","expires_in":"3600"}"#).unwrap();
        assert_eq!((a.access_token.as_deref(), a.expires_in), (Some("t"), Some(3600)));
        let a = parse("application/x-www-form-urlencoded", b"access_token=a%20b&expires_in=60&scope=x").unwrap();
        assert_eq!((a.access_token.as_deref(), a.expires_in, a.token_type), (Some("a b"), Some(60), None));
        let a = parse("", br#"{"error":"invalid_client","error_description":"no"}"#).unwrap();
        assert_eq!(a.error.as_deref(), Some("invalid_client"));
        assert!(parse("application/json", b"<html>").is_err());
    }

    #[test]
    fn tokens_are_renewed_ten_seconds_before_they_expire() {
        let now = Instant::now();
        let token = |expires| Token { authorization: String::new(), expires };
        assert!(token(None).fresh(now));
        assert!(token(Some(now + Duration::from_secs(11))).fresh(now));
        assert!(!token(Some(now + Duration::from_secs(10))).fresh(now));
    }

    #[test]
    fn a_lifetime_past_the_clock_is_no_expiry() {
        let now = Instant::now();
        assert_eq!(expiry(Some(60), now), Some(now + Duration::from_secs(60)));
        assert_eq!(expiry(Some(0), now), None);
        assert_eq!(expiry(Some(i64::MAX), now), None);
        assert_eq!(expiry(Some(-5), now), Some(now));
        assert!(!Token { authorization: String::new(), expires: expiry(Some(-5), now) }.fresh(now));
    }
}
