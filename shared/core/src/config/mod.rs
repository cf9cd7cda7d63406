//! The one set of configuration names. The Lambdas, the local gateway, the SAM template and the
//! README all use these names; `tests` checks the template against this list.

use std::time::Duration;

use crate::retry::RetryPolicy;

mod settings;
pub use settings::{ConfigError, Settings};

/// Meta app secret: the HMAC key of `X-Hub-Signature-256`. Without it ingest refuses every POST.
pub const WHATSAPP_APP_SECRET: &str = "WHATSAPP_APP_SECRET";
/// Token Meta echoes in the GET verification handshake.
pub const WHATSAPP_VERIFY_TOKEN: &str = "WHATSAPP_VERIFY_TOKEN";
/// Graph API bearer token (system user token) for sends.
pub const WHATSAPP_ACCESS_TOKEN: &str = "WHATSAPP_ACCESS_TOKEN";
/// The business phone number id sends go out from.
pub const WHATSAPP_PHONE_NUMBER_ID: &str = "WHATSAPP_PHONE_NUMBER_ID";
/// Graph API base URL (default [`DEFAULT_WHATSAPP_API_URL`]).
pub const WHATSAPP_API_URL: &str = "WHATSAPP_API_URL";
/// Graph API version (default [`DEFAULT_WHATSAPP_API_VERSION`]).
pub const WHATSAPP_API_VERSION: &str = "WHATSAPP_API_VERSION";
/// Bearer key for `/sends`, `/consents`, `/links`, `/conversions`.
pub const WABRIDGE_API_KEY: &str = "WABRIDGE_API_KEY";
/// Scoped API keys (a secret): a JSON array of `{"id", "scopes", "key"}` (see `auth`).
pub const WABRIDGE_API_KEYS: &str = "WABRIDGE_API_KEYS";
/// Largest webhook body accepted, bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
pub const WABRIDGE_MAX_BODY_BYTES: &str = "WABRIDGE_MAX_BODY_BYTES";
/// Data directory of the local gateway (`wabridge serve --data`; default `./.wabridge`).
pub const WABRIDGE_DATA: &str = "WABRIDGE_DATA";
/// `local`, `webhook`, `hubspot`, `pipedrive`, `zoho`, `kommo` or `salesforce` (default
/// [`DEFAULT_CRM_KIND`]).
pub const CRM_KIND: &str = "CRM_KIND";
/// `local`: the records table of the embedded engine, so `wabridge serve` works with no CRM
/// at all. The Lambdas do not carry it, so on AWS `CRM_KIND` must name a CRM (the template
/// always sets it): an unset one stops crm-sync at start instead of guessing a CRM.
pub const DEFAULT_CRM_KIND: &str = "local";
/// Default of [`CRM_TIMEOUT_MS`].
pub const DEFAULT_CRM_TIMEOUT_MS: u64 = 10_000;

