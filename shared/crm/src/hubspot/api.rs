//! HubSpot CRM v3 calls: the HTTP client (token, rate-limit headers, error classes) and the batch
//! operations the adapter coalesces ([`UpsertOp`]: `POST /crm/v3/objects/{type}/batch/upsert`,
//! [`CreateOp`]: `POST /crm/v3/objects/{type}/batch/create`), plus the search used before
//! re-creating an in-doubt object.
//!
//! Batch answers are mapped back to inputs by `objectWriteTraceId` (we set it to the input's
//! index; HubSpot echoes it on results and names it in per-input errors, answering 207
//! Multi-Status for partial failures), falling back to the upsert's id property, so the order
//! of `results` does not matter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::batch::{BatchAnswer, BatchOp};
use crate::pace::Window;

/// HubSpot private apps on Professional and Enterprise: 190 calls per rolling 10 s.
pub const BURST_LIMIT: usize = 190;
pub const BURST_WINDOW: Duration = Duration::from_secs(10);
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::CrmError;
use wabridge_http::retry_after;

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Set when a success reported `X-HubSpot-RateLimit-Remaining: 0`: the next call waits for
    /// the window instead of provoking a 429.
    pause_until: Mutex<Option<Instant>>,
    /// The portal's burst limit, held before HubSpot has to refuse a call.
    limit: Mutex<Arc<Window>>,
}

impl Client {
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Client, ConfigError> {
        if token.is_empty() {
            return Err(ConfigError::Invalid {
                name: config::HUBSPOT_TOKEN,
                reason: "is required for CRM_KIND=hubspot".into(),
            });
        }
        url::Url::parse(base).map_err(|e| ConfigError::Invalid {
            name: config::HUBSPOT_API_URL,
            reason: e.to_string(),
        })?;
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 256,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            pause_until: Mutex::new(None),
            limit: Mutex::new(Arc::new(Window::new(BURST_LIMIT, BURST_WINDOW))),
        })
    }

    /// Calls per rolling window the portal allows (default [`BURST_LIMIT`] per [`BURST_WINDOW`]).
    pub fn set_rate_limit(&self, max: usize, window: Duration) {
        *self.limit.lock().unwrap() = Arc::new(Window::new(max, window));
    }

    /// POSTs JSON; any 2xx (including 207 Multi-Status) is `Ok` with the parsed body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CrmError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.exchange(request).await
    }

    /// POSTs a multipart form (a file upload); any 2xx is `Ok` with the parsed body.
    pub async fn post_form(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Result<Value, CrmError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form);
        self.exchange(request).await
    }

    /// GETs `path` (with its query); `Ok(None)` on a 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, CrmError> {
        match self
            .exchange(self.http.get(format!("{}{path}", self.base)))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `request` with the token, after any pause the rate limit asked for; a 2xx is the
    /// parsed body (`Null` when empty), anything else its class of error.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Value, CrmError> {
        let wait = self
            .pause_until
            .lock()
            .unwrap()
            .and_then(|t| t.checked_duration_since(Instant::now()));
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        let limit = self.limit.lock().unwrap().clone();
        limit.slot().await;
        let response = request
            .bearer_auth(&self.token)
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

    /// The id of an object whose `property` equals `value`
    /// (`POST /crm/v3/objects/{object}/search`, filter `EQ`).
    pub async fn find_by(
        &self,
        object: &str,
        property: &str,
        value: &str,
    ) -> Result<Option<String>, CrmError> {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": property, "operator": "EQ", "value": value}]}],
            "properties": [property],
            "limit": 1
        });
        let answer = self
            .post(&format!("/crm/v3/objects/{object}/search"), &body)
            .await?;
        let found = answer["results"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
            .map(String::from);
        if found.is_none() && answer["total"].as_u64().unwrap_or(0) > 0 {
            return Err(CrmError::Transient(format!(
                "search counted a match but returned no result: {answer}"
            )));
        }
        Ok(found)
    }
}

impl Client {
    /// The value of `want` on an object whose `property` equals `value` (search, `EQ`).
    pub async fn find_property(
        &self,
        object: &str,
        property: &str,
        value: &str,
        want: &str,
    ) -> Result<Option<String>, CrmError> {
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": property, "operator": "EQ", "value": value}]}],
            "properties": [want],
            "limit": 1
        });
        let answer = self
            .post(&format!("/crm/v3/objects/{object}/search"), &body)
            .await?;
        Ok(answer["results"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["properties"][want].as_str())
            .filter(|v| !v.is_empty())
            .map(String::from))
    }
}

/// Property values are strings in HubSpot's API.
pub(crate) fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn string_properties(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(as_string(v))))
        .collect()
}

/// A per-input error of a batch answer (`errors[]`).
fn input_error(e: &Value) -> CrmError {
    let category = e["category"].as_str().unwrap_or("ERROR");
    let message = e["message"].as_str().unwrap_or_default();
    if category.contains("RATE_LIMIT") {
        CrmError::RateLimited(None)
    } else {
        CrmError::Rejected(format!("{category}: {message}"))
    }
}

fn trace_index(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        _ => None,
    }
}

