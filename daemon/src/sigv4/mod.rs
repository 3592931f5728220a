//! AWS Signature Version 4 for `remote_write` with `sigv4` (Amazon Managed Service for
//! Prometheus), with credentials found as the AWS SDKs find them. Upstream's equivalent is
//! `github.com/prometheus/sigv4` over aws-sdk-go-v2; this is a small implementation of the
//! parts it uses rather than an AWS SDK crate.
//!
//! * [`sign`] — the algorithm, a pure function (checked against AWS's test vectors);
//! * [`credentials`] — the credential chain and its cache; it reads [`profile`] files, asks
//!   the [`container`] credentials endpoint, and assumes roles through [`sts`];
//! * [`Signer`] — what the remote-write sender uses: built once per queue from
//!   [`SigV4Settings`] (config load), then `sign` per request from any thread.
//!
//! ```ignore
//! let signer = Signer::new(&settings)?; // region and first credentials, or an error now
//! for (name, value) in signer.sign("POST", url, &headers, &body)? {
//!     request = request.set(&name, &value);
//! }
//! ```
//!
//! The headers passed to `sign` must be those sent (`Content-Encoding`, `Content-Type`,
//! `X-Prometheus-Remote-Write-Version`, ...), the body the bytes sent with a `Content-Length`,
//! and the URL the one requested: its host (or a `Host` header passed) and path are signed.
//! Requests are signed for the service `aps` in the resolved region, with the time of the call.

pub mod container;
pub mod credentials;
pub mod environment;
pub mod profile;
pub mod sign;
pub mod sts;

#[cfg(test)]
mod peer_tests;

use std::time::SystemTime;

use credentials::Provider;
use environment::Environment;

/// The `sigv4` block of a `remote_write` entry, as upstream has it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SigV4Settings {
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub use_fips_sts_endpoint: bool,
    /// The service signed for; `aps` (Amazon Managed Service for Prometheus) when None.
    pub service_name: Option<String>,
}

impl std::fmt::Debug for SigV4Settings {
    /// All but the secret key, which stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Settings")
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<secret>"))
            .field("profile", &self.profile)
            .field("role_arn", &self.role_arn)
            .field("use_fips_sts_endpoint", &self.use_fips_sts_endpoint)
            .field("service_name", &self.service_name)
            .finish()
    }
}

/// Why a request could not be signed, or a signer not built.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("region not configured in sigv4 or in default credentials chain")]
    NoRegion,
    #[error(
        "no SigV4 credentials: none in sigv4, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile {profile:?} of the \
         shared credentials and config files, or a container credentials endpoint"
    )]
    NoCredentials { profile: String },
    #[error("failed to get shared config profile, {0}")]
    ProfileNotFound(String),
    #[error("unable to read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("container credentials endpoint {url}: {reason}")]
    Container { url: String, reason: String },
    #[error("STS AssumeRole of {role_arn} at {url}: {reason}")]
    AssumeRole { role_arn: String, url: String, reason: String },
}

/// Signs requests for a service (`aps` by default) with credentials kept fresh; shared by the
/// sender's threads.
pub struct Signer {
    region: String,
    service: String,
    credentials: Provider,
}

/// The service remote write signs for unless told otherwise: Amazon Managed Service for
/// Prometheus.
const SERVICE: &str = "aps";

impl Signer {
    /// A signer for `settings` with the process's environment. Like upstream it fails now,
    /// at config load, when no region or no credentials are found (for `role_arn`: the
    /// credentials the role is assumed with; the role itself is assumed at the first request).
    /// A container endpoint is asked here, so this blocks for up to its timeout.
    pub fn new(settings: &SigV4Settings) -> Result<Signer, SigV4Error> {
        Signer::with_environment(settings, &Environment::process())
    }

    /// [`Signer::new`] with the environment variables of `env`.
    pub fn with_environment(settings: &SigV4Settings, env: &Environment) -> Result<Signer, SigV4Error> {
        let region = credentials::region(settings, env)?;
        let mut provider = credentials::chain(settings, env)?;
        provider.credentials(SystemTime::now())?;
        if let Some(role_arn) = settings.role_arn.as_deref().filter(|r| !r.is_empty()) {
            let endpoint = sts::endpoint(env, &region, settings.use_fips_sts_endpoint);
            provider = Provider::assume_role(sts::AssumeRole::new(role_arn, &endpoint, &region), provider);
        }
        let service = settings.service_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| SERVICE.to_string());
        Ok(Signer { region, service, credentials: provider })
    }

    /// The region requests are signed for.
    #[cfg(test)]
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers to add to a request of `method` to `url` with `headers` and `body`:
    /// `X-Amz-Date`, `X-Amz-Security-Token` with temporary credentials, `Authorization`.
    /// Fetches new credentials first when the cached ones are about to expire.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SigV4Error> {
        let now = SystemTime::now();
        let credentials = self.credentials.credentials(now)?;
        sign::sign(&sign::Request { method, url, headers, body }, &credentials, &self.region, &self.service, now)
    }
}
