//! Attribution in the local gateway: the `/links` and `/conversions` routes, `wabridge link
//! create` and `wabridge report attribution`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wabridge_attribution::conversions::MetaConversions;
use wabridge_attribution::qr;
use wabridge_attribution::service::{AttributionService, PNG_SCALE};
use wabridge_aws::dynamo::attribution::DynamoAttribution;
use wabridge_core::attribution::report::{parse_since, Format};
use wabridge_core::attribution::{AttributionConfig, AttributionStore, LinkRequest};
use wabridge_core::audit::Audit;
use wabridge_core::auth::ApiKeys;
use wabridge_core::clock::now_ms;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::Db;

use crate::error::CliError;

/// The service behind `POST /links` and `POST /conversions` (config from
/// `WABRIDGE_ATTRIBUTION`, Meta from `META_DATASET_ID` and friends).
pub async fn service(
    db: &Db,
    keys: Arc<ApiKeys>,
    audit: Audit,
    numbers: Option<Arc<wabridge_core::numbers::Numbers>>,
) -> Result<Arc<AttributionService>, CliError> {
    let config = AttributionConfig::from_env()?;
    let store = SqliteAttribution::open(db.clone())
        .await
        .map_err(CliError::store("cannot open the attribution store"))?;
    let meta = MetaConversions::from_lookup(|n| std::env::var(n).ok())?;
    let service = AttributionService::new(Arc::new(store), Arc::new(config), meta, keys)
        .with_audit(audit)
        .with_conversations(crate::conversations::updates(db)?);
    Ok(Arc::new(match numbers {
        Some(numbers) => service.with_numbers(numbers),
        None => service,
    }))
}

/// Options of `wabridge link create`.
#[derive(clap::Args, Clone, Debug)]
pub struct LinkArgs {
    #[arg(long)]
    pub utm_source: String,
    #[arg(long)]
    pub utm_medium: String,
    #[arg(long)]
    pub utm_campaign: String,
    #[arg(long)]
    pub utm_content: Option<String>,
    #[arg(long)]
    pub utm_term: Option<String>,
    #[arg(long)]
    pub gclid: Option<String>,
    #[arg(long)]
    pub fbclid: Option<String>,
    #[arg(long)]
    pub landing_page: Option<String>,
    /// Text the chat opens with (`{code}` marks where the code goes).
    #[arg(long)]
    pub text: Option<String>,
    /// The business's WhatsApp number (default: business_number of the attribution config).
    #[arg(long, conflicts_with = "from")]
    pub phone: Option<String>,
    /// A registered number (label or phone_number_id, WABRIDGE_NUMBERS) the link opens a chat
    /// with: its display number.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Write the QR code as SVG here.
    #[arg(long)]
    pub qr_svg: Option<PathBuf>,
    /// Write the QR code as PNG here.
    #[arg(long)]
    pub qr_png: Option<PathBuf>,
}

/// `wabridge link create`: prints the stored link as one JSON object.
pub async fn link_create(data: &Path, args: LinkArgs) -> Result<(), CliError> {
    let config = AttributionConfig::from_env()?;
    let request = LinkRequest {
        utm_source: Some(args.utm_source),
        utm_medium: Some(args.utm_medium),
        utm_campaign: Some(args.utm_campaign),
        utm_content: args.utm_content,
        utm_term: args.utm_term,
        gclid: args.gclid,
        fbclid: args.fbclid,
        landing_page: args.landing_page,
        prefilled_text: args.text,
        phone_number: args.phone,
        from: args.from,
        expires_in_days: args.expires_in_days,
    };
    let mut request = request;
    // Only the display numbers are read: no token is needed to print a link.
    let numbers = crate::numbers::registry()?;
    request
        .resolve_from(numbers.as_ref(), &config)
        .map_err(|(_, message)| {
            CliError::link(wabridge_core::attribution::link::LinkError {
                field: "from",
                problem: message,
            })
        })?;
    let spec = request.validate(&config).map_err(CliError::link)?;
    let db = crate::data::open_or_create(data)?;
    let store = SqliteAttribution::open(db.clone())
        .await
        .map_err(CliError::store("cannot open the attribution store"))?;
    let link = store
        .create_link(&spec, now_ms())
        .await
        .map_err(CliError::store("cannot store the link"))?;
    crate::audit::note_local(&db, wabridge_core::audit::action::LINK, Some(&link.code)).await?;
    if let Some(path) = &args.qr_svg {
        let svg = qr::svg(&link.url)?;
        std::fs::write(path, svg).map_err(CliError::io("write", path))?;
    }
    if let Some(path) = &args.qr_png {
        let png = qr::png(&link.url, PNG_SCALE)?;
        std::fs::write(path, png).map_err(CliError::io("write", path))?;
    }
    let json = serde_json::to_string(&link).map_err(|source| CliError::Json {
        what: "the link",
        source,
    })?;
    println!("{json}");
    Ok(())
}

/// `wabridge report attribution`: over the local store, or over a deployment's DynamoDB
/// table when `table` is given.
pub async fn report(
    data: &Path,
    table: Option<&str>,
    since: &str,
    format: &str,
) -> Result<(), CliError> {
    let format: Format = format
        .parse()
        .map_err(|e| CliError::argument("--format", e))?;
    let now = now_ms();
    let since_ms = parse_since(since, now).map_err(|e| CliError::argument("--since", e))?;
    let report = match table.filter(|t| !t.trim().is_empty()) {
        Some(table) => DynamoAttribution::from_env(table)
            .await
            .report(since_ms, now)
            .await
            .map_err(CliError::store(format!(
                "cannot read the attribution report from table {table}"
            )))?,
        None => {
            let db = crate::data::open_existing(data)?;
            let store = SqliteAttribution::open(db)
                .await
                .map_err(CliError::store("cannot open the attribution store"))?;
            store
                .report(since_ms)
                .await
                .map_err(CliError::store("cannot read the attribution report"))?
        }
    };
    print!("{}", report.render(format));
    Ok(())
}
