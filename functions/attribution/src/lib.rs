//! The `attribution` Lambda behind its own Function URL: `POST /links` (tracked `wa.me` links
//! with QR codes) and `POST /conversions` (purchases back to Meta's Conversions API), over the
//! DynamoDB attribution store. Apart from ingest so that the webhook path links neither a QR
//! encoder nor an HTTP client.

use std::sync::Arc;

use wabridge_attribution::conversions::MetaConversions;
use wabridge_attribution::AttributionService;
use wabridge_aws::dynamo::attribution::DynamoAttribution;
use wabridge_aws::dynamo::audit::DynamoAudit;
use wabridge_aws::sdk::SdkConfig;
use wabridge_core::api::Api;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::audit::Audit;
use wabridge_core::auth::ApiKeys;
use wabridge_core::config;

pub use wabridge_aws::function_url::handle;

/// What the function reads at cold start (names from `wabridge_core::config`).
pub struct Settings {
    pub table: String,
    /// `WABRIDGE_API_KEY` and `WABRIDGE_API_KEYS` (secrets): both routes need an `admin` key;
    /// without any key they answer 503 (fail closed).
    pub api_keys: Arc<ApiKeys>,
    /// Attribution (`WABRIDGE_ATTRIBUTION` file, else the defaults).
    pub attribution: AttributionConfig,
    /// Meta's Conversions API (`META_DATASET_ID` + `WHATSAPP_ACCESS_TOKEN`), if configured.
    pub conversions: Option<MetaConversions>,
    /// `WABRIDGE_AUDIT_RETENTION_DAYS`: how long the audit lines of links and conversions are
    /// kept.
    pub audit_retention: std::time::Duration,
    /// `EVENTS_QUEUE_URL`: with it a conversion makes its conversation's outcome `converted`
    /// (written to the table, queued for crm-sync).
    pub events_queue_url: Option<String>,
    /// `WABRIDGE_CONVERSATION_IDLE_HOURS`, in ms.
    pub conversation_idle_ms: i64,
}

impl std::fmt::Debug for Settings {
    // By hand: the API key and the conversions token must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("table", &self.table)
            .field("api_keys", &self.api_keys)
            .field("conversions", &self.conversions.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the settings through `get` (secret names from the secret store, the rest from the
    /// environment). Errors name what is missing or unusable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let settings = config::Settings::new(&get);
        Ok(Settings {
            table: settings.required(
                config::WABRIDGE_TABLE,
                "links, codes and conversions live in the table",
            )?,
            api_keys: Arc::new(ApiKeys::from_lookup(|name| settings.optional(name))?),
            attribution: match settings.optional(config::WABRIDGE_ATTRIBUTION) {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| SettingsError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    AttributionConfig::from_toml(&text)?
                }
                None => AttributionConfig::default(),
            },
            conversions: MetaConversions::from_lookup(&get)?,
            audit_retention: wabridge_core::audit::retention(|name| settings.optional(name))?,
            events_queue_url: settings.optional(config::EVENTS_QUEUE_URL),
            conversation_idle_ms: wabridge_core::conversations::idle_ms(|name| {
                settings.optional(name)
            })?,
        })
    }
}

/// A setting the function cannot start with (it names the variable).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Setting(#[from] config::ConfigError),
    #[error("WABRIDGE_ATTRIBUTION: cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("WABRIDGE_ATTRIBUTION: {0}")]
    Attribution(#[from] wabridge_core::attribution::ConfigError),
}

/// The API this function serves: `/links`, `/conversions` and `/healthz`.
pub fn build_api(sdk: &SdkConfig, settings: Settings) -> Api {
    build_api_with_numbers(sdk, settings, None)
}

/// [`build_api`] with the table's numbers registry: a link's `from` names the number it opens a
/// chat with (422 `unknown_number` or `from_required`). None: `phone_number` or the config's.
pub fn build_api_with_numbers(
    sdk: &SdkConfig,
    settings: Settings,
    numbers: Option<Arc<wabridge_core::numbers::Numbers>>,
) -> Api {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let audit = Audit::new(Arc::new(
        DynamoAudit::new(dynamo.clone(), settings.table.clone())
            .with_retention(settings.audit_retention),
    ));
    let mut service = AttributionService::new(
        Arc::new(DynamoAttribution::new(dynamo, settings.table.clone())),
        Arc::new(settings.attribution),
        settings.conversions,
        settings.api_keys,
    )
    .with_audit(audit);
    if let Some(numbers) = numbers {
        service = service.with_numbers(numbers);
    }
    match settings.events_queue_url {
        Some(url) => {
            let engine = wabridge_aws::engine::AwsEngine::new(sdk, settings.table);
            service = service.with_conversations(
                engine.conversation_updates(settings.conversation_idle_ms, url),
            );
        }
        None => tracing::warn!(
            "{} is not set: conversions do not set their conversation's outcome",
            config::EVENTS_QUEUE_URL
        ),
    }
    Api::new().with_attribution(Arc::new(service))
}

/// Cold start: the shared SDK configuration, the secrets, the settings and the clients, once.
pub async fn cold_start() -> Result<Api, lambda_http::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let settings = Settings::from_lookup(|name| secrets.lookup(name))?;
    let registry = wabridge_aws::dynamo::numbers::DynamoNumbers::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &settings.table,
    );
    let numbers = registry.load().await?.map(Arc::new);
    let count = numbers.as_ref().map_or(0, |n| n.all().len());
    tracing::info!(table = %settings.table, numbers = count, "attribution ready");
    Ok(build_api_with_numbers(sdk, settings, numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_the_table_and_never_log_secrets() {
        let err = Settings::from_lookup(|_| None).unwrap_err();
        assert!(err.to_string().contains("WABRIDGE_TABLE"), "{err}");
        let s = Settings::from_lookup(|name| match name {
            "WABRIDGE_TABLE" => Some("t".to_string()),
            "WABRIDGE_API_KEY" => Some("secret-key-123".to_string()),
            "META_DATASET_ID" => Some("1234".to_string()),
            "WHATSAPP_ACCESS_TOKEN" => Some("secret-token-456".to_string()),
            _ => None,
        })
        .unwrap();
        assert!(s.conversions.is_some());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret-key-123") && !shown.contains("secret-token-456"),
            "{shown}"
        );
        let err = Settings::from_lookup(|name| match name {
            "WABRIDGE_TABLE" => Some("t".to_string()),
            "WABRIDGE_ATTRIBUTION" => Some("/nonexistent/attribution.toml".to_string()),
            _ => None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("WABRIDGE_ATTRIBUTION"), "{err}");
    }
}
