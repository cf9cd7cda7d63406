//! What a WABA holds, for `wabridge numbers discover`: its numbers
//! (`GET /{WABA-ID}/phone_numbers`, every page), the apps subscribed to its webhooks with their
//! callback overrides (`GET /{WABA-ID}/subscribed_apps`), and a number's own override
//! (`GET /{Phone-Number-ID}?fields=webhook_configuration`).
//!
//! Paging as the template sync's: `limit` = 100 (Meta's maximum), the next page asked for with
//! `after` = `paging.cursors.after` while the answer carries `paging.next`; the `next` URL
//! itself is never fetched, so the token only goes to the configured host.

use std::time::Duration;

use serde_json::Value;
use wabridge_core::sends::classify::SendFailure;
use wabridge_core::sends::template_sync::{next_cursor, SyncError};

use crate::{http_client, json_call};

/// Numbers a page: Meta's maximum for this edge.
pub const PAGE_SIZE: u32 = 100;
/// Pages read at most: 50 × 100 numbers is far beyond what a WABA holds.
pub const MAX_PAGES: usize = 50;
/// Largest answer read, bytes (a page of 100 numbers is about 50 KB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The fields asked of each number (all listed by Meta's spec for this edge).
const FIELDS: &str = "id,display_phone_number,verified_name,status,quality_rating,country_code";

/// Why a read of the Graph API failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Meta refused or did not answer; the reason is Meta's message.
    #[error("Graph API: {}", .0.reason())]
    Graph(SendFailure),
    #[error("a Graph API answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {0} pages of phone numbers")]
    TooManyPages(usize),
    #[error("unexpected Graph API answer: {0}")]
    Invalid(String),
}

impl From<SyncError> for ReadError {
    fn from(e: SyncError) -> ReadError {
        match e {
            SyncError::Graph(f) => ReadError::Graph(f),
            SyncError::TooLarge { limit } => ReadError::TooLarge { limit },
            SyncError::Invalid(why) => ReadError::Invalid(why),
            other => ReadError::Invalid(other.to_string()),
        }
    }
}

/// One number of a WABA as Meta lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedNumber {
    pub id: String,
    pub display_phone_number: String,
    pub verified_name: Option<String>,
    /// `LINKED`, `PENDING`, `BANNED`, … (Meta's `status`).
    pub status: Option<String>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    pub quality_rating: Option<String>,
    /// ISO 3166-1 alpha-2 (`MX`).
    pub country_code: Option<String>,
}

/// An app subscribed to a WABA's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    /// Where Meta sends this WABA's overridable webhooks for this app instead of its URL.
    pub override_callback_uri: Option<String>,
}

/// The Graph API as one token reads it.
pub struct GraphNumbers {
    http: reqwest::Client,
    base_url: String,
    version: String,
    token: String,
}

impl std::fmt::Debug for GraphNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("GraphNumbers")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl GraphNumbers {
    /// `base_url` and `version` as `config::Settings::graph_api` gives them.
    pub fn new(base_url: &str, version: &str, token: &str, timeout: Duration) -> GraphNumbers {
        GraphNumbers {
            http: http_client(timeout),
            base_url: base_url.trim_end_matches('/').to_string(),
            version: version.trim_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// `{base}/{version}/{path}`; `id` must be Meta's id (digits), so it cannot change the path.
    fn url(&self, id: &str, edge: &str) -> Result<String, ReadError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReadError::Invalid(format!("{id:?} is not a Meta id")));
        }
        Ok(format!("{}/{}/{id}{edge}", self.base_url, self.version))
    }

    async fn get(&self, url: String, query: &[(&str, &str)]) -> Result<Value, ReadError> {
        let request = self.http.get(url).query(query).bearer_auth(&self.token);
        Ok(json_call(request, MAX_ANSWER_BYTES).await?)
    }

    /// Every number of `waba`, all pages.
    pub async fn phone_numbers(&self, waba: &str) -> Result<Vec<ListedNumber>, ReadError> {
        let url = self.url(waba, "/phone_numbers")?;
        let limit = PAGE_SIZE.to_string();
        let mut numbers = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("fields", FIELDS), ("limit", limit.as_str())];
            if let Some(a) = &after {
                query.push(("after", a));
            }
            let (page, next) = parse_numbers_page(&self.get(url.clone(), &query).await?)?;
            numbers.extend(page);
            match next {
                None => return Ok(numbers),
                Some(n) if after.as_deref() == Some(n.as_str()) => {
                    return Err(ReadError::Invalid(
                        "the paging cursor did not advance".into(),
                    ))
                }
                Some(n) => after = Some(n),
            }
        }
        Err(ReadError::TooManyPages(MAX_PAGES))
    }

    /// The apps subscribed to `waba`'s webhooks, with their overrides.
    pub async fn subscribed_apps(&self, waba: &str) -> Result<Vec<Subscription>, ReadError> {
        let body = self.get(self.url(waba, "/subscribed_apps")?, &[]).await?;
        parse_subscriptions(&body)
    }

    /// The callback override of one number, if it has one. Meta documents setting it
    /// (`POST /{Phone-Number-ID}` with `webhook_configuration`); reading it back this way is
    /// not in Meta's spec for the GET (unconfirmed): callers treat a failure as unknown.
    pub async fn number_override(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<String>, ReadError> {
        let body = self
            .get(
                self.url(phone_number_id, "")?,
                &[("fields", "webhook_configuration")],
            )
            .await?;
        Ok(parse_number_override(&body))
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// One page of `/phone_numbers`: its numbers and the cursor of the next page, if any.
pub fn parse_numbers_page(body: &Value) -> Result<(Vec<ListedNumber>, Option<String>), ReadError> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ReadError::Invalid("the phone number list has no `data` array".into()))?;
    let mut numbers = Vec::with_capacity(data.len());
    for item in data {
        let (Some(id), Some(display)) = (text(item, "id"), text(item, "display_phone_number"))
        else {
            return Err(ReadError::Invalid(
                "a listed number has no `id` or `display_phone_number`".into(),
            ));
        };
        numbers.push(ListedNumber {
            id,
            display_phone_number: display,
            verified_name: text(item, "verified_name"),
            status: text(item, "status"),
            quality_rating: text(item, "quality_rating"),
            country_code: text(item, "country_code"),
        });
    }
    let after = next_cursor(body).map_err(|e| ReadError::Invalid(e.into()))?;
    Ok((numbers, after))
}

