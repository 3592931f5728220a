//! `role_arn`: the role assumed with STS `AssumeRole`, a SigV4-signed form POST
//! (`Action=AssumeRole&DurationSeconds=900&RoleArn=...&RoleSessionName=...&Version=2011-06-15`)
//! to the regional endpoint `https://sts.<region>.amazonaws.com/` (`sts-fips.` with
//! `use_fips_sts_endpoint`), or to `AWS_ENDPOINT_URL_STS` (else `AWS_ENDPOINT_URL`) when set,
//! as the SDKs allow. The answer is XML; its `Credentials` hold the role's temporary keys.
//!
//! 900 s is aws-sdk-go-v2's default duration for an assumed role, and the session is named
//! `pyrite-<unix ms>` where the SDK uses `aws-go-sdk-<unix ns>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::credentials::Expiring;
use super::environment::Environment;
use super::sign::{self, Credentials};
use super::SigV4Error;

/// How long a request to STS may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds the assumed role's credentials last.
const DURATION_SECS: u32 = 900;

/// The STS endpoint for `region`.
pub fn endpoint(env: &Environment, region: &str, fips: bool) -> String {
    if let Some(url) = env.first(&["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]) {
        return url.to_string();
    }
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://sts{}.{region}.{domain}/", if fips { "-fips" } else { "" })
}

/// A role to assume at an endpoint.
#[derive(Clone, Debug)]
pub struct AssumeRole {
    role_arn: String,
    url: String,
    region: String,
}

impl AssumeRole {
    pub fn new(role_arn: &str, url: &str, region: &str) -> AssumeRole {
        AssumeRole { role_arn: role_arn.to_string(), url: url.to_string(), region: region.to_string() }
    }

    /// The role's credentials, asked with `source`'s.
    pub fn fetch(&self, source: &Credentials, now: SystemTime) -> Result<Expiring, SigV4Error> {
        let error =
            |reason: String| SigV4Error::AssumeRole { role_arn: self.role_arn.clone(), url: self.url.clone(), reason };
        let session = format!("pyrite-{}", now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()));
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRole")
            .append_pair("DurationSeconds", &DURATION_SECS.to_string())
            .append_pair("RoleArn", &self.role_arn)
            .append_pair("RoleSessionName", &session)
            .append_pair("Version", "2011-06-15")
            .finish();
        let headers =
            vec![("Content-Type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string())];
        let request = sign::Request { method: "POST", url: &self.url, headers: &headers, body: body.as_bytes() };
        let mut http = crate::http_client::request(&Default::default(), "POST", &self.url, TIMEOUT).map_err(error)?;
        for (name, value) in headers.iter().chain(&sign::sign(&request, source, &self.region, "sts", now)?) {
            http = http.set(name, value);
        }
        let answer = match http.send_bytes(body.as_bytes()) {
            Ok(response) => response.into_string().map_err(|e| error(e.to_string()))?,
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let reason = match (element(&text, "Code"), element(&text, "Message")) {
                    (Some(code), Some(message)) => format!("status {status}: {code}: {message}"),
                    _ => format!("status {status}: {}", text.trim()),
                };
                return Err(error(reason));
            }
            Err(e) => return Err(error(e.to_string())),
        };
        parse(&answer).map_err(error)
    }
}

/// The credentials of an `AssumeRoleResponse`.
fn parse(xml: &str) -> Result<Expiring, String> {
    let credentials = element(xml, "Credentials").ok_or("no Credentials in the answer")?;
    let field = |name: &str| element(&credentials, name).ok_or(format!("no {name} in the answer's Credentials"));
    let expiration = field("Expiration")?;
    let ms = pyrite_core::calendar::parse_rfc3339(&expiration).ok_or(format!("invalid Expiration {expiration:?}"))?;
    Ok(Expiring {
        credentials: Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: Some(field("SessionToken")?),
        },
        expires: Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    })
}

/// The text of the first `<name>` element of `xml` (its content, entities decoded). STS's
/// answers are small and flat enough that this is all the XML reading they need.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_regional_unless_overridden() {
        let none = Environment::default();
        assert_eq!(endpoint(&none, "eu-west-1", false), "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(endpoint(&none, "us-east-1", true), "https://sts-fips.us-east-1.amazonaws.com/");
        assert_eq!(endpoint(&none, "cn-north-1", false), "https://sts.cn-north-1.amazonaws.com.cn/");
        let env = Environment::from_vars([("AWS_ENDPOINT_URL", "http://a/"), ("AWS_ENDPOINT_URL_STS", "http://b/")]);
        assert_eq!(endpoint(&env, "eu-west-1", false), "http://b/");
    }

    #[test]
    fn an_assume_role_response_gives_temporary_credentials() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJal/K7+KEY</SecretAccessKey>
      <SessionToken>AQoD&amp;token=</SessionToken>
      <Expiration>2026-12-03T19:15:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;
        let fetched = parse(xml).unwrap();
        assert_eq!(fetched.credentials.access_key_id, "ASIAEXAMPLE");
        assert_eq!(fetched.credentials.secret_access_key, "wJal/K7+KEY");
        assert_eq!(fetched.credentials.session_token.as_deref(), Some("AQoD&token="));
        assert_eq!(fetched.expires, Some(UNIX_EPOCH + Duration::from_secs(1_796_325_300)));
        assert!(parse("<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>").is_err());
    }
}
