//! Reading settings by name: the one parser every setting goes through, and its error.

use std::time::Duration;

use super::{
    DEFAULT_WHATSAPP_API_URL, DEFAULT_WHATSAPP_API_VERSION, WHATSAPP_API_URL, WHATSAPP_API_VERSION,
};

/// A setting that is missing or does not parse. Each names the variable, so a process that
/// refuses to start says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is unset (or blank); `consequence` says what cannot work without it.
    #[error("{name} is not set: {consequence}")]
    Missing {
        name: &'static str,
        consequence: &'static str,
    },
    /// A setting is set to something unusable.
    #[error("{name} must be {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Reads settings by name through a lookup (the environment, or the secrets merged over it on
/// AWS). The one way settings are read: blank counts as unset, values are trimmed, and a value
/// that does not parse is an error naming the variable, never a silent default.
pub struct Settings<F: Fn(&str) -> Option<String>>(F);

impl Settings<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn env() -> Self {
        Settings(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub fn new(lookup: F) -> Self {
        Settings(lookup)
    }

    /// The trimmed value, `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value, or [`ConfigError::Missing`] saying what cannot work without it.
    pub fn required(
        &self,
        name: &'static str,
        consequence: &'static str,
    ) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or(ConfigError::Missing { name, consequence })
    }

    /// The Graph API base URL and version ([`WHATSAPP_API_URL`], [`WHATSAPP_API_VERSION`]),
    /// their defaults when unset; a URL that is not http(s) or a version not like `v23.0` is an
    /// error naming the variable.
    pub fn graph_api(&self) -> Result<(String, String), ConfigError> {
        let base = self.url(WHATSAPP_API_URL, DEFAULT_WHATSAPP_API_URL)?;
        let version = self
            .optional(WHATSAPP_API_VERSION)
            .unwrap_or_else(|| DEFAULT_WHATSAPP_API_VERSION.to_string());
        let valid = version.strip_prefix('v').is_some_and(|v| {
            v.split_once('.').is_some_and(|(major, minor)| {
                [major, minor]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
        });
        if !valid {
            return Err(ConfigError::Invalid {
                name: WHATSAPP_API_VERSION,
                value: version,
                expected: "a Graph API version such as v23.0",
            });
        }
        Ok((base, version))
    }

    /// An http(s) URL without a trailing slash; `default` when unset.
    pub fn url(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.optional(name).unwrap_or_else(|| default.to_string());
        match url::Url::parse(&value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Ok(value.trim_end_matches('/').to_string())
            }
            _ => Err(ConfigError::Invalid {
                name,
                value,
                expected: "an http:// or https:// URL",
            }),
        }
    }

    /// A duration (`7d`, `36h`, `90min`, `30s`) that `valid` accepts; `default` when unset.
    pub fn duration(
        &self,
        name: &'static str,
        default: Duration,
        expected: &'static str,
        valid: impl Fn(&Duration) -> bool,
    ) -> Result<Duration, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(&v)
                .ok()
                .filter(|d| valid(d))
                .ok_or(ConfigError::Invalid {
                    name,
                    value: v,
                    expected,
                }),
        }
    }

    /// A number (or anything `FromStr`) that `valid` accepts; `default` when unset.
    pub fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<T>()
                .ok()
                .filter(|n| valid(n))
                .ok_or(ConfigError::Invalid {
                    name,
                    value: v,
                    expected,
                }),
        }
    }
}

/// The CLI and the Lambdas' start-up report errors as text.
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}
