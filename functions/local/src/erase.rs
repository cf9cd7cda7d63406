//! `wabridge erase --contact <phone|BSUID|contact id>`: the erasure of a person from the local
//! store ([`wabridge_core::erasure`]), the same service `DELETE /contacts/{id}` calls.

use std::path::Path;
use std::sync::Arc;

use wabridge_core::audit::CLI_ACTOR;
use wabridge_core::erasure::{ErasureError, ErasureService};
use wabridge_sqlite::{Db, SqliteErasure};

use crate::error::CliError;

/// The erasure service over the local store, its audit lines in the same file.
pub async fn service(db: &Db) -> Result<ErasureService, CliError> {
    let store = SqliteErasure::open(db.clone())
        .await
        .map_err(CliError::store("cannot open the erasure store"))?;
    Ok(ErasureService::new(
        Arc::new(store),
        crate::audit::local(db)?,
    ))
}

pub async fn run(data: &Path, contact: &str) -> Result<(), CliError> {
    let db = crate::data::open_existing(data)?;
    match service(&db).await?.erase(contact, CLI_ACTOR).await {
        Ok(erased) => {
            println!("{}", serde_json::json!(erased));
            Ok(())
        }
        Err(ErasureError::BadTarget(problem)) => Err(CliError::argument("--contact", problem)),
        Err(ErasureError::NotFound) => Err(CliError::NoContact),
        Err(ErasureError::Store(e)) => Err(CliError::store("cannot erase")(e)),
    }
}
