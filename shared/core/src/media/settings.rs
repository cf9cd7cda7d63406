//! The media pipeline's settings, read once at start (a bad one stops the process, naming the
//! variable):
//! - `WABRIDGE_MEDIA`: `on` (default) fetches every inbound file; `off` leaves activities with
//!   Meta's media ids only.
//! - `WABRIDGE_PUBLIC_URL`: the gateway's address as the CRM's users reach it; the base of
//!   media links. Unset: files are stored and described, without a link.
//! - `WABRIDGE_MEDIA_LINK_KEY`: the key that signs links (a secret of at least 32 bytes; the
//!   local gateway generates one, AWS keeps it in Secrets Manager).
//!
//! A link opens its file for the content retention: the file is purged after it anyway.

use std::time::Duration;

use super::links::LinkSigner;
use super::pipeline::LinkSettings;
use crate::config::{ConfigError, Settings};

// The names live in config.rs, the one list the SAM template is checked against.
pub use crate::config::{
    MEDIA_BUCKET, MEDIA_DLQ_URL, MEDIA_QUEUE_URL, WABRIDGE_MEDIA, WABRIDGE_MEDIA_LINK_KEY,
    WABRIDGE_PUBLIC_URL,
};

/// `WABRIDGE_MEDIA` through `get`: whether inbound media is fetched (crm-sync then enqueues
/// jobs), without the rest of the settings, which only the media consumer and the gateway need.
pub fn enabled(get: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match Settings::new(get).optional(WABRIDGE_MEDIA).as_deref() {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name: WABRIDGE_MEDIA,
            value: other.into(),
            expected: "on or off",
        }),
    }
}

#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub enabled: bool,
    /// Links for stored files, when the gateway has a public URL.
    pub links: Option<LinkSettings>,
    /// The signer alone (`GET /media/{id}` checks tokens even where no new link is made);
    /// `None` when no key is set, which is allowed only without a public URL (no links).
    pub signer: Option<LinkSigner>,
}

impl MediaSettings {
    /// Reads the settings through `get`; `content_retention` is how long a link lives.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        content_retention: Duration,
    ) -> Result<MediaSettings, ConfigError> {
        let enabled = enabled(&get)?;
        let settings = Settings::new(get);
        // A key that is set must be safe, used or not (fail closed, never guessable links).
        let signer = match settings.optional(WABRIDGE_MEDIA_LINK_KEY) {
            None => None,
            Some(key) => Some(LinkSigner::new(key.as_bytes()).ok_or(ConfigError::Invalid {
                name: WABRIDGE_MEDIA_LINK_KEY,
                value: "(hidden)".into(),
                expected: "a secret of at least 32 bytes",
            })?),
        };
        let links = match settings.optional(WABRIDGE_PUBLIC_URL) {
            None => None,
            Some(_) => Some(LinkSettings {
                public_url: settings.url(WABRIDGE_PUBLIC_URL, "")?,
                signer: signer.clone().ok_or(ConfigError::Missing {
                    name: WABRIDGE_MEDIA_LINK_KEY,
                    consequence: "WABRIDGE_PUBLIC_URL asks for media links, which it signs",
                })?,
                ttl: content_retention,
            }),
        };
        Ok(MediaSettings {
            enabled,
            links,
            signer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn read(pairs: &[(&str, &str)]) -> Result<MediaSettings, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MediaSettings::from_lookup(
            |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            },
            Duration::from_secs(90 * 86_400),
        )
    }

    #[test]
    fn defaults_fetch_media_without_links() {
        let s = read(&[(WABRIDGE_MEDIA_LINK_KEY, KEY)]).unwrap();
        assert!(s.enabled && s.links.is_none() && s.signer.is_some());
        // No public URL: no links, so no key is needed to fetch and store.
        let s = read(&[]).unwrap();
        assert!(s.enabled && s.links.is_none() && s.signer.is_none());
        let s = read(&[
            (WABRIDGE_MEDIA_LINK_KEY, KEY),
            (WABRIDGE_PUBLIC_URL, "https://gw.example.com/"),
            (WABRIDGE_MEDIA, "off"),
        ])
        .unwrap();
        assert!(!s.enabled);
        let links = s.links.unwrap();
        assert_eq!(links.public_url, "https://gw.example.com");
        assert_eq!(links.ttl, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn bad_settings_name_their_variable_and_hide_the_key() {
        let cases: [&[(&str, &str)]; 4] = [
            &[(WABRIDGE_PUBLIC_URL, "https://gw.example.com")],
            &[(WABRIDGE_MEDIA_LINK_KEY, "short")],
            &[(WABRIDGE_MEDIA_LINK_KEY, KEY), (WABRIDGE_MEDIA, "yes")],
            &[(WABRIDGE_MEDIA_LINK_KEY, KEY), (WABRIDGE_PUBLIC_URL, "gw")],
        ];
        let names = [
            WABRIDGE_MEDIA_LINK_KEY,
            WABRIDGE_MEDIA_LINK_KEY,
            WABRIDGE_MEDIA,
            WABRIDGE_PUBLIC_URL,
        ];
        for (case, name) in cases.iter().zip(names) {
            let e = read(case).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
            assert!(!e.contains("short"), "the key leaked: {e}");
        }
    }
}
