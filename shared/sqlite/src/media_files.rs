//! The local engine's media store: files in the data directory, `media/<sha256>` under it. A
//! download is written to `media/.pending/<uuid>`, flushed to disk, then renamed to its content
//! address (a rename is atomic, so a reader never sees half a file); an abort, or a process that
//! dies mid-download, leaves only a pending file, which the next start removes
//! ([`LocalMediaStore::open`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use wabridge_core::error::StoreError;
use wabridge_core::media::store::{MediaStore, PendingObject, StoredObject};

#[derive(Clone, Debug)]
pub struct LocalMediaStore {
    root: PathBuf,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{context}: {e}"))
}

impl LocalMediaStore {
    /// The store under `data_dir` for a process that does not download (the CLI beside a
    /// running `serve`): what is pending there is another process's download in progress.
    pub fn beside(data_dir: &Path) -> LocalMediaStore {
        LocalMediaStore {
            root: data_dir.to_path_buf(),
        }
    }

    /// The store under `data_dir`; removes what an interrupted download left.
    pub fn open(data_dir: &Path) -> Result<LocalMediaStore, StoreError> {
        let store = LocalMediaStore {
            root: data_dir.to_path_buf(),
        };
        let pending = store.pending_dir();
        if pending.exists() {
            std::fs::remove_dir_all(&pending).map_err(io("cannot clear pending media"))?;
        }
        std::fs::create_dir_all(&pending).map_err(io("cannot create the media folder"))?;
        Ok(store)
    }

    fn pending_dir(&self) -> PathBuf {
        self.root.join("media").join(".pending")
    }

    /// Every stored file's key and age (by its modification time).
    pub async fn list(&self) -> Result<Vec<(String, std::time::Duration)>, StoreError> {
        let dir = self.root.join("media");
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("cannot list the media folder")(e)),
        };
        while let Some(e) = entries
            .next_entry()
            .await
            .map_err(io("cannot list the media folder"))?
        {
            let key = format!("media/{}", e.file_name().to_string_lossy());
            if self.path_of(&key).is_none() {
                continue; // `.pending` and anything that is not a content address
            }
            let modified = e
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map_err(io("cannot read a media file"))?;
            out.push((key, modified.elapsed().unwrap_or_default()));
        }
        Ok(out)
    }

    /// The file of a key (`media/<hex>`); `None` for a key that is not a content address.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let hex = key.strip_prefix("media/")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join("media").join(hex))
    }
}

struct PendingFile {
    path: PathBuf,
    file: tokio::fs::File,
    store: LocalMediaStore,
}

#[async_trait]
impl PendingObject for PendingFile {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(io("cannot write a media file"))
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<(), StoreError> {
        let target = self
            .store
            .path_of(key)
            .ok_or_else(|| StoreError::Corrupt(format!("{key} is not a media key")))?;
        let done = async {
            self.file.flush().await?;
            self.file.sync_all().await?;
            tokio::fs::rename(&self.path, &target).await?;
            // The rename itself is durable once the folder is.
            if let Some(dir) = target.parent() {
                tokio::fs::File::open(dir).await?.sync_all().await?;
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        if done.is_err() {
            let _ = tokio::fs::remove_file(&self.path).await;
        }
        done.map_err(io("cannot store a media file"))
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

#[async_trait]
impl MediaStore for LocalMediaStore {
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.path_of(key) {
            None => Ok(false),
            Some(p) => tokio::fs::try_exists(p)
                .await
                .map_err(io("cannot read the media folder")),
        }
    }

    async fn begin(&self) -> Result<Box<dyn PendingObject>, StoreError> {
        let path = self
            .pending_dir()
            .join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(io("cannot create a media file"))?;
        Ok(Box::new(PendingFile {
            path,
            file,
            store: self.clone(),
        }))
    }

    async fn open(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let Some(path) = self.path_of(key) else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot open a media file")(e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(io("cannot read a media file"))?
            .len();
        Ok(Some(StoredObject {
            size,
            body: Box::pin(file),
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let Some(path) = self.path_of(key) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot remove a media file")(e)),
        }
    }
}
