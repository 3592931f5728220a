//! The credential chain, resolved as aws-sdk-go-v2's `config.LoadDefaultConfig` (which
//! upstream Prometheus uses) resolves it, first match wins:
//!
//! 1. `access_key` and `secret_key` of the `sigv4` block;
//! 2. the `profile` of the `sigv4` block, when named (it must exist): its keys, else a
//!    container endpoint;
//! 3. `AWS_ACCESS_KEY_ID` (or `AWS_ACCESS_KEY`), `AWS_SECRET_ACCESS_KEY` (or `AWS_SECRET_KEY`),
//!    `AWS_SESSION_TOKEN`;
//! 4. the profile `AWS_PROFILE` names (it must exist), else `default`: its
//!    `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` in the shared files;
//! 5. the container credentials endpoint ([`super::container`]).
//!
//! Then `role_arn`, if set, is assumed through STS with those credentials ([`super::sts`]).
//! Credentials that expire (container, STS) are cached and fetched again 5 minutes before they
//! expire, under a lock, so that the threads signing at once fetch them once.
//!
//! The region is `region` of the `sigv4` block, else `AWS_REGION`, else `AWS_DEFAULT_REGION`,
//! else the `region` of the profile in the shared files.
//!
//! Not read (upstream's SDK would): EC2 instance metadata, web identity tokens
//! (`AWS_WEB_IDENTITY_TOKEN_FILE`), SSO, `credential_process`, and `role_arn`/`source_profile`
//! inside a profile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::container::Endpoint;
use super::environment::Environment;
use super::profile::{self, SharedFiles};
use super::sign::Credentials;
use super::sts::AssumeRole;
use super::{SigV4Error, SigV4Settings};

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Credentials and when they expire (`None`: never).
#[derive(Clone, Debug)]
pub struct Expiring {
    pub credentials: Credentials,
    pub expires: Option<SystemTime>,
}

/// Where credentials come from.
enum Source {
    Static(Arc<Credentials>),
    Container(Endpoint),
    AssumeRole(AssumeRole, Box<Provider>),
}

/// A source of credentials with its cache; `Sync`, for the sender's threads.
pub struct Provider {
    source: Source,
    cached: Mutex<Option<(Arc<Credentials>, Option<SystemTime>)>>,
}

impl Provider {
    fn new(source: Source) -> Provider {
        Provider { source, cached: Mutex::new(None) }
    }

    fn fixed(credentials: Credentials) -> Provider {
        Provider::new(Source::Static(Arc::new(credentials)))
    }

    /// `role` assumed with `source`'s credentials.
    pub fn assume_role(role: AssumeRole, source: Provider) -> Provider {
        Provider::new(Source::AssumeRole(role, Box::new(source)))
    }

    /// Credentials valid at `now` for at least [`REFRESH_BEFORE`], fetched if the cached ones
    /// are not.
    pub fn credentials(&self, now: SystemTime) -> Result<Arc<Credentials>, SigV4Error> {
        if let Source::Static(credentials) = &self.source {
            return Ok(credentials.clone());
        }
        // A thread that panicked holding the lock left the cache whole: it is replaced only
        // by a complete answer.
        let mut cached = self.cached.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((credentials, expires)) = &*cached {
            if expires.is_none_or(|expires| now + REFRESH_BEFORE < expires) {
                return Ok(credentials.clone());
            }
        }
        let fetched = match &self.source {
            Source::Static(_) => unreachable!("answered above"),
            Source::Container(endpoint) => endpoint.fetch()?,
            Source::AssumeRole(role, source) => role.fetch(&*source.credentials(now)?, now)?,
        };
        let credentials = Arc::new(fetched.credentials);
        *cached = Some((credentials.clone(), fetched.expires));
        Ok(credentials)
    }
}

