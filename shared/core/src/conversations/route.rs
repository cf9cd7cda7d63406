//! `PATCH /conversations/{id}` (any of `outcome`, `agent`, `tags`),
//! `POST /conversations/{id}/tags` (adds tags) and `DELETE /conversations/{id}/tags/{tag}`
//! (removes one), with an API key of the `sends` scope: the tools
//! that write to customers also close their conversations. Values are checked against the
//! mapping's catalogues (`[outcomes]`, `[agents]`, `[tags]`); the change is written, then
//! queued for the CRM ([`super::update`]). A closed conversation takes every change and stays
//! closed.

use std::sync::Arc;

use serde::Deserialize;

use super::outcome::OutcomeCatalogue;
use super::tags::{TagCatalogue, MAX_TAGS};
use super::update::{Change, ConversationUpdates};
use crate::agents::AgentCatalogue;
use crate::auth::{ApiKeys, Scope};
use crate::http::{ApiError, Method, Request, Response};

/// Largest body the routes read: a handful of ids.
pub const MAX_BODY: usize = 16 * 1024;

/// The body of `PATCH /conversations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The body of `POST /conversations/{id}/tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Vec<String>,
}

/// The mapping's catalogues the routes (and the CLI) check values against.
#[derive(Debug, Clone, Default)]
pub struct Catalogues {
    pub outcomes: OutcomeCatalogue,
    pub agents: AgentCatalogue,
    pub tags: TagCatalogue,
}

impl Catalogues {
    /// The catalogues of a mapping.
    pub fn of(mapping: &crate::mapping::Mapping) -> Catalogues {
        Catalogues {
            outcomes: mapping.outcomes.clone(),
            agents: mapping.agents.clone(),
            tags: mapping.tags.clone(),
        }
    }

    /// A change from raw values: each checked, the first refusal as a 4xx naming the value
    /// and its catalogue.
    pub fn change(
        &self,
        outcome: Option<&str>,
        agent: Option<&str>,
        tags: Option<&[String]>,
        add_tags: &[String],
    ) -> Result<Change, ApiError> {
        let outcome = outcome.map(str::trim);
        if let Some(o) = outcome.filter(|o| !self.outcomes.ids.iter().any(|id| id == o)) {
            return Err(ApiError::Unprocessable {
                code: "unknown_outcome",
                message: format!(
                    "outcome {:?} is not in the mapping's outcome catalogue ([outcomes] ids: {})",
                    o.chars().take(64).collect::<String>(),
                    self.outcomes.ids.join(", ")
                ),
            });
        }
        let agent = agent.map(str::trim);
        if let Some(a) = agent {
            self.agents.check(a).map_err(|e| ApiError::Unprocessable {
                code: e.code,
                message: e.message,
            })?;
        }
        for list in tags.iter().copied().chain([add_tags]) {
            if list.len() > MAX_TAGS {
                return Err(ApiError::bad_request(
                    "too_many_tags",
                    format!("tags: {} values, at most {MAX_TAGS}", list.len()),
                ));
            }
        }
        let checked = |list: &[String]| {
            self.tags.check(list).map_err(|e| ApiError::Unprocessable {
                code: e.code,
                message: e.message,
            })
        };
        Ok(Change {
            outcome: outcome.map(str::to_string),
            agent: agent.map(str::to_string),
            tags: tags.map(checked).transpose()?,
            add_tags: checked(add_tags)?,
            ..Change::default()
        })
    }
}

impl Catalogues {
    /// A change removing `tags`, each checked against the catalogue.
    pub fn removal(&self, tags: &[String]) -> Result<Change, ApiError> {
        if tags.len() > MAX_TAGS {
            return Err(ApiError::bad_request(
                "too_many_tags",
                format!("tags: {} values, at most {MAX_TAGS}", tags.len()),
            ));
        }
        let remove_tags = self.tags.check(tags).map_err(|e| ApiError::Unprocessable {
            code: e.code,
            message: e.message,
        })?;
        Ok(Change {
            remove_tags,
            ..Change::default()
        })
    }
}

pub struct ConversationsRoute {
    updates: ConversationUpdates,
    catalogues: Catalogues,
    keys: Arc<ApiKeys>,
}

impl ConversationsRoute {
    pub fn new(updates: ConversationUpdates, catalogues: Catalogues, keys: Arc<ApiKeys>) -> Self {
        ConversationsRoute {
            updates,
            catalogues,
            keys,
        }
    }

    /// `PATCH /conversations/{id}`.
    pub async fn patch(&self, req: &Request, id: &str) -> Result<Response, ApiError> {
        if req.method != Method::Patch {
            return Err(ApiError::MethodNotAllowed(req.path.clone()));
        }
        self.keys
            .authorize(req, Scope::Sends, "PATCH /conversations/{id}")?;
        let expected =
            r#"{"outcome": "<id>", "agent": "<id>", "tags": ["<id>", ...]} (any of them)"#;
        let body: PatchBody = body(req, expected)?;
        if body.outcome.is_none() && body.agent.is_none() && body.tags.is_none() {
            return Err(ApiError::bad_request(
                "empty_change",
                format!("the body names nothing to change: send {expected}"),
            ));
        }
        let change = self.catalogues.change(
            body.outcome.as_deref(),
            body.agent.as_deref(),
            body.tags.as_deref(),
            &[],
        )?;
        self.apply(id, &change).await
    }

    /// `POST /conversations/{id}/tags`.
    pub async fn add_tags(&self, req: &Request, id: &str) -> Result<Response, ApiError> {
        if req.method != Method::Post {
            return Err(ApiError::MethodNotAllowed(req.path.clone()));
        }
        self.keys
            .authorize(req, Scope::Sends, "POST /conversations/{id}/tags")?;
        let expected = r#"{"tags": ["<id>", ...]} with at least one tag"#;
        let body: TagsBody = body(req, expected)?;
        if body.tags.is_empty() {
            return Err(ApiError::bad_request(
                "empty_change",
                format!("tags is empty: send {expected}"),
            ));
        }
        let change = self.catalogues.change(None, None, None, &body.tags)?;
        self.apply(id, &change).await
    }

    /// `DELETE /conversations/{id}/tags/{tag}`: 200 with the conversation, also when it did not
    /// have the tag (a repeat changes nothing); a tag outside the catalogue is a 422.
    pub async fn remove_tag(
        &self,
        req: &Request,
        id: &str,
        tag: &str,
    ) -> Result<Response, ApiError> {
        if req.method != Method::Delete {
            return Err(ApiError::MethodNotAllowed(req.path.clone()));
        }
        self.keys
            .authorize(req, Scope::Sends, "DELETE /conversations/{id}/tags/{tag}")?;
        let change = self.catalogues.removal(&[tag.to_string()])?;
        self.apply(id, &change).await
    }

    async fn apply(&self, id: &str, change: &Change) -> Result<Response, ApiError> {
        let state = self
            .updates
            .apply(id, change)
            .await?
            .ok_or_else(|| ApiError::NoSuch(format!("no conversation with id {id}")))?;
        Ok(Response::json(200, &state.record))
    }
}

/// The JSON body, bounded; errors say what was expected.
fn body<T: serde::de::DeserializeOwned>(req: &Request, expected: &str) -> Result<T, ApiError> {
    if req.body.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge {
            size: req.body.len(),
            limit: MAX_BODY,
        });
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("the body is empty: send {expected}"),
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {expected}: {e}"))
    })
}