/// [`CRM_KIND`] read through `lookup`, trimmed and lower-cased; [`DEFAULT_CRM_KIND`] when unset.
pub fn crm_kind(lookup: impl Fn(&str) -> Option<String>) -> String {
    lookup(CRM_KIND)
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CRM_KIND.to_string())
}
pub const CRM_WEBHOOK_URL: &str = "CRM_WEBHOOK_URL";
pub const CRM_WEBHOOK_SECRET: &str = "CRM_WEBHOOK_SECRET";
pub const HUBSPOT_TOKEN: &str = "HUBSPOT_TOKEN";
pub const HUBSPOT_API_URL: &str = "HUBSPOT_API_URL";
/// Calls per rolling 10 s the HubSpot portal allows (default 190: private apps on Professional
/// and Enterprise; 250 with the API add-on).
pub const HUBSPOT_BURST_LIMIT: &str = "HUBSPOT_BURST_LIMIT";
/// The ticket pipeline conversations go to (default `0`, HubSpot's support pipeline), its
/// stage of open conversations (default `1`, "New") and of closed ones (default `4`, "Closed").
pub const HUBSPOT_TICKET_PIPELINE: &str = "HUBSPOT_TICKET_PIPELINE";
pub const HUBSPOT_TICKET_OPEN_STAGE: &str = "HUBSPOT_TICKET_OPEN_STAGE";
pub const HUBSPOT_TICKET_CLOSED_STAGE: &str = "HUBSPOT_TICKET_CLOSED_STAGE";
/// The deal pipeline leads go to (default `default`, HubSpot's sales pipeline) and its stage
/// of a new lead (default `appointmentscheduled`): internal ids, not labels.
pub const HUBSPOT_DEAL_PIPELINE: &str = "HUBSPOT_DEAL_PIPELINE";
pub const HUBSPOT_DEAL_STAGE: &str = "HUBSPOT_DEAL_STAGE";
/// Pipedrive personal API token (a secret), sent as `x-api-token`.
pub const PIPEDRIVE_API_TOKEN: &str = "PIPEDRIVE_API_TOKEN";
/// The company's Pipedrive API base, `https://<company>.pipedrive.com` (default
/// [`DEFAULT_PIPEDRIVE_API_URL`]).
pub const PIPEDRIVE_API_URL: &str = "PIPEDRIVE_API_URL";
/// Requests per 2-second window the token may make (the plan's burst limit; default
/// [`DEFAULT_PIPEDRIVE_BURST_LIMIT`]).
pub const PIPEDRIVE_BURST_LIMIT: &str = "PIPEDRIVE_BURST_LIMIT";
/// Pipedrive OAuth instead of [`PIPEDRIVE_API_TOKEN`] (one or the other): the app's client id
/// and secret and the refresh token of its installation in the company. Secrets, from the
/// secret store.
pub const PIPEDRIVE_CLIENT_ID: &str = "PIPEDRIVE_CLIENT_ID";
pub const PIPEDRIVE_CLIENT_SECRET: &str = "PIPEDRIVE_CLIENT_SECRET";
pub const PIPEDRIVE_REFRESH_TOKEN: &str = "PIPEDRIVE_REFRESH_TOKEN";
/// Pipedrive's OAuth server, where refresh tokens are spent (default
/// [`DEFAULT_PIPEDRIVE_OAUTH_URL`]; a test server).
pub const PIPEDRIVE_OAUTH_URL: &str = "PIPEDRIVE_OAUTH_URL";
/// Zoho CRM OAuth client (a self client or a server-based client of the Zoho API console) and
/// its refresh token: secrets, from the secret store.
pub const ZOHO_CLIENT_ID: &str = "ZOHO_CLIENT_ID";
pub const ZOHO_CLIENT_SECRET: &str = "ZOHO_CLIENT_SECRET";
pub const ZOHO_REFRESH_TOKEN: &str = "ZOHO_REFRESH_TOKEN";
/// The Zoho data centre of the org: `us` (default), `eu`, `in`, `au`, `jp`, `ca`, `sa`, `uk`,
/// `cn`. Picks the accounts server and the API domain.
pub const ZOHO_DATA_CENTER: &str = "ZOHO_DATA_CENTER";
/// Overrides of the data centre's API domain (`https://www.zohoapis.eu`; a sandbox's
/// `https://sandbox.zohoapis.com`) and accounts server.
pub const ZOHO_API_URL: &str = "ZOHO_API_URL";
pub const ZOHO_ACCOUNTS_URL: &str = "ZOHO_ACCOUNTS_URL";
/// Calls in flight the org's edition allows per app (default [`DEFAULT_ZOHO_CONCURRENCY`]).
pub const ZOHO_CONCURRENCY: &str = "ZOHO_CONCURRENCY";
/// Kommo long-lived token of a private integration (a secret), sent as a bearer. Set it, or
/// the four OAuth settings below, not both.
pub const KOMMO_TOKEN: &str = "KOMMO_TOKEN";
/// Kommo OAuth: the integration's ID and secret key, the redirect URI it was registered with,
/// and a refresh token of the account's grant (secrets, from the secret store). Kommo's refresh
/// tokens are single-use: the rotated ones live in the engine's token store (docs/oauth.md).
pub const KOMMO_CLIENT_ID: &str = "KOMMO_CLIENT_ID";
pub const KOMMO_CLIENT_SECRET: &str = "KOMMO_CLIENT_SECRET";
pub const KOMMO_REFRESH_TOKEN: &str = "KOMMO_REFRESH_TOKEN";
pub const KOMMO_REDIRECT_URI: &str = "KOMMO_REDIRECT_URI";
/// The Kommo account's subdomain: calls go to `https://{subdomain}.kommo.com`.
pub const KOMMO_SUBDOMAIN: &str = "KOMMO_SUBDOMAIN";
/// Overrides the account host (`https://{subdomain}.amocrm.ru`, a test server).
pub const KOMMO_API_URL: &str = "KOMMO_API_URL";
/// Requests per second to Kommo (default and most [`DEFAULT_KOMMO_RATE_PER_SECOND`]).
pub const KOMMO_RATE_PER_SECOND: &str = "KOMMO_RATE_PER_SECOND";
/// The Salesforce org's My Domain login URL (`https://acme.my.salesforce.com`), where the
/// client-credentials grant asks for tokens; also the API host until a grant names its
/// `instance_url`.
pub const SALESFORCE_LOGIN_URL: &str = "SALESFORCE_LOGIN_URL";
/// The External Client App's (or Connected App's) consumer key and secret: secrets.
pub const SALESFORCE_CLIENT_ID: &str = "SALESFORCE_CLIENT_ID";
pub const SALESFORCE_CLIENT_SECRET: &str = "SALESFORCE_CLIENT_SECRET";
/// REST API version, `62.0` form (default [`DEFAULT_SALESFORCE_API_VERSION`]).
pub const SALESFORCE_API_VERSION: &str = "SALESFORCE_API_VERSION";
/// The object a person becomes: `Contact` (default) or `Lead`.
pub const SALESFORCE_OBJECT: &str = "SALESFORCE_OBJECT";
/// Calls in flight at once (default [`DEFAULT_SALESFORCE_CONCURRENCY`]).
pub const SALESFORCE_CONCURRENCY: &str = "SALESFORCE_CONCURRENCY";
/// Timeout of one CRM HTTP call, milliseconds (default 10000).
pub const CRM_TIMEOUT_MS: &str = "CRM_TIMEOUT_MS";
/// Path of the field mapping file.
pub const WABRIDGE_MAPPING: &str = "WABRIDGE_MAPPING";
/// Path of the numbers registry (TOML; `docs/numbers.md`): several business numbers, each with
/// its WABA, token key, CRM target and send rate. Unset: the one number of the settings above.
pub const WABRIDGE_NUMBERS: &str = "WABRIDGE_NUMBERS";
/// DynamoDB table (single-table design) of the AWS engine.
pub const WABRIDGE_TABLE: &str = "WABRIDGE_TABLE";
/// SQS queue URLs of the AWS engine.
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
pub const EVENTS_DLQ_URL: &str = "EVENTS_DLQ_URL";
pub const SENDS_QUEUE_URL: &str = "SENDS_QUEUE_URL";
pub const SENDS_DLQ_URL: &str = "SENDS_DLQ_URL";
/// ARN of the events topic (`docs/destinations.md`): set when the stack has destinations.
/// Ingest then publishes each new event once to the topic (the events queue and every
/// destination's queue subscribe to it) instead of sending it to the events queue; consumers
/// keep claim-checked objects, which more than one queue's consumer reads.
pub const EVENTS_TOPIC_ARN: &str = "EVENTS_TOPIC_ARN";
/// A destination consumer's settings (the `relay` function, one per destination): its name
/// (names its dead letters), kind (`relay`), URL, and the key of its signing secret in the
/// stack's secret.
pub const DESTINATION_NAME: &str = "DESTINATION_NAME";
pub const DESTINATION_KIND: &str = "DESTINATION_KIND";
pub const DESTINATION_URL: &str = "DESTINATION_URL";
pub const DESTINATION_SECRET_KEY: &str = "DESTINATION_SECRET_KEY";
/// The destination's queue and dead-letter queue.
pub const DESTINATION_QUEUE_URL: &str = "DESTINATION_QUEUE_URL";
pub const DESTINATION_DLQ_URL: &str = "DESTINATION_DLQ_URL";
/// S3 bucket of the events' claim-check (`claim_check`): ingest writes events too large for
/// SQS there, crm-sync reads them back. Unset: oversized events are refused (503) and crm-sync
/// retries the pointers it cannot read.
pub const CLAIM_CHECK_BUCKET: &str = "CLAIM_CHECK_BUCKET";
/// ARN of the Secrets Manager secret (a JSON object keyed by the secret names above) that the
/// Lambdas read once per cold start. Secrets are never plain environment variables on AWS.
pub const WABRIDGE_SECRETS_ARN: &str = "WABRIDGE_SECRETS_ARN";

