//! The AWS shared files: credentials (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`, sections `[name]`) and config (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`, sections `[profile name]` and `[default]`). A profile's keys are looked up
//! in the credentials file first, then in the config file, as the SDKs merge them. A file that
//! does not exist is empty; one that cannot be read is an error.
//!
//! The format is INI as the SDKs read it: `#` and `;` start comment lines, keys are
//! case-insensitive, and the indented lines under a key with no value (nested settings such
//! as `s3 =`) belong to that key and are skipped.

use std::collections::HashMap;

use super::environment::Environment;
use super::SigV4Error;

/// The profile used when none is named in `sigv4` or `AWS_PROFILE`.
pub const DEFAULT: &str = "default";

type Sections = HashMap<String, HashMap<String, String>>;

/// Both shared files, parsed.
#[derive(Debug, Default)]
pub struct SharedFiles {
    credentials: Sections,
    config: Sections,
    /// Where they were read from, for errors.
    pub paths: [String; 2],
}

impl SharedFiles {
    /// The files `env` points at.
    pub fn load(env: &Environment) -> Result<SharedFiles, SigV4Error> {
        let home = env.get("HOME").unwrap_or("");
        let credentials_path =
            env.get("AWS_SHARED_CREDENTIALS_FILE").map_or_else(|| format!("{home}/.aws/credentials"), str::to_string);
        let config_path = env.get("AWS_CONFIG_FILE").map_or_else(|| format!("{home}/.aws/config"), str::to_string);
        let credentials = parse(&read(&credentials_path)?, |section| Some(section.to_string()));
        let config = parse(&read(&config_path)?, |section| match section.strip_prefix("profile ") {
            Some(name) => Some(name.trim().to_string()),
            None => (section == DEFAULT).then(|| section.to_string()),
        });
        Ok(SharedFiles { credentials, config, paths: [credentials_path, config_path] })
    }

    /// Whether either file has a section for `profile`.
    pub fn has_profile(&self, profile: &str) -> bool {
        self.credentials.contains_key(profile) || self.config.contains_key(profile)
    }

    /// `key` of `profile`: from the credentials file, else the config file.
    pub fn get(&self, profile: &str, key: &str) -> Option<&str> {
        [&self.credentials, &self.config]
            .into_iter()
            .find_map(|sections| sections.get(profile)?.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn read(path: &str) -> Result<String, SigV4Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(SigV4Error::File { path: path.to_string(), reason: e.to_string() }),
    }
}

/// Sections of `text` by the profile name `profile_of` gives their header (`None`: not a
/// profile, its keys ignored).
fn parse(text: &str, profile_of: impl Fn(&str) -> Option<String>) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    let mut nested = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if nested && raw.starts_with(char::is_whitespace) {
            continue;
        }
        nested = false;
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = header.split_whitespace().collect::<Vec<_>>().join(" ");
            current = profile_of(&header);
            if let Some(name) = &current {
                sections.entry(name.clone()).or_default();
            }
            continue;
        }
        let (Some(profile), Some((key, value))) = (&current, line.split_once('=')) else { continue };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        nested = value.is_empty();
        sections.entry(profile.clone()).or_default().insert(key, value.to_string());
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_both_files_credentials_first() {
        let dir = std::env::temp_dir().join(format!("pyrite-sigv4-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (credentials, config) = (dir.join("credentials"), dir.join("config"));
        std::fs::write(
            &credentials,
            "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n\n[team]\nAWS_Access_Key_Id=AKIDTEAM\naws_secret_access_key = s3cr3t\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile team]\nregion=us-west-2\naws_access_key_id = IGNORED\ns3 =\n  region = nested\n[team]\nregion = not-a-profile\n",
        )
        .unwrap();
        let env = Environment::from_vars([
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ]);
        let files = SharedFiles::load(&env).unwrap();
        assert_eq!(files.get("team", "aws_access_key_id"), Some("AKIDTEAM"));
        assert_eq!(files.get("team", "region"), Some("us-west-2"));
        assert_eq!(files.get("default", "region"), Some("eu-west-1"));
        assert_eq!(files.get("default", "aws_secret_access_key"), None);
        assert!(files.has_profile("team") && !files.has_profile("other"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_are_empty() {
        let env = Environment::from_vars([("HOME", "/nonexistent/pyrite")]);
        let files = SharedFiles::load(&env).unwrap();
        assert!(!files.has_profile(DEFAULT));
        assert_eq!(files.paths[0], "/nonexistent/pyrite/.aws/credentials");
    }
}
