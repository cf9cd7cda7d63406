//! The CRM adapters: each implements `wabridge_core::crm::Crm` over a CRM's HTTP API (or, for
//! `local`, the embedded SQLite records table), behind its own cargo feature so a deployment
//! links only the CRMs it uses.
//!
//! May depend on `wabridge-core` (the port it implements), `reqwest` for the HTTP CRMs and
//! `wabridge-sqlite` for `local`; never on the AWS engine or a function crate.
//!
//! [`from_lookup`] is the one place that turns `CRM_KIND` and its settings into a client.

#[cfg(any(feature = "hubspot", feature = "kommo", feature = "salesforce"))]
pub mod batch;
#[cfg(any(
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
mod cache;
pub mod check;
#[cfg(any(feature = "pipedrive", feature = "kommo"))]
pub(crate) mod conversation_fields;
#[cfg(any(
    feature = "webhook",
    feature = "hubspot",
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
pub(crate) mod http;
#[cfg(feature = "hubspot")]
pub mod hubspot;
#[cfg(feature = "kommo")]
pub mod kommo;
#[cfg(feature = "local")]
pub mod local;
#[cfg(any(
    feature = "hubspot",
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
pub(crate) mod pace;
#[cfg(feature = "pipedrive")]
pub mod pipedrive;
#[cfg(feature = "webhook")]
pub mod relay;
#[cfg(feature = "salesforce")]
pub mod salesforce;
#[cfg(any(
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
mod skips;
#[cfg(any(
    feature = "hubspot",
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
pub(crate) mod timeline;
#[cfg(feature = "webhook")]
pub mod webhook;
#[cfg(feature = "zoho")]
pub mod zoho;
#[cfg(any(
    feature = "webhook",
    feature = "hubspot",
    feature = "pipedrive",
    feature = "zoho",
    feature = "kommo",
    feature = "salesforce"
))]
pub(crate) use http::{classify_status, transport_error};

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use wabridge_core::config;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenStore;

/// Every CRM kind there is, built into this binary or not.
pub const KNOWN: &[&str] = &[
    "local",
    "webhook",
    "hubspot",
    "pipedrive",
    "zoho",
    "kommo",
    "salesforce",
];

/// The CRM kinds this build carries (its cargo features).
pub const COMPILED: &[&str] = &[
    #[cfg(feature = "local")]
    "local",
    #[cfg(feature = "webhook")]
    "webhook",
    #[cfg(feature = "hubspot")]
    "hubspot",
    #[cfg(feature = "pipedrive")]
    "pipedrive",
    #[cfg(feature = "zoho")]
    "zoho",
    #[cfg(feature = "kommo")]
    "kommo",
    #[cfg(feature = "salesforce")]
    "salesforce",
];

/// Why a CRM client could not be built from the settings. Each names the variable to fix.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Setting(#[from] config::ConfigError),
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("CRM_KIND `{kind}` is not one of {}", KNOWN.join(", "))]
    Unknown { kind: String },
    #[error("CRM_KIND `{kind}` is not built into this binary (it carries: {})", COMPILED.join(", "))]
    NotCompiled { kind: String },
    #[error(
        "CRM_KIND=local needs the embedded engine's records store (only `wabridge serve` has one)"
    )]
    NoLocalStore,
    /// The HTTP client could not be built (TLS set-up).
    #[cfg(any(
        feature = "hubspot",
        feature = "webhook",
        feature = "pipedrive",
        feature = "zoho",
        feature = "kommo",
        feature = "salesforce"
    ))]
    #[error("cannot build the CRM's HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// The CRM field the mapping fills from the BSUID alone (`from = "bsuid"`): where an adapter
/// finds the contact of a person whose message carries no phone.
pub fn bsuid_field(mapping: &Mapping) -> Option<&str> {
    mapping
        .contact
        .iter()
        .find(|f| f.from.as_deref() == Some("bsuid"))
        .map(|f| f.to.as_str())
}

/// Whether `kind` (from [`config::crm_kind`]) names a CRM this build carries: checked before
/// anything that depends on the kind (its example mapping), so the error names `CRM_KIND`.
pub fn check_kind(kind: &str) -> Result<(), ConfigError> {
    match kind {
        _ if COMPILED.contains(&kind) => Ok(()),
        _ if KNOWN.contains(&kind) => Err(ConfigError::NotCompiled { kind: kind.into() }),
        _ => Err(ConfigError::Unknown { kind: kind.into() }),
    }
}

/// The engine's OAuth token store of a connection (by name): where the OAuth CRMs (Zoho,
/// Salesforce, Pipedrive and Kommo with OAuth) keep the tokens every process shares (`wabridge_sqlite::SqliteTokenStore` locally,
/// `wabridge_aws::dynamo::oauth_tokens::DynamoTokenStore` on AWS).
pub type TokenStores = Arc<dyn Fn(&str) -> Arc<dyn TokenStore> + Send + Sync>;