/// Inbound media (docs/media.md, read through `media::settings`): `on` (default) or `off`.
pub const WABRIDGE_MEDIA: &str = "WABRIDGE_MEDIA";
/// The gateway's address as the CRM's users reach it, the base of media links; unset: files are
/// stored and described without a link.
pub const WABRIDGE_PUBLIC_URL: &str = "WABRIDGE_PUBLIC_URL";
/// The key that signs media links (a secret of at least 32 bytes).
pub const WABRIDGE_MEDIA_LINK_KEY: &str = "WABRIDGE_MEDIA_LINK_KEY";
/// The media jobs' queue (crm-sync enqueues, the media function consumes) and its dead letters.
pub const MEDIA_QUEUE_URL: &str = "MEDIA_QUEUE_URL";
pub const MEDIA_DLQ_URL: &str = "MEDIA_DLQ_URL";
/// The S3 bucket of stored media files (`media/<sha256 hex>`): the media function stores
/// inbound files there, ingest redirects links into it and erases files there, the sender
/// uploads media sends' files from it, and ingest's `POST /sends` takes files with it.
pub const MEDIA_BUCKET: &str = "MEDIA_BUCKET";

/// Path of the attribution config (TOML: referral → UTM rules, window, lead policy, links).
pub const WABRIDGE_ATTRIBUTION: &str = "WABRIDGE_ATTRIBUTION";
/// Meta dataset (pixel) id that conversion events for click-to-WhatsApp ads are sent to.
pub const META_DATASET_ID: &str = "META_DATASET_ID";
/// WhatsApp Business Account id, sent as `user_data.whatsapp_business_account_id` with
/// conversion events.
pub const WHATSAPP_BUSINESS_ACCOUNT_ID: &str = "WHATSAPP_BUSINESS_ACCOUNT_ID";
/// The Meta app's id: `templates apply` uploads media header samples through its Resumable
/// Upload API.
pub const WHATSAPP_APP_ID: &str = "WHATSAPP_APP_ID";
/// The template files folder of `templates check | plan | apply` (default `templates`).
pub const WABRIDGE_TEMPLATES: &str = "WABRIDGE_TEMPLATES";
/// The language of a template send without `lang`, per recipient country
/// (`MX=es_MX,BR=pt_BR,*=en_US`; see `sends::language`).
pub const WABRIDGE_TEMPLATE_LANGUAGES: &str = "WABRIDGE_TEMPLATE_LANGUAGES";
/// Conversions API base URL (default [`DEFAULT_WHATSAPP_API_URL`]); tests point it at loopback.
pub const META_CONVERSIONS_API_URL: &str = "META_CONVERSIONS_API_URL";

