//! Replica storage: a small trait and the concrete clients (file, S3, in-memory for tests).

pub mod file;
pub mod memory;
pub mod multi;
pub mod s3;

use std::future::Future;

pub use crate::payload::Payload;
pub use file::FileClient;
pub use memory::MemoryClient;
pub use multi::{MemberStatus, MultiClient};
pub use s3::{S3Client, S3Options};

/// Level of full snapshots.
pub const SNAPSHOT_LEVEL: u8 = 9;

/// One LTX object in a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub level: u8,
    pub min_txid: u64,
    pub max_txid: u64,
    pub size: u64,
    /// Creation time, ms since the epoch (mtime / LastModified, or the
    /// `litestream-timestamp` metadata when listed with `precise_times`).
    pub created_ms: i64,
}

impl FileInfo {
    pub fn name(&self) -> String {
        crate::ltx::format_filename(self.min_txid, self.max_txid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{object}: not found")]
    NotFound { object: String },
    #[error("{object}: {source}")]
    Io {
        object: String,
        source: std::io::Error,
    },
    #[error("s3 {op} {object}: {message}")]
    S3 {
        op: &'static str,
        object: String,
        message: String,
    },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. })
    }
}

/// What a replica must offer. Listings are sorted by (min, max) TXID.
pub trait ReplicaClient: Send + Sync {
    /// `file:///path` or `s3://bucket/path`, for logs and errors.
    fn describe(&self) -> String;
    /// Where an object lives, for error messages (`<path>/0000/<name>` or `ltx/0/<name>`).
    fn object_name(&self, level: u8, min: u64, max: u64) -> String;
    fn list(
        &self,
        level: u8,
        precise_times: bool,
    ) -> impl Future<Output = Result<Vec<FileInfo>, ClientError>> + Send;
    fn get(
        &self,
        level: u8,
        min: u64,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ClientError>> + Send;
    /// Store an object; `timestamp_ms` becomes the mtime / `litestream-timestamp`. A
    /// spooled payload is uploaded from its file, never read whole into memory.
    fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        timestamp_ms: i64,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn delete(&self, files: &[FileInfo]) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Remove everything under the replica path.
    fn delete_all(&self) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// The object as a local file, when the replica is a directory (restore reads it in place).
    fn local_path(&self, _level: u8, _min: u64, _max: u64) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether [`ReplicaClient::download`] writes `dest` once from start to end, so it can be
    /// read while it downloads (a restore decodes as the object arrives). A replica set is
    /// not: when one member fails mid-object the next one writes the file again from 0.
    fn download_is_one_pass(&self) -> bool {
        true
    }
    /// Store an object into the local file `dest` (created or truncated); returns its size.
    /// Clients override this to stream instead of holding the object in memory.
    fn download(
        &self,
        level: u8,
        min: u64,
        max: u64,
        dest: &std::path::Path,
    ) -> impl Future<Output = Result<u64, ClientError>> + Send {
        async move {
            let b = self.get(level, min, max).await?;
            std::fs::write(dest, &b).map_err(|source| ClientError::Io {
                object: dest.display().to_string(),
                source,
            })?;
            Ok(b.len() as u64)
        }
    }
}

/// A replica client chosen by configuration.
pub enum Client {
    File(FileClient),
    S3(S3Client),
    /// Shared so tests can inspect it and inject faults.
    Memory(std::sync::Arc<MemoryClient>),
    /// Several independent replicas (`replicas:` with more than one entry).
    Multi(std::sync::Arc<MultiClient>),
}

/// A [`Client::Multi`] used where one replica is meant (a member of another set).
fn nested(op: &'static str) -> ClientError {
    ClientError::S3 {
        op,
        object: String::new(),
        message: "a replica set cannot be a member of another set".into(),
    }
}

/// One replica's operations: [`MultiClient`] calls its members through these, which never
/// lead back into a set (so its futures are not recursive).
impl Client {
    /// The replicas this client writes to: itself, or a set's members.
    pub fn members(&self) -> Vec<&Client> {
        match self {
            Client::Multi(m) => m.members().collect(),
            c => vec![c],
        }
    }

    /// Per-member state of a replica set (empty for one replica).
    pub fn member_status(&self) -> Vec<MemberStatus> {
        match self {
            Client::Multi(m) => m.member_status(),
            _ => Vec::new(),
        }
    }

