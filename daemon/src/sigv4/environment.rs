//! The environment variables the credential chain reads, taken once when a signer is built,
//! so that what it found does not change under it and tests can give their own.

use std::collections::HashMap;

/// A snapshot of environment variables; an empty value counts as unset, as in the AWS SDKs.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// This process's environment now.
    pub fn process() -> Environment {
        Environment::from_vars(std::env::vars())
    }

    pub fn from_vars<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Environment {
        Environment { vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name`, unless unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    pub fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| self.get(name))
    }
}
