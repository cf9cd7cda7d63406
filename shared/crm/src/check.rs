//! `wabridge crm check`: verifies the credentials and the custom fields the mapping needs
//! against the live CRM, and names whatever is missing, before events find out one by one.

use thiserror::Error;
use wabridge_core::config;
use wabridge_core::mapping::Mapping;

use crate::ConfigError;

/// What a check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// What was verified.
    pub ok: Vec<String>,
    /// What the CRM lacks that events need (they would wait or dead-letter without it).
    pub missing: Vec<String>,
    /// What the CRM lacks that is optional (left out of writes).
    pub optional: Vec<String>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
    }

    /// Sorts `wanted` names into ok / missing (or optional) by whether `has` them.
    #[cfg(any(
        feature = "hubspot",
        feature = "pipedrive",
        feature = "zoho",
        feature = "kommo",
        feature = "salesforce"
    ))]
    pub(crate) fn fields<'a>(
        &mut self,
        what: &str,
        wanted: impl IntoIterator<Item = &'a str>,
        has: impl Fn(&str) -> bool,
        required: bool,
    ) {
        let mut found = 0;
        for name in wanted {
            if has(name) {
                found += 1;
            } else if required {
                self.missing.push(format!("{what} `{name}`"));
            } else {
                self.optional.push(format!("{what} `{name}`"));
            }
        }
        if found > 0 {
            self.ok.push(format!("{found} {what}s found"));
        }
    }
}

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setting(#[from] config::ConfigError),
    /// `local` and `webhook` have no schema to check.
    #[error("CRM_KIND={0} has no credentials or fields to check (hubspot, pipedrive, zoho, kommo and salesforce do)")]
    NothingToCheck(String),
}

/// Checks the CRM named by `CRM_KIND`, with its settings read through `lookup`.
pub async fn check(
    mapping: &Mapping,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<CheckReport, CheckError> {
    check_with(mapping, None, lookup).await
}

/// [`check`] keeping Kommo's OAuth tokens in `tokens` (the data directory's store): its refresh
/// tokens are single-use, so the one a check's refresh rotates in must stay where `serve` finds
/// it. Without: in memory (a library caller's own refresh token).
pub async fn check_with(
    mapping: &Mapping,
    tokens: Option<crate::TokenStores>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<CheckReport, CheckError> {
    let kind = config::crm_kind(&lookup);
    crate::check_kind(&kind)?;
    let settings = config::Settings::new(lookup);
    let timeout = std::time::Duration::from_millis(config::DEFAULT_CRM_TIMEOUT_MS);
    // Unused without the CRMs that have a schema.
    let _ = (&settings, timeout, mapping, &tokens);
    match kind.as_str() {
        #[cfg(feature = "hubspot")]
        "hubspot" => {
            let base = settings
                .optional(config::HUBSPOT_API_URL)
                .unwrap_or_else(|| config::DEFAULT_HUBSPOT_API_URL.to_string());
            let token = settings.required(
                config::HUBSPOT_TOKEN,
                "CRM_KIND=hubspot calls HubSpot with this private-app token",
            )?;
            let tickets =
                crate::hubspot::ticket_fields::TicketSettings::from_settings(mapping, &settings);
            let deals = crate::hubspot::attribution::DealSettings::from_settings(&settings);
            Ok(
                crate::hubspot::check::run(&base, &token, mapping, &tickets, &deals, timeout)
                    .await?,
            )
        }
        #[cfg(feature = "pipedrive")]
        "pipedrive" => {
            // With OAuth: one process, the token refreshed for the check is kept in memory only.
            let tokens: crate::TokenStores = std::sync::Arc::new(|_: &str| {
                std::sync::Arc::new(wabridge_core::oauth::MemoryTokenStore::default())
                    as std::sync::Arc<dyn wabridge_core::oauth::TokenStore>
            });
            let crm = crate::pipedrive::PipedriveCrm::from_settings(
                mapping,
                &settings,
                timeout,
                Some(&tokens),
            )?;
            Ok(crm.check(mapping).await)
        }
        #[cfg(feature = "zoho")]
        "zoho" => {
            // One process: the token refreshed for the check is kept in memory only.
            let tokens: crate::TokenStores = std::sync::Arc::new(|_: &str| {
                std::sync::Arc::new(crate::zoho::oauth::MemoryTokenStore::default())
                    as std::sync::Arc<dyn wabridge_core::oauth::TokenStore>
            });
            let crm = crate::zoho::ZohoCrm::from_settings(mapping, &settings, timeout, &tokens)?;
            Ok(crm.check(mapping).await)
        }
        #[cfg(feature = "kommo")]
        "kommo" => {
            let tokens: crate::TokenStores = tokens.unwrap_or_else(|| {
                std::sync::Arc::new(|_: &str| {
                    std::sync::Arc::new(wabridge_core::oauth::MemoryTokenStore::default())
                        as std::sync::Arc<dyn wabridge_core::oauth::TokenStore>
                })
            });
            let crm =
                crate::kommo::KommoCrm::from_settings(mapping, &settings, timeout, Some(&tokens))?;
            Ok(crm.check(mapping).await)
        }
        #[cfg(feature = "salesforce")]
        "salesforce" => {
            // One process: the token granted for the check is kept in memory only.
            let tokens: crate::TokenStores = std::sync::Arc::new(|_: &str| {
                std::sync::Arc::new(wabridge_core::oauth::MemoryTokenStore::default())
                    as std::sync::Arc<dyn wabridge_core::oauth::TokenStore>
            });
            let crm = crate::salesforce::SalesforceCrm::from_settings(
                mapping, &settings, timeout, &tokens,
            )?;
            Ok(crm.check(mapping).await)
        }
        other => Err(CheckError::NothingToCheck(other.to_string())),
    }
}
