//! The sender's lines over a numbers registry (docs/numbers.md): each registered number sends
//! through its own Graph client (its `{Phone-Number-ID}` path and its token, read by key from
//! the stack's secret), at its own pace (`sends_per_second` split over the sender's
//! instances), and uploads its files from the same number, as `wabridge serve` does.

use std::sync::Arc;

use wabridge_core::config;
use wabridge_core::numbers::{Number, Numbers};
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::MediaUploader;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_graph::GraphClient;

/// One number's line, ready to add to a [`Sender`].
pub struct Line {
    pub phone_number_id: String,
    pub graph: GraphConfig,
    pub limiter: RateLimiter,
    /// Uploads its files to Meta from this number (none: media sends from it fail).
    pub media: Option<Arc<MediaUploader>>,
}

/// The Graph settings of `n`: the stack's API URL and version (`WHATSAPP_API_URL`,
/// `WHATSAPP_API_VERSION` through `lookup`), its id, its token from `secret` by its key. A
/// token the secret lacks stops the cold start, naming the number and the key (never a value).
pub fn graph_config(
    n: &Number,
    lookup: impl Fn(&str) -> Option<String>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<GraphConfig, config::ConfigError> {
    let (base_url, version) = config::Settings::new(lookup).graph_api()?;
    let access_token = secret(&n.token_key).ok_or(config::ConfigError::Missing {
        name: config::WHATSAPP_ACCESS_TOKEN,
        consequence: "a registered number's token_key names no key of the stack's secret",
    })?;
    Ok(GraphConfig {
        base_url,
        version,
        phone_number_id: n.phone_number_id.clone(),
        access_token,
        timeout: std::time::Duration::from_secs(10),
    })
}

/// Every number's line; `instances` share each number's rate (`WABRIDGE_SENDER_INSTANCES`).
pub fn lines(
    numbers: &Numbers,
    instances: u32,
    lookup: impl Fn(&str) -> Option<String>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Line>, String> {
    numbers
        .all()
        .iter()
        .map(|n| {
            let graph = graph_config(n, &lookup, &secret)
                .map_err(|e| format!("number `{}` (token_key {}): {e}", n.label, n.token_key))?;
            Ok(Line {
                phone_number_id: n.phone_number_id.clone(),
                graph,
                limiter: RateLimiter::for_instances(n.sends_per_second, instances),
                media: None,
            })
        })
        .collect()
}

/// `sender` with `lines`.
pub fn with_lines(mut sender: Sender, lines: Vec<Line>) -> Sender {
    for line in lines {
        let id = line.phone_number_id;
        let graph = Arc::new(GraphClient::new(line.graph));
        sender = sender.with_line(&id, graph, Arc::new(line.limiter));
        if let Some(media) = line.media {
            sender = sender.with_line_media(&id, media);
        }
    }
    sender
}
