//! The `hubspot` CRM (CRM v3 API, private app token as `Authorization: Bearer`).
//!
//! - Contacts: `POST /crm/v3/objects/contacts/batch/upsert` by the mapping's `id_property` (a
//!   custom contact property with unique values holding the E.164 number or the BSUID); the
//!   mapped `[[contact]]` fields are the properties (as strings). Upserts are idempotent.
//! - Messages: one Communication each, `POST /crm/v3/objects/communications` with
//!   `hs_communication_channel_type: WHATS_APP`, `hs_communication_logged_from: CRM`, the mapped
//!   `[[activity]]` fields (body, `hs_timestamp`), associated to the contact (association type
//!   81, communication → contact, `HUBSPOT_DEFINED`). The contact's HubSpot id comes from the
//!   upsert answer (cached; an upsert is repeated when unknown, which is harmless).
//! - Exactly once: a create is not idempotent, so when the mapping names an `effect_property`
//!   (a custom communication property), each communication carries its effect id there and an
//!   in-doubt retry first searches `POST /crm/v3/objects/communications/search` for it.
//! - Outbound statuses are logged only when `failed` (with the error); consent, template, quality
//!   and unknown records are validated but not written to HubSpot.
//! - Limits: 429 → retry after `Retry-After`, else `X-HubSpot-RateLimit-Interval-Milliseconds`;
//!   when a success reports `X-HubSpot-RateLimit-Remaining: 0` the next call waits for the
//!   interval instead of provoking a 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{classify_status, retry_after, transport_error, Crm, CrmError, Effect};
use crate::records::{Direction, Record};

/// Communication → contact (HubSpot-defined association type id).
pub const COMMUNICATION_TO_CONTACT: u32 = 81;

pub struct HubSpotCrm {
    client: reqwest::Client,
    base: String,
    token: String,
    id_property: String,
    effect_property: Option<String>,
    contact_ids: Mutex<HashMap<String, String>>,
    pause_until: Mutex<Option<Instant>>,
}

impl HubSpotCrm {
    pub fn new(
        base: &str,
        token: &str,
        id_property: &str,
        effect_property: Option<&str>,
        timeout: Duration,
    ) -> Result<HubSpotCrm, String> {
        if token.is_empty() {
            return Err("HUBSPOT_TOKEN is required for CRM_KIND=hubspot".into());
        }
        url::Url::parse(base).map_err(|e| format!("HUBSPOT_API_URL: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HubSpotCrm {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            id_property: id_property.to_string(),
            effect_property: effect_property.map(String::from),
            contact_ids: Mutex::new(HashMap::new()),
            pause_until: Mutex::new(None),
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, CrmError> {
        let wait = self
            .pause_until
            .lock()
            .unwrap()
            .and_then(|t| t.checked_duration_since(Instant::now()));
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let interval = num("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis);
        let remaining = num("x-hubspot-ratelimit-remaining");
        if (200..300).contains(&status) {
            if remaining == Some(0) {
                let wait = interval
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(10));
                *self.pause_until.lock().unwrap() = Some(Instant::now() + wait);
            }
            let text = response.text().await.map_err(transport_error)?;
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let hint = retry_after(&headers).or(if status == 429 { interval } else { None });
        let text = response.text().await.unwrap_or_default();
        Err(classify_status(status, hint, &text))
    }

    fn id_value(&self, fields: &Map<String, Value>) -> Result<String, CrmError> {
        fields
            .get(&self.id_property)
            .map(as_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                CrmError::Rejected(format!("contact has no `{}` (mapping)", self.id_property))
            })
    }

    /// Upserts the contact, returns its HubSpot id.
    async fn upsert_contact(&self, fields: &Map<String, Value>) -> Result<String, CrmError> {
        let id = self.id_value(fields)?;
        let properties: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(as_string(v))))
            .collect();
        let body = json!({"inputs": [{"idProperty": self.id_property, "id": id, "properties": properties}]});
        let answer = self
            .post("/crm/v3/objects/contacts/batch/upsert", body)
            .await?;
        let hs_id = answer["results"][0]["id"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| {
                CrmError::Transient(format!("upsert answer without results[0].id: {answer}"))
            })?;
        self.contact_ids.lock().unwrap().insert(id, hs_id.clone());
        Ok(hs_id)
    }

    async fn contact_hs_id(&self, effect: &Effect) -> Result<String, CrmError> {
        let Some((_, fields)) = &effect.contact else {
            return Err(CrmError::Rejected("activity without its contact".into()));
        };
        let id = self.id_value(fields)?;
        if let Some(hs) = self.contact_ids.lock().unwrap().get(&id) {
            return Ok(hs.clone());
        }
        self.upsert_contact(fields).await
    }

    async fn already_created(&self, effect_id: &str) -> Result<bool, CrmError> {
        let Some(prop) = &self.effect_property else {
            return Ok(false);
        };
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": effect_id}]}],
            "properties": [prop],
            "limit": 1
        });
        let answer = self
            .post("/crm/v3/objects/communications/search", body)
            .await?;
        Ok(answer["total"].as_u64().unwrap_or(0) > 0)
    }

    async fn log_communication(
        &self,
        effect: &Effect,
        body_text: Option<String>,
    ) -> Result<(), CrmError> {
        if effect.in_doubt && self.already_created(&effect.id).await? {
            return Ok(());
        }
        let contact = self.contact_hs_id(effect).await?;
        let mut properties: Map<String, Value> = effect
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(as_string(v))))
            .collect();
        properties.insert("hs_communication_channel_type".into(), "WHATS_APP".into());
        properties.insert("hs_communication_logged_from".into(), "CRM".into());
        if let Some(text) = body_text {
            properties.insert("hs_communication_body".into(), text.into());
        }
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let body = json!({
            "properties": properties,
            "associations": [{
                "to": {"id": contact},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": COMMUNICATION_TO_CONTACT}]
            }]
        });
        self.post("/crm/v3/objects/communications", body)
            .await
            .map(|_| ())
    }
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Crm for HubSpotCrm {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        match &effect.record {
            Record::Contact(_) => self.upsert_contact(&effect.fields).await.map(|_| ()),
            Record::Activity(a) if a.direction == Some(Direction::Outbound) => {
                if a.status.as_deref() != Some("failed") {
                    return Ok(());
                }
                let why: Vec<String> = a
                    .errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e.code.unwrap_or_default(),
                            e.title.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                let text = format!(
                    "WhatsApp message {} failed: {}",
                    a.message_id.clone().unwrap_or_default(),
                    why.join("; ")
                );
                self.log_communication(effect, Some(text)).await
            }
            Record::Activity(_) => self.log_communication(effect, None).await,
            Record::Attribution(_) | Record::Lead(_) => {
                tracing::info!(
                    effect = %effect.id,
                    kind = effect.record.kind(),
                    "hubspot: attribution and lead records are not sent to HubSpot yet; skipped"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