    /// Start a replica set's workers (and their resync), counting each member's failures in
    /// `errors`; nothing for one replica.
    pub fn start(&self, errors: prometheus_client::metrics::counter::Counter) {
        if let Client::Multi(m) = self {
            m.count_errors_in(errors);
            m.start();
        }
    }

    async fn single_list(&self, level: u8, precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        match self {
            Client::File(c) => c.list(level, precise).await,
            Client::S3(c) => c.list(level, precise).await,
            Client::Memory(c) => c.list(level, precise).await,
            Client::Multi(_) => Err(nested("list")),
        }
    }
    async fn single_get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        match self {
            Client::File(c) => c.get(level, min, max).await,
            Client::S3(c) => c.get(level, min, max).await,
            Client::Memory(c) => c.get(level, min, max).await,
            Client::Multi(_) => Err(nested("get")),
        }
    }
    async fn single_put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        match self {
            Client::File(c) => c.put(level, min, max, data, ts).await,
            Client::S3(c) => c.put(level, min, max, data, ts).await,
            Client::Memory(c) => c.put(level, min, max, data, ts).await,
            Client::Multi(_) => Err(nested("put")),
        }
    }
    async fn single_delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        match self {
            Client::File(c) => c.delete(files).await,
            Client::S3(c) => c.delete(files).await,
            Client::Memory(c) => c.delete(files).await,
            Client::Multi(_) => Err(nested("delete")),
        }
    }
    async fn single_delete_all(&self) -> Result<(), ClientError> {
        match self {
            Client::File(c) => c.delete_all().await,
            Client::S3(c) => c.delete_all().await,
            Client::Memory(c) => c.delete_all().await,
            Client::Multi(_) => Err(nested("delete_all")),
        }
    }
    async fn single_download(
        &self,
        level: u8,
        min: u64,
        max: u64,
        dest: &std::path::Path,
    ) -> Result<u64, ClientError> {
        match self {
            Client::File(c) => c.download(level, min, max, dest).await,
            Client::S3(c) => c.download(level, min, max, dest).await,
            Client::Memory(c) => c.download(level, min, max, dest).await,
            Client::Multi(_) => Err(nested("download")),
        }
    }
}

impl ReplicaClient for Client {
    fn describe(&self) -> String {
        match self {
            Client::File(c) => c.describe(),
            Client::S3(c) => c.describe(),
            Client::Memory(c) => c.describe(),
            Client::Multi(c) => c.describe(),
        }
    }
    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        match self {
            Client::File(c) => c.object_name(level, min, max),
            Client::S3(c) => c.object_name(level, min, max),
            Client::Memory(c) => c.object_name(level, min, max),
            Client::Multi(c) => c.object_name(level, min, max),
        }
    }
    async fn list(&self, level: u8, precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        match self {
            Client::Multi(c) => c.list(level, precise).await,
            c => c.single_list(level, precise).await,
        }
    }
    async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        match self {
            Client::Multi(c) => c.get(level, min, max).await,
            c => c.single_get(level, min, max).await,
        }
    }
    async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        match self {
            Client::Multi(c) => c.put(level, min, max, data, ts).await,
            c => c.single_put(level, min, max, data, ts).await,
        }
    }
    async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        match self {
            Client::Multi(c) => c.delete(files).await,
            c => c.single_delete(files).await,
        }
    }
    async fn delete_all(&self) -> Result<(), ClientError> {
        match self {
            Client::Multi(c) => c.delete_all().await,
            c => c.single_delete_all().await,
        }
    }
    fn download_is_one_pass(&self) -> bool {
        !matches!(self, Client::Multi(_))
    }
    fn local_path(&self, level: u8, min: u64, max: u64) -> Option<std::path::PathBuf> {
        match self {
            Client::File(c) => c.local_path(level, min, max),
            Client::S3(c) => c.local_path(level, min, max),
            Client::Memory(c) => c.local_path(level, min, max),
            Client::Multi(c) => c.local_path(level, min, max),
        }
    }
    async fn download(
        &self,
        level: u8,
        min: u64,
        max: u64,
        dest: &std::path::Path,
    ) -> Result<u64, ClientError> {
        match self {
            Client::Multi(c) => c.download(level, min, max, dest).await,
            c => c.single_download(level, min, max, dest).await,
        }
    }
}

/// All levels that may hold files, in ascending order.
pub const LEVELS: [u8; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