/// crm-sync deliveries in flight at once in `wabridge serve` (default
/// [`DEFAULT_SYNC_CONCURRENCY`]): with a CRM answering in 50 ms and two or three calls per event,
/// 128 in flight keep a few hundred events/s going; SQLite is not the limit.
pub const WABRIDGE_SYNC_CONCURRENCY: &str = "WABRIDGE_SYNC_CONCURRENCY";
pub const DEFAULT_SYNC_CONCURRENCY: usize = 128;

/// [`WABRIDGE_SYNC_CONCURRENCY`] from the environment (1 to 1024).
pub fn sync_concurrency() -> Result<usize, ConfigError> {
    Settings::env().number(
        WABRIDGE_SYNC_CONCURRENCY,
        DEFAULT_SYNC_CONCURRENCY,
        "a number from 1 to 1024",
        |n| (1..=1024).contains(n),
    )
}

/// Messages a second one business number may send (Meta's default 80; 20 for numbers also used
/// in the Business app; up to 1,000 after an upgrade). Default [`DEFAULT_SENDS_PER_SECOND`].
pub const WABRIDGE_SENDS_PER_SECOND: &str = "WABRIDGE_SENDS_PER_SECOND";
/// How many sender processes share the number (the sender's SQS `MaximumConcurrency` on AWS;
/// 1 locally): each takes `WABRIDGE_SENDS_PER_SECOND / WABRIDGE_SENDER_INSTANCES`.
pub const WABRIDGE_SENDER_INSTANCES: &str = "WABRIDGE_SENDER_INSTANCES";
pub const DEFAULT_SENDS_PER_SECOND: f64 = 80.0;