/// Maps a batch answer's `results` / `errors` to `n` slots. `result_slot` and `error_slots`
/// are fallbacks for answers without `objectWriteTraceId`.
fn distribute(
    answer: &Value,
    n: usize,
    result_slot: impl Fn(&Value) -> Option<usize>,
    error_slots: impl Fn(&Value) -> Vec<usize>,
) -> Vec<Result<String, CrmError>> {
    let mut out: Vec<Option<Result<String, CrmError>>> = (0..n).map(|_| None).collect();
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    let mut unplaced = Vec::new();
    for r in &results {
        let slot = trace_index(&r["objectWriteTraceId"])
            .filter(|i| *i < n)
            .or_else(|| result_slot(r));
        let id = r["id"].as_str().map(String::from);
        match (slot, id) {
            (Some(i), Some(id)) => out[i] = Some(Ok(id)),
            (None, Some(id)) => unplaced.push(id),
            _ => {}
        }
    }
    for e in &errors {
        let mut slots: Vec<usize> = e["context"]["objectWriteTraceId"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(trace_index)
                    .filter(|i| *i < n)
                    .collect()
            })
            .unwrap_or_default();
        if slots.is_empty() {
            slots = error_slots(e);
        }
        for i in slots {
            out[i] = Some(Err(input_error(e)));
        }
    }
    // An answer without trace ids, complete and in order (HubSpot does not promise order, so
    // this is only used when nothing else identifies the results).
    if errors.is_empty() && unplaced.len() == n && out.iter().all(Option::is_none) {
        return unplaced.into_iter().map(Ok).collect();
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                Err(CrmError::Transient(format!(
                    "batch answer has no result for input {i}"
                )))
            })
        })
        .collect()
}

/// One contact (or other object) upsert by a unique property.
#[derive(Debug, Clone)]
pub(crate) struct UpsertInput {
    /// Value of the id property.
    pub id: String,
    pub properties: Map<String, Value>,
}

pub(crate) struct UpsertOp {
    pub client: Arc<Client>,
    pub object: &'static str,
    pub id_property: String,
}

#[async_trait]
impl BatchOp for UpsertOp {
    type Input = UpsertInput;
    /// The object's HubSpot id.
    type Output = String;

    async fn run(&self, inputs: &[UpsertInput]) -> BatchAnswer<String> {
        // HubSpot refuses two inputs with the same id in one upsert: merge them (properties of
        // later inputs win, as if they had been upserted one after the other).
        let mut slots: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut input_slot = Vec::with_capacity(inputs.len());
        for input in inputs {
            let slot = *slot_of.entry(input.id.as_str()).or_insert_with(|| {
                slots.push((input.id.clone(), Map::new()));
                slots.len() - 1
            });
            slots[slot].1.extend(string_properties(&input.properties));
            input_slot.push(slot);
        }
        let body = json!({
            "inputs": slots.iter().enumerate().map(|(i, (id, properties))| json!({
                "idProperty": self.id_property,
                "id": id,
                "properties": properties,
                "objectWriteTraceId": i.to_string(),
            })).collect::<Vec<_>>()
        });
        let answer = match self
            .client
            .post(
                &format!("/crm/v3/objects/{}/batch/upsert", self.object),
                &body,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return BatchAnswer::Whole(e),
        };
        let by_id = |v: &Value| -> Option<usize> { slot_of.get(v.as_str()?).copied() };
        let per_slot = distribute(
            &answer,
            slots.len(),
            |r| by_id(&r["properties"][&self.id_property]),
            |e| {
                e["context"]["ids"]
                    .as_array()
                    .map(|ids| ids.iter().filter_map(by_id).collect())
                    .unwrap_or_default()
            },
        );
        BatchAnswer::Each(input_slot.iter().map(|s| per_slot[*s].clone()).collect())
    }
}

/// One object to create, with its associations (`[{to: {id}, types: [...]}]`).
#[derive(Debug, Clone)]
pub(crate) struct CreateInput {
    pub properties: Map<String, Value>,
    pub associations: Value,
}

pub(crate) struct CreateOp {
    pub client: Arc<Client>,
    pub object: &'static str,
}

#[async_trait]
impl BatchOp for CreateOp {
    type Input = CreateInput;
    type Output = String;

    async fn run(&self, inputs: &[CreateInput]) -> BatchAnswer<String> {
        let body = json!({
            "inputs": inputs.iter().enumerate().map(|(i, input)| json!({
                "properties": string_properties(&input.properties),
                "associations": input.associations,
                "objectWriteTraceId": i.to_string(),
            })).collect::<Vec<_>>()
        });
        match self
            .client
            .post(
                &format!("/crm/v3/objects/{}/batch/create", self.object),
                &body,
            )
            .await
        {
            Ok(answer) => {
                BatchAnswer::Each(distribute(&answer, inputs.len(), |_| None, |_| vec![]))
            }
            Err(e) => BatchAnswer::Whole(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_back_by_trace_id_whatever_their_order() {
        let answer = json!({
            "status": "COMPLETE",
            "results": [{"id": "b", "objectWriteTraceId": "1"}, {"id": "a", "objectWriteTraceId": "0"}],
            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "bad phone",
                        "context": {"objectWriteTraceId": ["2"]}}]
        });
        let out = distribute(&answer, 4, |_| None, |_| vec![]);
        assert_eq!(out[0], Ok("a".into()));
        assert_eq!(out[1], Ok("b".into()));
        assert!(matches!(&out[2], Err(CrmError::Rejected(m)) if m.contains("bad phone")));
        assert!(
            matches!(&out[3], Err(CrmError::Transient(_))),
            "missing → in doubt"
        );
    }

    #[test]
    fn untraced_complete_answers_fall_back_to_order() {
        let answer = json!({"results": [{"id": "x"}, {"id": "y"}]});
        let out = distribute(&answer, 2, |_| None, |_| vec![]);
        assert_eq!(out, vec![Ok("x".into()), Ok("y".into())]);
    }
}
