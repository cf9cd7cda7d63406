//! Content retention: how long message content is kept, and which stored fields are content.
//!
//! Content is what people wrote or were sent: texts, captions, media references, reply
//! contexts, button and Flow payloads, shared locations and contacts (they arrive in those
//! fields), raw unknown items, the parameters and bodies of our sends, dead-letter bodies.
//! Both engines drop it after [`WABRIDGE_CONTENT_RETENTION_DAYS`]: the local purger strips the
//! fields below from SQLite rows; on DynamoDB a send's content lives in its own item whose TTL
//! is the retention. What is not content (identities, consent evidence, the send audit,
//! attribution) keeps its own retention: see README's privacy section.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{ConfigError, Settings};

pub use crate::config::WABRIDGE_CONTENT_RETENTION_DAYS;
pub const DEFAULT_CONTENT_RETENTION_DAYS: u64 = 90;
/// Dead letters wait up to 14 days on their DLQ for a redrive and claim-checked events live 14
/// days in the bucket; a shorter retention would end content those still hold.
pub const MIN_CONTENT_RETENTION_DAYS: u64 = 14;
pub const MAX_CONTENT_RETENTION_DAYS: u64 = 3650;

/// The fields of a stored activity record (`records.kind = activity`) that are content.
pub const ACTIVITY_CONTENT: &[&str] = &["text", "media", "context", "payload", "fields"];
/// The fields of a stored message change (an edit's new text and file) that are content.
pub const CHANGE_CONTENT: &[&str] = &["text", "media", "fields"];
/// The fields of a stored unknown record that are content (the item as Meta sent it).
pub const UNKNOWN_CONTENT: &[&str] = &["raw"];
/// The fields of a stored send request that are content (template parameters and components,
/// a text message's body, the file a send carries: its caption and file name).
pub const SEND_CONTENT: &[&str] = &["parameters", "components", "body", "header", "media"];
/// Set to `true` on a record or send request whose content was purged, so a reader can tell
/// "purged" from "never had any".
pub const PURGED: &str = "content_purged";

/// [`WABRIDGE_CONTENT_RETENTION_DAYS`]: a whole number of days from 14 to 3650, default 90.
pub fn content_retention(get: impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    let days = Settings::new(get).number(
        WABRIDGE_CONTENT_RETENTION_DAYS,
        DEFAULT_CONTENT_RETENTION_DAYS,
        "a whole number of days from 14 to 3650",
        |d| (MIN_CONTENT_RETENTION_DAYS..=MAX_CONTENT_RETENTION_DAYS).contains(d),
    )?;
    Ok(Duration::from_secs(days * 86_400))
}

/// The SQLite JSON paths of `fields` (`'$.text', '$.media', …`), for `json_remove`.
pub fn json_paths(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("'$.{f}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes the content out of a send request (JSON object): returns what it removed, `None`
/// when it carried none. The request keeps its recipient, template name, language and kind.
pub fn split_send_content(request: &mut Value) -> Option<Map<String, Value>> {
    let object = request.as_object_mut()?;
    let content: Map<String, Value> = SEND_CONTENT
        .iter()
        .filter_map(|f| object.remove(*f).map(|v| ((*f).to_string(), v)))
        .collect();
    (!content.is_empty()).then_some(content)
}

/// Puts content taken by [`split_send_content`] back; `None` (it expired) marks the request
/// [`PURGED`].
pub fn merge_send_content(request: &mut Value, content: Option<Map<String, Value>>) {
    if let Some(object) = request.as_object_mut() {
        match content {
            Some(content) => object.extend(content),
            None => {
                object.insert(PURGED.into(), Value::Bool(true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retention_defaults_to_90_days_and_names_its_variable_when_bad() {
        assert_eq!(content_retention(|_| None).unwrap().as_secs(), 90 * 86_400);
        assert_eq!(
            content_retention(|_| Some("14".into())).unwrap().as_secs(),
            14 * 86_400
        );
        for bad in ["13", "0", "ninety", "-5", "3651", "1.5"] {
            let err = content_retention(|_| Some(bad.into()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(WABRIDGE_CONTENT_RETENTION_DAYS),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_send_request_splits_into_skeleton_and_content_and_merges_back() {
        let original = json!({"to":"+5215512345678","contact":"+5215512345678","type":"template",
            "name":"pedido","language":"es_MX","parameters":["Ana","A-17"],
            "components":[{"type":"header"}]});
        let mut request = original.clone();
        let content = split_send_content(&mut request).expect("has content");
        assert_eq!(content.len(), 2);
        assert!(request.get("parameters").is_none() && request.get("components").is_none());
        assert_eq!(request["name"], "pedido");
        let mut back = request.clone();
        merge_send_content(&mut back, Some(content));
        assert_eq!(back, original);

        let mut expired = request.clone();
        merge_send_content(&mut expired, None);
        assert_eq!(expired[PURGED], true);

        let mut text = json!({"contact":"c","type":"text","body":"Hola Ana"});
        assert_eq!(split_send_content(&mut text).unwrap()["body"], "Hola Ana");
        let mut bare = json!({"contact":"c","type":"template","name":"n","language":"es"});
        assert!(split_send_content(&mut bare).is_none());
    }

    #[test]
    fn json_paths_quote_each_field() {
        assert_eq!(json_paths(&["text", "raw"]), "'$.text', '$.raw'");
    }
}
