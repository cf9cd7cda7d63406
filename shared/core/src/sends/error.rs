//! The sends service's errors. The HTTP status of each is chosen at the edge (`crate::api`).

use crate::error::StoreError;
use crate::sends::policy::Refusal;

/// Why a `POST /sends` or `POST /consents` body, or a query naming a contact, was refused: a
/// stable code and a sentence naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("body of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
}

impl RequestError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> RequestError {
        RequestError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable machine code (`invalid_recipient`, `payload_too_large`, …).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "payload_too_large",
            RequestError::Invalid { code, .. } => code,
        }
    }

    /// The body's size against `limit` (checked before anything reads it).
    pub(crate) fn check_size(body: &[u8], limit: usize) -> Result<(), RequestError> {
        if body.len() > limit {
            return Err(RequestError::TooLarge {
                size: body.len(),
                limit,
            });
        }
        Ok(())
    }
}

/// What the sends service answers instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum SendsError {
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A policy guard refused the send (WhatsApp's rules).
    #[error("{}", .0.message())]
    Refused(Refusal),
    #[error(
        "this Idempotency-Key was used for a different request; use a new key for a new request"
    )]
    KeyReused,
    /// `from` names no registered number, or is missing with several (`unknown_number`,
    /// `from_required`): the request is well-formed, the gateway cannot honour it (422).
    #[error("{message}")]
    Number { code: &'static str, message: String },
    #[error("send {0} not found")]
    NotFound(String),
    /// The `agent` is outside the catalogue (or not an agent id).
    #[error(transparent)]
    Agent(#[from] crate::agents::AgentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
