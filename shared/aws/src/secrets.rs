//! Secrets (app secret, verify token, access token, CRM token, API key), by their config names.
//!
//! On AWS they live in ONE Secrets Manager secret, a JSON object keyed by the names in
//! [`config::SECRET_NAMES`], whose ARN is `WABRIDGE_SECRETS_ARN`; the functions read it once
//! per cold start. When `WABRIDGE_SECRETS_ARN` is set, the secret store is the only source:
//! a name missing there is missing, never taken from the environment (secrets are not plain
//! environment variables on AWS). Without it (the local gateway, tests) the environment is used.
//! Values never reach a log: `Debug` prints names only.

use std::collections::HashMap;
use std::fmt;

use crate::sdk::SdkConfig;
use tokio::sync::OnceCell;

use crate::sdk::store_error;
use wabridge_core::config;
use wabridge_core::error::StoreError;

/// Where the values came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secrets Manager secret (its ARN or name).
    SecretsManager(String),
    /// Process environment (non-AWS runs only).
    Environment,
}

#[derive(Clone)]
pub struct Secrets {
    values: HashMap<String, String>,
    source: SecretSource,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.values.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Secrets")
            .field("source", &self.source)
            .field("names", &names)
            .finish()
    }
}

impl Secrets {
    /// Secrets from explicit values (tests, the local gateway's generated dev secrets).
    /// Empty values count as absent.
    pub fn from_map(values: HashMap<String, String>, source: SecretSource) -> Secrets {
        let values = values.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        Secrets { values, source }
    }

    /// The secret names of [`config::SECRET_NAMES`] present in the process environment.
    pub fn from_env() -> Secrets {
        let values = config::SECRET_NAMES
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect();
        Secrets::from_map(values, SecretSource::Environment)
    }

    /// Parses the secret's JSON object. String values are taken as they are; numbers and
    /// booleans as their JSON text; anything else is refused. Errors never quote values.
    pub fn parse_json(text: &str, source: SecretSource) -> Result<Secrets, StoreError> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| {
                StoreError::corrupt(format!(
                    "secret {source:?} is not a JSON object of names to strings (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
        let mut values = HashMap::with_capacity(object.len());
        for (name, value) in object {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(StoreError::corrupt(format!(
                        "secret {source:?}: value of {name} must be a string"
                    )))
                }
            };
            if !config::SECRET_NAMES.contains(&name.as_str()) {
                // A numbers registry's token and CRM keys (docs/numbers.md), or a typo.
                tracing::info!(%name, "secret holds a key that is no setting name");
            }
            values.insert(name, value);
        }
        Ok(Secrets::from_map(values, source))
    }

    /// Reads the JSON secret `secret_id` (ARN or name) from Secrets Manager.
    pub async fn from_secrets_manager(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<Secrets, StoreError> {
        let out = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| store_error("GetSecretValue", e))?;
        let text = out.secret_string().ok_or_else(|| {
            StoreError::corrupt(format!(
                "secret {secret_id} has no string value (binary secrets are not read)"
            ))
        })?;
        Secrets::parse_json(text, SecretSource::SecretsManager(secret_id.to_string()))
    }

    /// The secrets for this process: from Secrets Manager when `WABRIDGE_SECRETS_ARN` is set,
    /// else from the environment. On Lambda the ARN is required (fail closed), except under a
    /// local emulator (`AWS_SAM_LOCAL` or `AWS_ENDPOINT_URL` set).
    pub async fn load(sdk: &SdkConfig) -> Result<Secrets, StoreError> {
        match std::env::var(config::WABRIDGE_SECRETS_ARN)
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                let secrets = Secrets::from_secrets_manager(&client, &arn).await?;
                tracing::info!(names = ?secrets.names(), "secrets loaded from Secrets Manager");
                Ok(secrets)
            }
            // On Lambda the secret store is required; local emulators (`sam local`, or cargo
            // lambda against moto, both pointing the SDK elsewhere) may use the environment.
            None if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
                && std::env::var_os("AWS_SAM_LOCAL").is_none()
                && std::env::var_os("AWS_ENDPOINT_URL").is_none() =>
            {
                Err(StoreError::NotFound(format!(
                    "{} is not set: on Lambda secrets come from Secrets Manager only",
                    config::WABRIDGE_SECRETS_ARN
                )))
            }
            None => Ok(Secrets::from_env()),
        }
    }

    /// The value of a secret name (one of [`config::SECRET_NAMES`]), if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A configuration value by name: secret names (see [`config::SECRET_NAMES`]) from these
    /// secrets only, every other name from the process environment.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.lookup_in(name, |n| std::env::var(n).ok())
    }

    fn lookup_in(&self, name: &str, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        if config::SECRET_NAMES.contains(&name) {
            self.get(name).map(str::to_string)
        } else {
            env(name)
        }
    }

    /// The names present, sorted (safe to log).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.values.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn source(&self) -> &SecretSource {
        &self.source
    }
}

