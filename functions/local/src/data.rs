//! The one way the CLI opens the data directory's database: `serve` and the commands that write
//! (`templates sync`, `link create`) create it when it is missing; the commands that only read
//! refuse a missing one, naming the path, instead of reporting on an empty database.

use std::path::Path;

use wabridge_sqlite::Db;

use crate::error::CliError;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "wabridge.db";

/// Opens the data dir's database, creating the directory and the database when missing.
pub fn open_or_create(data: &Path) -> Result<Db, CliError> {
    std::fs::create_dir_all(data).map_err(CliError::io("create", data))?;
    let path = data.join(DB_FILE);
    Db::open(&path).map_err(|source| CliError::OpenDatabase { path, source })
}

/// Opens an existing data dir's database (a reading command never creates one by accident).
pub fn open_existing(data: &Path) -> Result<Db, CliError> {
    let path = data.join(DB_FILE);
    if !path.exists() {
        return Err(CliError::NoDatabase {
            path,
            data: data.to_path_buf(),
        });
    }
    Db::open(&path).map_err(|source| CliError::OpenDatabase { path, source })
}
