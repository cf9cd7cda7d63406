//! The one set of configuration names. The Lambdas, the local gateway, the SAM template and the
//! README all use these names; `tests` checks the template against this list.

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
/// Largest webhook body accepted, bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
pub const WABRIDGE_MAX_BODY_BYTES: &str = "WABRIDGE_MAX_BODY_BYTES";
/// Data directory of the local gateway (`wabridge serve --data`; default `./.wabridge`).
pub const WABRIDGE_DATA: &str = "WABRIDGE_DATA";
/// `local`, `webhook` or `hubspot`.
pub const CRM_KIND: &str = "CRM_KIND";
pub const CRM_WEBHOOK_URL: &str = "CRM_WEBHOOK_URL";
pub const CRM_WEBHOOK_SECRET: &str = "CRM_WEBHOOK_SECRET";
pub const HUBSPOT_TOKEN: &str = "HUBSPOT_TOKEN";
pub const HUBSPOT_API_URL: &str = "HUBSPOT_API_URL";
/// Timeout of one CRM HTTP call, milliseconds (default 10000).
pub const CRM_TIMEOUT_MS: &str = "CRM_TIMEOUT_MS";
/// Path of the field mapping file.
pub const WABRIDGE_MAPPING: &str = "WABRIDGE_MAPPING";
/// DynamoDB table (single-table design) of the AWS engine.
pub const WABRIDGE_TABLE: &str = "WABRIDGE_TABLE";
/// SQS queue URLs of the AWS engine.
pub const EVENTS_QUEUE_URL: &str = "EVENTS_QUEUE_URL";
pub const EVENTS_DLQ_URL: &str = "EVENTS_DLQ_URL";
pub const SENDS_QUEUE_URL: &str = "SENDS_QUEUE_URL";
pub const SENDS_DLQ_URL: &str = "SENDS_DLQ_URL";
/// ARN of the Secrets Manager secret (a JSON object keyed by the secret names above) that the
/// Lambdas read once per cold start. Secrets are never plain environment variables on AWS.
pub const WABRIDGE_SECRETS_ARN: &str = "WABRIDGE_SECRETS_ARN";

/// Path of the attribution config (TOML: referral → UTM rules, window, lead policy, links).
pub const WABRIDGE_ATTRIBUTION: &str = "WABRIDGE_ATTRIBUTION";
/// Meta dataset (pixel) id that conversion events for click-to-WhatsApp ads are sent to.
pub const META_DATASET_ID: &str = "META_DATASET_ID";
/// WhatsApp Business Account id, sent as `user_data.whatsapp_business_account_id` with
/// conversion events.
pub const WHATSAPP_BUSINESS_ACCOUNT_ID: &str = "WHATSAPP_BUSINESS_ACCOUNT_ID";
/// Conversions API base URL (default [`DEFAULT_WHATSAPP_API_URL`]); tests point it at loopback.
pub const META_CONVERSIONS_API_URL: &str = "META_CONVERSIONS_API_URL";

/// Messages a second one business number may send (Meta's default 80; 20 for numbers also used
/// in the Business app; up to 1,000 after an upgrade). Default [`DEFAULT_SENDS_PER_SECOND`].
pub const WABRIDGE_SENDS_PER_SECOND: &str = "WABRIDGE_SENDS_PER_SECOND";
/// How many sender processes share the number (the sender's SQS `MaximumConcurrency` on AWS;
/// 1 locally): each takes `WABRIDGE_SENDS_PER_SECOND / WABRIDGE_SENDER_INSTANCES`.
pub const WABRIDGE_SENDER_INSTANCES: &str = "WABRIDGE_SENDER_INSTANCES";
pub const DEFAULT_SENDS_PER_SECOND: f64 = 80.0;

pub const DEFAULT_WHATSAPP_API_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_WHATSAPP_API_VERSION: &str = "v23.0";
pub const DEFAULT_HUBSPOT_API_URL: &str = "https://api.hubapi.com";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Names whose values are secrets: read from the secret store on AWS, never logged.
pub const SECRET_NAMES: &[&str] = &[
    WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN,
    WHATSAPP_ACCESS_TOKEN,
    WABRIDGE_API_KEY,
    CRM_WEBHOOK_SECRET,
    HUBSPOT_TOKEN,
];
