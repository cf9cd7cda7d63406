//! `wabridge erase --contact <phone|BSUID|contact id>`: the erasure of a person from the local
//! store ([`wabridge_core::erasure`]), the same service `DELETE /contacts/{id}` calls.

use std::path::Path;
use std::sync::Arc;

use wabridge_aws::engine::AwsEngine;
use wabridge_aws::s3_media_links::S3MediaLinks;
use wabridge_core::audit::CLI_ACTOR;
use wabridge_core::config::MEDIA_BUCKET;
use wabridge_core::erasure::{ErasureError, ErasureService};
use wabridge_sqlite::{Db, LocalMediaStore, SqliteErasure};

use crate::error::CliError;

/// The erasure service over the local store (the person's media files under `data` too), its
/// audit lines in the same file.
pub async fn service(db: &Db, data: &Path) -> Result<ErasureService, CliError> {
    let media = LocalMediaStore::beside(data);
    let store = SqliteErasure::open(db.clone())
        .await
        .map_err(CliError::store("cannot open the erasure store"))?
        .with_media(media);
    Ok(ErasureService::new(
        Arc::new(store),
        crate::audit::local(db)?,
    ))
}

/// The erasure service over a deployment's table (and its media bucket, `MEDIA_BUCKET`); the
/// CRM's event goes on `EVENTS_QUEUE_URL`.
async fn deployment(table: &str) -> Result<ErasureService, CliError> {
    let events = wabridge_core::config::Settings::env().required(
        wabridge_core::config::EVENTS_QUEUE_URL,
        "the CRM's erasure event goes on the events queue",
    )?;
    let retention = wabridge_core::audit::retention(|n| std::env::var(n).ok())?;
    let sdk = wabridge_aws::sdk::chain_config().await;
    let mut engine = AwsEngine::new(sdk, table);
    // The person's media files go too; without the bucket an erasure that finds files to
    // delete fails, naming MEDIA_BUCKET, rather than leave them behind.
    if let Some(bucket) = wabridge_core::config::Settings::env().optional(MEDIA_BUCKET) {
        engine = engine.with_media(Arc::new(S3MediaLinks::new(sdk, bucket)));
    }
    let audit = engine.audit(retention);
    Ok(engine.erasure(events, audit))
}

pub async fn run(data: &Path, contact: &str, table: Option<&str>) -> Result<(), CliError> {
    let service = match table.filter(|t| !t.trim().is_empty()) {
        Some(table) => deployment(table).await?,
        None => service(&crate::data::open_existing(data)?, data).await?,
    };
    match service.erase(contact, CLI_ACTOR).await {
        Ok(erased) => {
            println!("{}", serde_json::json!(erased));
            Ok(())
        }
        Err(ErasureError::BadTarget(problem)) => Err(CliError::argument("--contact", problem)),
        Err(ErasureError::NotFound) => Err(CliError::NoContact),
        Err(ErasureError::Store(e)) => Err(CliError::store("cannot erase")(e)),
    }
}