/// Reads the stack's secret again (a fresh read, not the cold start's copy): what a function
/// that re-reads the numbers registry uses for a new number's token.
pub type ReadSecret = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Secrets, String>> + Send>>
        + Send
        + Sync,
>;

/// A [`ReadSecret`] over [`Secrets::load`] with `sdk` (the Lambda's shared configuration).
pub fn reader(sdk: &'static SdkConfig) -> ReadSecret {
    std::sync::Arc::new(move || {
        Box::pin(async move { Secrets::load(sdk).await.map_err(|e| e.to_string()) })
    })
}

static SECRETS: OnceCell<Secrets> = OnceCell::const_new();

/// The process-wide secrets, loaded once (per Lambda cold start) with [`Secrets::load`] over
/// the shared SDK configuration. A failed load is not cached: the next call tries again.
pub async fn secrets() -> Result<&'static Secrets, StoreError> {
    SECRETS
        .get_or_try_init(|| async { Secrets::load(crate::sdk::lambda_config().await).await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_json_object_and_never_prints_values() {
        let s = Secrets::parse_json(
            r#"{"WHATSAPP_APP_SECRET":"s3cr3t-value","WHATSAPP_VERIFY_TOKEN":"tok","WABRIDGE_API_KEY":"","HUBSPOT_TOKEN":null,"N":42}"#,
            SecretSource::SecretsManager("arn:x".into()),
        )
        .unwrap();
        assert_eq!(s.get(config::WHATSAPP_APP_SECRET), Some("s3cr3t-value"));
        assert_eq!(s.get(config::WHATSAPP_VERIFY_TOKEN), Some("tok"));
        assert_eq!(s.get(config::WABRIDGE_API_KEY), None, "empty is absent");
        assert_eq!(s.get(config::HUBSPOT_TOKEN), None);
        assert_eq!(s.get("N"), Some("42"));
        // Secret names never come from the environment once a store was read.
        let env = |n: &str| Some(format!("env:{n}"));
        assert_eq!(s.lookup_in(config::HUBSPOT_TOKEN, env), None);
        assert_eq!(
            s.lookup_in(config::WHATSAPP_APP_SECRET, env).as_deref(),
            Some("s3cr3t-value")
        );
        assert_eq!(
            s.lookup_in(config::WABRIDGE_TABLE, env).as_deref(),
            Some("env:WABRIDGE_TABLE")
        );
        let debug = format!("{s:?}");
        assert!(debug.contains("WHATSAPP_APP_SECRET"));
        assert!(
            !debug.contains("s3cr3t-value") && !debug.contains("tok\""),
            "{debug}"
        );
    }

    #[test]
    fn refuses_what_is_not_an_object_of_strings_without_quoting_it() {
        let src = || SecretSource::SecretsManager("arn:x".into());
        let err = Secrets::parse_json("hunter2", src()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(Secrets::parse_json(r#"["a"]"#, src()).is_err());
        let err =
            Secrets::parse_json(r#"{"WHATSAPP_APP_SECRET":{"v":"hunter2"}}"#, src()).unwrap_err();
        assert!(err.to_string().contains("WHATSAPP_APP_SECRET"));
        assert!(!err.to_string().contains("hunter2"));
    }
}