/// `/subscribed_apps`: each app (`whatsapp_business_api_data.{id,name}` in Meta's examples,
/// `id`/`name` in its schema) with its `override_callback_uri`.
pub fn parse_subscriptions(body: &Value) -> Result<Vec<Subscription>, ReadError> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ReadError::Invalid("the subscribed apps have no `data` array".into()))?;
    Ok(data
        .iter()
        .map(|item| {
            let app = item.get("whatsapp_business_api_data").unwrap_or(item);
            Subscription {
                app_id: text(app, "id"),
                app_name: text(app, "name"),
                override_callback_uri: text(item, "override_callback_uri"),
            }
        })
        .collect())
}

/// A number's own override from `?fields=webhook_configuration`: the spec's
/// `override_callback_uri`, or the `phone_number` level of Meta's per-level answer
/// (`{application, whatsapp_business_account, phone_number}`). An empty one is none.
pub fn parse_number_override(body: &Value) -> Option<String> {
    let config = body.get("webhook_configuration")?;
    text(config, "override_callback_uri").or_else(|| text(config, "phone_number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_gives_its_numbers_and_the_next_cursor_only_with_next() {
        let page = json!({"data": [{"id": "1906385232743451", "display_phone_number": "+1 631-555-5555",
            "verified_name": "Jasper's Market", "status": "LINKED", "quality_rating": "GREEN",
            "country_code": "US"}], "paging": {"cursors": {"after": "QVFI"}, "next": "https://x/next"}});
        let (numbers, next) = parse_numbers_page(&page).unwrap();
        assert_eq!(next.as_deref(), Some("QVFI"));
        assert_eq!(numbers[0].verified_name.as_deref(), Some("Jasper's Market"));
        assert_eq!(numbers[0].quality_rating.as_deref(), Some("GREEN"));
        // Meta's last page carries cursors but no `next`.
        let last = json!({"data": [], "paging": {"cursors": {"after": "QVFI"}}});
        assert_eq!(parse_numbers_page(&last).unwrap().1, None);
        let broken = json!({"data": [], "paging": {"next": "https://x/next"}});
        assert!(parse_numbers_page(&broken).is_err());
        assert!(parse_numbers_page(&json!({"data": [{"id": "1"}]})).is_err());
    }

    #[test]
    fn subscriptions_and_number_overrides_are_read_in_both_shapes() {
        let subs = parse_subscriptions(&json!({"data": [
            {"whatsapp_business_api_data": {"id": "11", "name": "wabridge"}},
            {"whatsapp_business_api_data": {"id": "12"}, "override_callback_uri": "https://else/hook"},
            {"id": "13", "name": "flat", "override_callback_uri": ""}]}))
        .unwrap();
        assert_eq!(subs[0].app_name.as_deref(), Some("wabridge"));
        assert_eq!(subs[0].override_callback_uri, None);
        assert_eq!(
            subs[1].override_callback_uri.as_deref(),
            Some("https://else/hook")
        );
        assert_eq!(subs[2].app_id.as_deref(), Some("13"));
        assert_eq!(subs[2].override_callback_uri, None);
        let spec = json!({"webhook_configuration": {"override_callback_uri": "https://a/b"}});
        assert_eq!(parse_number_override(&spec).as_deref(), Some("https://a/b"));
        let levels = json!({"webhook_configuration": {"application": "https://app",
            "phone_number": "https://num"}, "id": "1"});
        assert_eq!(
            parse_number_override(&levels).as_deref(),
            Some("https://num")
        );
        assert_eq!(parse_number_override(&json!({"id": "1"})), None);
    }
}