/// [`WABRIDGE_SENDS_PER_SECOND`] and [`WABRIDGE_SENDER_INSTANCES`] through `lookup`: the
/// number's rate (more than 0, at most 1,000 a second, Meta's highest tier) and how many
/// senders share it (1 to 1,000).
pub fn send_rate(lookup: impl Fn(&str) -> Option<String>) -> Result<(f64, u32), ConfigError> {
    let settings = Settings::new(lookup);
    let rate = settings.number(
        WABRIDGE_SENDS_PER_SECOND,
        DEFAULT_SENDS_PER_SECOND,
        "messages a second, more than 0 and at most 1000",
        |r: &f64| r.is_finite() && *r > 0.0 && *r <= 1000.0,
    )?;
    let instances = settings.number(
        WABRIDGE_SENDER_INSTANCES,
        1u32,
        "a whole number of sender instances from 1 to 1000",
        |n| (1..=1000).contains(n),
    )?;
    Ok((rate, instances))
}

/// Days message content is kept (`retention::content_retention`).
pub const WABRIDGE_CONTENT_RETENTION_DAYS: &str = "WABRIDGE_CONTENT_RETENTION_DAYS";

/// Whether an opt-out on one registered number holds for the others (`consent::ConsentScope`).
pub const WABRIDGE_CONSENT_SCOPE: &str = "WABRIDGE_CONSENT_SCOPE";

/// Hours without a message after which a conversation closes (`conversations::idle_ms`).
pub const WABRIDGE_CONVERSATION_IDLE_HOURS: &str = "WABRIDGE_CONVERSATION_IDLE_HOURS";

/// Minutes a customer may wait for the first response (`conversations::sla::sla_minutes`).
pub const WABRIDGE_FIRST_RESPONSE_SLA_MINUTES: &str = "WABRIDGE_FIRST_RESPONSE_SLA_MINUTES";

/// How often `wabridge serve` sweeps conversations (`conversations::sweep::sweep_interval`).
pub const WABRIDGE_SWEEP_INTERVAL: &str = "WABRIDGE_SWEEP_INTERVAL";

/// Days an audit line is kept (`audit::retention`).
pub const WABRIDGE_AUDIT_RETENTION_DAYS: &str = "WABRIDGE_AUDIT_RETENTION_DAYS";

/// Days a confirmed effects-ledger entry (and a message's highest status) is kept before the
/// local purger deletes it / DynamoDB's TTL expires it. Default [`DEFAULT_LEDGER_RETENTION_DAYS`].
pub const WABRIDGE_LEDGER_RETENTION_DAYS: &str = "WABRIDGE_LEDGER_RETENTION_DAYS";
/// 30 days: longer than the longest a delivery can still come back after its effects were
/// confirmed. SQS keeps a message at most 14 days on its queue (the template: 7 for events, 4
/// for sends) and a dead letter up to 14 more on the DLQ (the template: 14) before an operator
/// redrives it; 14 + 14 = 28 days, plus slack. A redelivery later than the retention would
/// redo its effects; one sooner finds them done.
pub const DEFAULT_LEDGER_RETENTION_DAYS: u64 = 30;

/// [`WABRIDGE_LEDGER_RETENTION_DAYS`] from the environment (see [`parse_ledger_retention`]).
pub fn ledger_retention() -> Result<std::time::Duration, ConfigError> {
    parse_ledger_retention(
        std::env::var(WABRIDGE_LEDGER_RETENTION_DAYS)
            .ok()
            .as_deref(),
    )
}

/// A whole number of days from 1 to 3650; unset or blank means the default. Anything else is
/// an error naming the variable (the gateway refuses to start rather than guess).
pub fn parse_ledger_retention(value: Option<&str>) -> Result<std::time::Duration, ConfigError> {
    let days = Settings::new(|_| value.map(str::to_string)).number(
        WABRIDGE_LEDGER_RETENTION_DAYS,
        DEFAULT_LEDGER_RETENTION_DAYS,
        "a whole number of days from 1 to 3650",
        |d| (1..=3650).contains(d),
    )?;
    Ok(std::time::Duration::from_secs(days * 24 * 3600))
}

