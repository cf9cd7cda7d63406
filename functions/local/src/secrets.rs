//! Dev secrets: generated on first start into `DATA/secrets.json` (mode 0600) so the gateway
//! runs with no configuration; the environment overrides each of them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wabridge_core::auth::{ApiKeys, KeySpec};
use wabridge_core::config;
use wabridge_core::media::settings::WABRIDGE_MEDIA_LINK_KEY;

use crate::error::CliError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Secrets {
    pub app_secret: String,
    pub verify_token: String,
    /// The `admin` key (id `default`).
    pub api_key: String,
    /// More keys with scopes (`wabridge_core::auth`); `WABRIDGE_API_KEYS` (JSON) replaces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<KeySpec>,
    /// Signs media links (`WABRIDGE_MEDIA_LINK_KEY`); added to an older file on its next start.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_link_key: String,
    /// The numbers registry's secrets by key name (each number's `token_key`, its target's
    /// `crm.secrets`); an environment variable of the same name overrides one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, String>,
}

impl Secrets {
    /// Every API key `serve` accepts. A bad key list (unknown scope, short key, duplicate)
    /// stops the start, naming `WABRIDGE_API_KEYS`.
    pub fn keys(&self) -> Result<ApiKeys, CliError> {
        let keys = match env_nonempty(config::WABRIDGE_API_KEYS) {
            Some(json) => ApiKeys::parse(Some(&self.api_key), Some(&json))?,
            None => ApiKeys::from_specs(Some(&self.api_key), self.api_keys.clone())?,
        };
        Ok(keys)
    }

    /// A secret of the numbers registry by its key name: the environment, else `tokens`.
    pub fn named(&self, key: &str) -> Option<String> {
        env_nonempty(key).or_else(|| self.tokens.get(key).filter(|v| !v.is_empty()).cloned())
    }
}

pub fn path(data: &Path) -> PathBuf {
    data.join("secrets.json")
}

fn random_hex() -> String {
    // Two v4 UUIDs: 244 bits from the OS CSPRNG.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads the stored secrets, if the file exists.
pub fn read(data: &Path) -> Result<Option<Secrets>, CliError> {
    let file = path(data);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CliError::SecretsFile {
                path: file,
                problem: wabridge_core::redact::json_problem(&e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::io("read", file)(e)),
    }
}

/// The secrets `serve` runs with: the stored ones (generated and printed once if absent), each
/// overridden by its environment variable when set.
pub fn load_or_generate(data: &Path) -> Result<Secrets, CliError> {
    let stored = match read(data)? {
        Some(s) => s,
        None => {
            let s = Secrets {
                app_secret: random_hex(),
                verify_token: random_hex(),
                api_key: random_hex(),
                api_keys: Vec::new(),
                media_link_key: random_hex(),
                tokens: BTreeMap::new(),
            };
            write_new(data, &s)?;
            println!(
                "generated dev secrets in {} (shown once):",
                path(data).display()
            );
            println!("  {}={}", config::WHATSAPP_APP_SECRET, s.app_secret);
            println!("  {}={}", config::WHATSAPP_VERIFY_TOKEN, s.verify_token);
            println!("  {}={}", config::WABRIDGE_API_KEY, s.api_key);
            s
        }
    };
    let stored = if stored.media_link_key.is_empty() {
        let s = Secrets {
            media_link_key: random_hex(),
            ..stored
        };
        replace(data, &s)?;
        s
    } else {
        stored
    };
    Ok(Secrets {
        media_link_key: env_nonempty(WABRIDGE_MEDIA_LINK_KEY).unwrap_or(stored.media_link_key),
        app_secret: env_nonempty(config::WHATSAPP_APP_SECRET).unwrap_or(stored.app_secret),
        verify_token: env_nonempty(config::WHATSAPP_VERIFY_TOKEN).unwrap_or(stored.verify_token),
        api_key: env_nonempty(config::WABRIDGE_API_KEY).unwrap_or(stored.api_key),
        api_keys: stored.api_keys,
        tokens: stored.tokens,
    })
}

/// The app secret for `sign` / `post`: env first, else the data dir's secrets file.
pub fn app_secret(data: &Path) -> Result<String, CliError> {
    if let Some(s) = env_nonempty(config::WHATSAPP_APP_SECRET) {
        return Ok(s);
    }
    match read(data)? {
        Some(s) => Ok(s.app_secret),
        None => Err(CliError::NoAppSecret {
            data: data.to_path_buf(),
            path: path(data),
        }),
    }
}

/// Rewrites the secrets file with a key it lacked: written beside it, then renamed over it.
fn replace(data: &Path, secrets: &Secrets) -> Result<(), CliError> {
    let file = path(data);
    let next = data.join("secrets.json.next");
    let _ = std::fs::remove_file(&next);
    write_to(&next, secrets)?;
    std::fs::rename(&next, &file).map_err(CliError::io("replace", file))
}

fn write_new(data: &Path, secrets: &Secrets) -> Result<(), CliError> {
    write_to(&path(data), secrets)
}

fn write_to(file: &Path, secrets: &Secrets) -> Result<(), CliError> {
    let file = file.to_path_buf();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&file).map_err(CliError::io("create", &file))?;
    let text = serde_json::to_vec_pretty(secrets).map_err(|source| CliError::Json {
        what: "the secrets",
        source,
    })?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(CliError::io("write", file))
}