/// The CRM named by `CRM_KIND` (see [`config::crm_kind`] for the default), with its settings
/// and secrets read through `lookup`. `local` is the embedded engine's records CRM, built by
/// the caller that has the store (see `local::LocalCrm`); `media` is where a CRM that takes
/// files (HubSpot) reads stored media from. Without a token store: see [`from_lookup_with`].
pub fn from_lookup(
    mapping: &Mapping,
    local: Option<Arc<dyn Crm>>,
    media: Option<Arc<dyn wabridge_core::media::store::MediaStore>>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Crm>, ConfigError> {
    from_lookup_with(mapping, local, media, None, lookup)
}

/// [`from_lookup`] with the engine's OAuth token stores, which the OAuth CRMs (Zoho,
/// Salesforce, Kommo with OAuth) need.
pub fn from_lookup_with(
    mapping: &Mapping,
    local: Option<Arc<dyn Crm>>,
    media: Option<Arc<dyn wabridge_core::media::store::MediaStore>>,
    tokens: Option<TokenStores>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Crm>, ConfigError> {
    let kind = config::crm_kind(&lookup);
    let settings = config::Settings::new(lookup);
    let timeout = Duration::from_millis(settings.number(
        config::CRM_TIMEOUT_MS,
        config::DEFAULT_CRM_TIMEOUT_MS,
        "a whole number of milliseconds from 1 to 600000",
        |ms| (1..=600_000).contains(ms),
    )?);
    // Unused without the HTTP CRMs' features.
    let _ = (&timeout, mapping, &settings, &media, &tokens);
    match kind.as_str() {
        "local" if COMPILED.contains(&"local") => local.ok_or(ConfigError::NoLocalStore),
        #[cfg(feature = "webhook")]
        "webhook" => {
            let url = settings.required(
                config::CRM_WEBHOOK_URL,
                "CRM_KIND=webhook needs the URL to post to",
            )?;
            // Fail closed: unsigned records could be forged.
            let secret = settings.required(
                config::CRM_WEBHOOK_SECRET,
                "CRM_KIND=webhook signs every record with it",
            )?;
            Ok(Arc::new(webhook::WebhookCrm::new(&url, &secret, timeout)?))
        }
        #[cfg(feature = "hubspot")]
        "hubspot" => {
            let base = settings
                .optional(config::HUBSPOT_API_URL)
                .unwrap_or_else(|| config::DEFAULT_HUBSPOT_API_URL.to_string());
            let token = settings.required(
                config::HUBSPOT_TOKEN,
                "CRM_KIND=hubspot calls HubSpot with this private-app token",
            )?;
            let id_property = mapping
                .id_property
                .clone()
                .unwrap_or_else(|| "whatsapp_id".into());
            let crm = hubspot::HubSpotCrm::new(
                &base,
                &token,
                &id_property,
                mapping.effect_property.as_deref(),
                timeout,
            )?
            .with_bsuid_property(bsuid_field(mapping))
            .with_tickets(hubspot::ticket_fields::TicketSettings::from_settings(
                mapping, &settings,
            ))
            .with_deal_settings(hubspot::attribution::DealSettings::from_settings(&settings))
            .with_rate_limit(
                settings.number(
                    config::HUBSPOT_BURST_LIMIT,
                    hubspot::api::BURST_LIMIT,
                    "the portal's calls per 10 seconds, a whole number from 1 to 10000",
                    |n| (1..=10_000).contains(n),
                )?,
                hubspot::api::BURST_WINDOW,
            );
            let crm = match media {
                Some(store) => {
                    let retention =
                        wabridge_core::retention::content_retention(|n| settings.optional(n))?;
                    crm.with_media(store, retention)
                }
                None => crm,
            };
            Ok(Arc::new(crm))
        }
        #[cfg(feature = "pipedrive")]
        "pipedrive" => Ok(Arc::new(pipedrive::PipedriveCrm::from_settings(
            mapping,
            &settings,
            timeout,
            tokens.as_ref(),
        )?)),
        #[cfg(feature = "zoho")]
        "zoho" => {
            let tokens = tokens.ok_or(ConfigError::Invalid {
                name: config::CRM_KIND,
                reason: "zoho needs the engine's OAuth token store (this command has none)".into(),
            })?;
            Ok(Arc::new(zoho::ZohoCrm::from_settings(
                mapping, &settings, timeout, &tokens,
            )?))
        }
        #[cfg(feature = "kommo")]
        "kommo" => Ok(Arc::new(kommo::KommoCrm::from_settings(
            mapping,
            &settings,
            timeout,
            tokens.as_ref(),
        )?)),
        #[cfg(feature = "salesforce")]
        "salesforce" => {
            let tokens = tokens.ok_or(ConfigError::Invalid {
                name: config::CRM_KIND,
                reason: "salesforce needs the engine's OAuth token store (this command has none)"
                    .into(),
            })?;
            Ok(Arc::new(salesforce::SalesforceCrm::from_settings(
                mapping, &settings, timeout, &tokens,
            )?))
        }
        _ if KNOWN.contains(&kind.as_str()) => Err(ConfigError::NotCompiled { kind }),
        _ => Err(ConfigError::Unknown { kind }),
    }
}

#[cfg(all(test, feature = "webhook", feature = "hubspot"))]
mod tests {
    use super::*;

    fn build(pairs: &[(&str, &str)]) -> Result<Arc<dyn Crm>, ConfigError> {
        let mapping = Mapping::example("webhook").unwrap();
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(&mapping, None, None, move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn every_refusal_names_the_setting_to_fix() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CRM_KIND", "webhook")], "CRM_WEBHOOK_URL"),
            (
                &[
                    ("CRM_KIND", "webhook"),
                    ("CRM_WEBHOOK_URL", "https://crm.example/h"),
                ],
                "CRM_WEBHOOK_SECRET",
            ),
            (&[("CRM_KIND", "hubspot")], "HUBSPOT_TOKEN"),
            (
                &[
                    ("CRM_KIND", "hubspot"),
                    ("HUBSPOT_TOKEN", "pat"),
                    ("CRM_TIMEOUT_MS", "ten"),
                ],
                "CRM_TIMEOUT_MS",
            ),
            (
                &[
                    ("CRM_KIND", "hubspot"),
                    ("HUBSPOT_TOKEN", "pat"),
                    ("HUBSPOT_BURST_LIMIT", "0"),
                ],
                "HUBSPOT_BURST_LIMIT",
            ),
            (&[("CRM_KIND", "salesforce")], "salesforce"),
            // A secret of the wrong form is the secret's fault, not the URL's.
            (
                &[
                    ("CRM_KIND", "webhook"),
                    ("CRM_WEBHOOK_URL", "https://crm.example/h"),
                    ("CRM_WEBHOOK_SECRET", "whsec_***"),
                ],
                "CRM_WEBHOOK_SECRET: bad whsec_ base64",
            ),
            (
                &[
                    ("CRM_KIND", "webhook"),
                    ("CRM_WEBHOOK_URL", "ftp://crm.example/h"),
                    ("CRM_WEBHOOK_SECRET", "s"),
                ],
                "CRM_WEBHOOK_URL: must be http(s)",
            ),
            (
                &[
                    ("CRM_KIND", "hubspot"),
                    ("HUBSPOT_TOKEN", "pat"),
                    ("HUBSPOT_API_URL", "not a url"),
                ],
                "HUBSPOT_API_URL",
            ),
        ];
        for (pairs, named) in cases {
            let e = build(pairs).err().expect("refused");
            assert!(e.to_string().contains(named), "{pairs:?}: {e}");
        }
        // `local` (the default) needs the embedded store, which only `wabridge serve` has.
        assert!(matches!(
            build(&[]).err(),
            Some(ConfigError::NoLocalStore | ConfigError::NotCompiled { .. })
        ));
        let ok =
            build(&[("CRM_KIND", " HubSpot "), ("HUBSPOT_TOKEN", "pat-na1-x")]).expect("builds");
        assert_eq!(ok.kind(), "hubspot");
    }

    #[cfg(feature = "pipedrive")]
    #[tokio::test]
    async fn pipedrive_refusals_name_the_setting_and_never_echo_the_token() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CRM_KIND", "pipedrive")], "PIPEDRIVE_API_TOKEN"),
            (
                &[
                    ("CRM_KIND", "pipedrive"),
                    ("PIPEDRIVE_API_TOKEN", "tok-secret-123"),
                    ("PIPEDRIVE_BURST_LIMIT", "0"),
                ],
                "PIPEDRIVE_BURST_LIMIT",
            ),
            (
                &[
                    ("CRM_KIND", "pipedrive"),
                    ("PIPEDRIVE_API_TOKEN", "tok-secret-123"),
                    ("PIPEDRIVE_BURST_LIMIT", "fast"),
                ],
                "PIPEDRIVE_BURST_LIMIT",
            ),
            (
                &[
                    ("CRM_KIND", "pipedrive"),
                    ("PIPEDRIVE_API_TOKEN", "tok-secret-123"),
                    ("PIPEDRIVE_API_URL", "company.pipedrive.com"),
                ],
                "PIPEDRIVE_API_URL",
            ),
        ];
        for (pairs, named) in cases {
            let e = build(pairs).err().expect("refused").to_string();
            assert!(e.contains(named), "{pairs:?}: {e}");
            assert!(!e.contains("tok-secret-123"), "{e}");
        }
        let ok = build(&[
            ("CRM_KIND", "pipedrive"),
            ("PIPEDRIVE_API_TOKEN", "tok"),
            ("PIPEDRIVE_API_URL", "https://acme.pipedrive.com"),
            ("PIPEDRIVE_BURST_LIMIT", "80"),
        ])
        .expect("builds");
        assert_eq!(ok.kind(), "pipedrive");
    }
}