pub const DEFAULT_WHATSAPP_API_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_WHATSAPP_API_VERSION: &str = "v23.0";
pub const DEFAULT_HUBSPOT_API_URL: &str = "https://api.hubapi.com";
pub const DEFAULT_PIPEDRIVE_API_URL: &str = "https://api.pipedrive.com";
/// The lowest plan's (Essential) API-token burst limit per 2 s.
pub const DEFAULT_PIPEDRIVE_BURST_LIMIT: u64 = 20;
pub const DEFAULT_PIPEDRIVE_OAUTH_URL: &str = "https://oauth.pipedrive.com";
/// The lowest plan's (Essential) OAuth access-token burst limit per 2 s.
pub const DEFAULT_PIPEDRIVE_OAUTH_BURST_LIMIT: u64 = 80;
/// The Standard edition's concurrency limit per org and app (Free 5, Professional 15,
/// Enterprise 20, Ultimate 25).
pub const DEFAULT_ZOHO_CONCURRENCY: u64 = 10;
/// Kommo's documented limit: 7 requests per second (repeated 429s get the IP blocked).
pub const DEFAULT_KOMMO_RATE_PER_SECOND: u64 = 7;
/// A REST API version every org serves (Winter '25); sObject Collections upsert needs 46.0+.
pub const DEFAULT_SALESFORCE_API_VERSION: &str = "62.0";
/// Below Salesforce's cap on long-running calls in flight (25 in production, 5 in Developer
/// Edition and trial orgs: set 5 there).
pub const DEFAULT_SALESFORCE_CONCURRENCY: u64 = 10;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Names whose values are secrets: read from the secret store on AWS, never logged.
pub const SECRET_NAMES: &[&str] = &[
    WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
    WHATSAPP_ACCESS_TOKEN,
    WABRIDGE_API_KEY,
    WABRIDGE_API_KEYS,
    CRM_WEBHOOK_SECRET,
    HUBSPOT_TOKEN,
    PIPEDRIVE_API_TOKEN,
    PIPEDRIVE_CLIENT_ID,
    PIPEDRIVE_CLIENT_SECRET,
    PIPEDRIVE_REFRESH_TOKEN,
    ZOHO_CLIENT_ID,
    ZOHO_CLIENT_SECRET,
    ZOHO_REFRESH_TOKEN,
    KOMMO_TOKEN,
    KOMMO_CLIENT_ID,
    KOMMO_CLIENT_SECRET,
    KOMMO_REFRESH_TOKEN,
    KOMMO_REDIRECT_URI,
    SALESFORCE_CLIENT_ID,
    SALESFORCE_CLIENT_SECRET,
    WABRIDGE_MEDIA_LINK_KEY,
];

/// How long an event waits out transient failures before it is dead-lettered (see
/// [`crate::retry`]): `7d` by default, `36h`, `90min`... from 1 minute to 9 days (SQS keeps
/// events 10 days, a day to spare for the last attempts; their DLQ keeps them 14).
pub const WABRIDGE_RETRY_HORIZON: &str = "WABRIDGE_RETRY_HORIZON";
/// How long a send may wait for Meta's API before it ends `failed`: `24h` by default, from 1
/// minute to 3 days (SQS keeps sends 4 days).
pub const WABRIDGE_SEND_RETRY_HORIZON: &str = "WABRIDGE_SEND_RETRY_HORIZON";

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// The retry policies of the events and the sends queues.
pub fn retry_policies(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(RetryPolicy, RetryPolicy), ConfigError> {
    let s = Settings::new(lookup);
    let events = s.duration(
        WABRIDGE_RETRY_HORIZON,
        RetryPolicy::EVENTS.horizon,
        "a duration from 1min to 9d, such as 7d or 36h",
        |d| (MINUTE..=9 * DAY).contains(d),
    )?;
    let sends = s.duration(
        WABRIDGE_SEND_RETRY_HORIZON,
        RetryPolicy::SENDS.horizon,
        "a duration from 1min to 3d, such as 24h or 90min",
        |d| (MINUTE..=3 * DAY).contains(d),
    )?;
    Ok((
        RetryPolicy { horizon: events },
        RetryPolicy { horizon: sends },
    ))
}

#[cfg(test)]
mod tests;