/// The chain's provider for `settings` and `env` (without `role_arn`).
pub fn chain(settings: &SigV4Settings, env: &Environment) -> Result<Provider, SigV4Error> {
    if let (Some(access_key), Some(secret_key)) = (nonempty(&settings.access_key), nonempty(&settings.secret_key)) {
        return Ok(Provider::fixed(Credentials {
            access_key_id: access_key.to_string(),
            secret_access_key: secret_key.to_string(),
            session_token: None,
        }));
    }
    if let Some(name) = nonempty(&settings.profile) {
        return from_profile(name, true, env);
    }
    let access_key = env.first(&["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]);
    let secret_key = env.first(&["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]);
    if let (Some(access_key), Some(secret_key)) = (access_key, secret_key) {
        return Ok(Provider::fixed(Credentials {
            access_key_id: access_key.to_string(),
            secret_access_key: secret_key.to_string(),
            session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
        }));
    }
    match env.get("AWS_PROFILE") {
        Some(name) => from_profile(name, true, env),
        None => from_profile(profile::DEFAULT, false, env),
    }
}

/// The region for `settings` and `env`.
pub fn region(settings: &SigV4Settings, env: &Environment) -> Result<String, SigV4Error> {
    if let Some(region) = nonempty(&settings.region).or_else(|| env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"])) {
        return Ok(region.to_string());
    }
    let name = nonempty(&settings.profile).or_else(|| env.get("AWS_PROFILE")).unwrap_or(profile::DEFAULT);
    SharedFiles::load(env)?.get(name, "region").map(str::to_string).ok_or(SigV4Error::NoRegion)
}

/// Credentials of profile `name`: its keys, else a container endpoint. A profile named
/// explicitly must exist.
fn from_profile(name: &str, explicit: bool, env: &Environment) -> Result<Provider, SigV4Error> {
    let files = SharedFiles::load(env)?;
    if explicit && !files.has_profile(name) {
        return Err(SigV4Error::ProfileNotFound(format!(
            "profile {name:?} is in neither {} nor {}",
            files.paths[0], files.paths[1]
        )));
    }
    if let (Some(access_key), Some(secret_key)) =
        (files.get(name, "aws_access_key_id"), files.get(name, "aws_secret_access_key"))
    {
        return Ok(Provider::fixed(Credentials {
            access_key_id: access_key.to_string(),
            secret_access_key: secret_key.to_string(),
            session_token: files.get(name, "aws_session_token").map(str::to_string),
        }));
    }
    match Endpoint::from_env(env)? {
        Some(endpoint) => Ok(Provider::new(Source::Container(endpoint))),
        None => Err(SigV4Error::NoCredentials { profile: name.to_string() }),
    }
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SigV4Settings {
        SigV4Settings::default()
    }

    fn key_of(provider: &Provider) -> String {
        provider.credentials(SystemTime::now()).unwrap().access_key_id.clone()
    }

    #[test]
    fn static_keys_come_before_the_environment_and_the_environment_before_the_default_profile() {
        let dir = std::env::temp_dir().join(format!("pyrite-sigv4-chain-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n[other]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=s\n",
        )
        .unwrap();
        let home = dir.to_str().unwrap();
        let with_env =
            Environment::from_vars([("HOME", home), ("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        let keys = SigV4Settings { access_key: Some("AKIDCONF".into()), secret_key: Some("s".into()), ..settings() };
        assert_eq!(key_of(&chain(&keys, &with_env).unwrap()), "AKIDCONF");
        assert_eq!(key_of(&chain(&settings(), &with_env).unwrap()), "AKIDENV");
        // A profile named in the configuration comes before the environment, as in the SDK.
        let named = SigV4Settings { profile: Some("other".into()), ..settings() };
        assert_eq!(key_of(&chain(&named, &with_env).unwrap()), "AKIDOTHER");
        let home_only = Environment::from_vars([("HOME", home)]);
        assert_eq!(key_of(&chain(&settings(), &home_only).unwrap()), "AKIDFILE");
        let missing = SigV4Settings { profile: Some("missing".into()), ..settings() };
        assert!(matches!(chain(&missing, &home_only), Err(SigV4Error::ProfileNotFound(_))));
        let env_profile = Environment::from_vars([("HOME", home), ("AWS_PROFILE", "missing")]);
        assert!(matches!(chain(&settings(), &env_profile), Err(SigV4Error::ProfileNotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_any_source_there_are_no_credentials_and_no_region() {
        let env = Environment::from_vars([("HOME", "/nonexistent/pyrite")]);
        assert!(matches!(chain(&settings(), &env), Err(SigV4Error::NoCredentials { .. })));
        assert!(matches!(region(&settings(), &env), Err(SigV4Error::NoRegion)));
        let env = Environment::from_vars([("HOME", "/nonexistent/pyrite"), ("AWS_DEFAULT_REGION", "eu-west-3")]);
        assert_eq!(region(&settings(), &env).unwrap(), "eu-west-3");
        let configured = SigV4Settings { region: Some("us-east-2".into()), ..settings() };
        assert_eq!(region(&configured, &env).unwrap(), "us-east-2");
    }
}
