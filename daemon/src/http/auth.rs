//! Basic authentication against the web configuration's `basic_auth_users` (bcrypt hashes), as
//! exporter-toolkit checks it.
//!
//! bcrypt costs tens of milliseconds per check by design, so it never runs on a shard: one
//! `bcrypt` thread takes the checks in turn (upstream serializes them with a mutex for the same
//! reason) while the shard goes on serving. A connection has at most one request in flight, and
//! a check whose connection closed before its turn is skipped, so `--web.max-connections`
//! bounds the queue. Outcomes are cached, keyed on the user, the stored
//! hash and a SHA-256 digest of the password (upstream keys on the plain password), so a
//! client that sends the same credentials again costs a hash and a lookup, and editing a
//! user's hash invalidates its entries. An unknown user is checked against a fixed hash, so the
//! answer takes as long as for a known one and does not tell which users exist.
//!
//! The header is untrusted input: anything but well-formed `Basic` credentials is simply not
//! authenticated, and nothing longer than [`MAX_HEADER_BYTES`] is decoded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine as _;
use subtle::ConstantTimeEq as _;

/// The bcrypt hash of "fakepassword" that upstream checks unknown users against.
const DECOY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Longer `Authorization` values are refused undecoded (bcrypt reads at most 72 bytes).
const MAX_HEADER_BYTES: usize = 1024;

/// Upstream's cache size; when full, the whole cache is dropped.
const CACHE_ENTRIES: usize = 100;

/// bcrypt uses the first 72 bytes of a password; Go refuses longer ones, and so does Pyrite.
const MAX_PASSWORD_BYTES: usize = 72;

type Digest = [u8; 32];

/// One check for the bcrypt thread.
struct Job {
    hash: String,
    password: Vec<u8>,
    reply: flume::Sender<bool>,
}

/// Checks credentials; shared by every shard.
pub struct Authenticator {
    jobs: flume::Sender<Job>,
    /// The digest of (user, hash, password) and whether they match; at most [`CACHE_ENTRIES`],
    /// scanned whole (see [`Authenticator::cached`]).
    cache: Mutex<Vec<(Digest, bool)>>,
}

impl Authenticator {
    /// Starts the bcrypt thread.
    pub fn start() -> std::io::Result<Authenticator> {
        let (jobs, queue) = flume::unbounded::<Job>();
        std::thread::Builder::new().name("bcrypt".into()).spawn(move || {
            // A check whose request is gone is skipped: clients that send credentials and
            // hang up at once would otherwise queue checks without bound.
            for job in queue.iter().filter(|job| !job.reply.is_disconnected()) {
                let ok = job.password.len() <= MAX_PASSWORD_BYTES
                    && bcrypt::verify(&job.password, &job.hash).unwrap_or(false);
                let _ = job.reply.send(ok);
            }
        })?;
        Ok(Authenticator { jobs, cache: Mutex::new(Vec::new()) })
    }

    /// Whether `authorization` (the request's header, if any) names one of `users` with the
    /// right password.
    pub async fn check(&self, users: &BTreeMap<String, String>, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let known = std::str::from_utf8(&user).ok().and_then(|u| users.get(u));
        let hash = known.map_or(DECOY_HASH, String::as_str);
        let key = cache_key(&user, hash, &password);
        if let Some(ok) = self.cached(&key) {
            return ok && known.is_some();
        }
        let (reply, answer) = flume::bounded(1);
        let job = Job { hash: hash.to_string(), password, reply };
        let ok = self.jobs.send(job).is_ok() && answer.recv_async().await.unwrap_or(false);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.push((key, ok));
        ok && known.is_some()
    }

    /// The cached outcome for `key`. Every entry is compared, each in constant time, so the
    /// lookup's timing tells neither which entry matched nor how much of one a guess shares.
    fn cached(&self, key: &Digest) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().fold(None, |found, (k, ok)| if bool::from(k.ct_eq(key)) { Some(*ok) } else { found })
    }
}

/// The SHA-256 of user, hash and password, each prefixed by its length.
fn cache_key(user: &[u8], hash: &str, password: &[u8]) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// User and password of a `Basic` header value, as Go's `Request.BasicAuth` reads it: the
/// scheme case-insensitively, standard base64, split at the first colon; bytes, not
/// necessarily UTF-8.
fn credentials(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    const PREFIX: &[u8] = b"basic ";
    if header.len() > MAX_HEADER_BYTES || header.len() < PREFIX.len() {
        return None;
    }
    let (scheme, encoded) = header.split_at(PREFIX.len());
    if !scheme.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` to completion on a monoio runtime.
    fn run<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("runtime").block_on(f)
    }

    fn basic(user: &[u8], password: &[u8]) -> Vec<u8> {
        let mut plain = user.to_vec();
        plain.push(b':');
        plain.extend_from_slice(password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(plain)).into_bytes()
    }

    #[test]
    fn credentials_are_read_as_go_reads_them() {
        assert_eq!(credentials(b"Basic YTpiOmM="), Some((b"a".to_vec(), b"b:c".to_vec())));
        assert_eq!(credentials(b"bAsIc YTpi"), Some((b"a".to_vec(), b"b".to_vec())));
        for bad in [&b"Bearer YTpi"[..], b"Basic", b"Basic !!!", b"Basic YWI=", b"", &[0xff; 2000]] {
            assert_eq!(credentials(bad), None, "{bad:?}");
        }
        assert_eq!(credentials(&basic(&[0xff, 0xfe], &[0x80])), Some((vec![0xff, 0xfe], vec![0x80])));
    }

    #[test]
    fn only_the_right_password_of_a_known_user_passes_and_outcomes_are_cached() {
        let auth = Authenticator::start().expect("bcrypt thread");
        let users = BTreeMap::from([("alice".to_string(), bcrypt::hash("s3cret", 4).expect("hash"))]);
        run(async {
            assert!(auth.check(&users, Some(&basic(b"alice", b"s3cret"))).await);
            assert!(!auth.check(&users, Some(&basic(b"alice", b"wrong"))).await);
            assert!(!auth.check(&users, Some(&basic(b"bob", b"fakepassword"))).await, "the decoy hash lets nobody in");
            assert!(!auth.check(&users, Some(&basic(&[0xff], &[0xfe]))).await);
            assert!(!auth.check(&users, Some(&basic(b"alice", &[b'a'; 100]))).await);
            assert!(!auth.check(&users, None).await);
            assert_eq!(auth.cache.lock().unwrap().len(), 5);
            assert!(auth.check(&users, Some(&basic(b"alice", b"s3cret"))).await, "from the cache");
            let changed = BTreeMap::from([("alice".to_string(), bcrypt::hash("other", 4).expect("hash"))]);
            assert!(!auth.check(&changed, Some(&basic(b"alice", b"s3cret"))).await, "a new hash is checked anew");
        });
    }
}
