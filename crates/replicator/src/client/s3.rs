//! S3 replicas: `<path>/<level 4 hex>/<min>-<max>.ltx`, metadata `litestream-timestamp`.
//!
//! Non-AWS endpoints (Garage, MinIO, B2, s3s) get `WhenRequired` request/response checksums
//! (Garage rejects the SDK's default aws-chunked streaming checksums) and path-style addressing.
//!
//! Objects larger than the part size (`part-size`, default [`DEFAULT_PART_SIZE`]) are uploaded
//! as a multipart upload (CreateMultipartUpload, UploadPart x n with up to `concurrency` parts
//! in flight, CompleteMultipartUpload; AbortMultipartUpload on any failure), as Litestream's
//! uploader does (its default part size is 5 MiB; ours is larger so that a home database's
//! snapshots usually stay single PUTs).

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

use super::{ClientError, FileInfo, Payload, ReplicaClient};
use crate::ltx::{format_filename, parse_filename};

/// Connection settings (from litestream.yml or a `s3://` URL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix without leading slash.
    pub path: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Multipart threshold and part size in bytes (default [`DEFAULT_PART_SIZE`]; S3 needs
    /// parts of at least [`MIN_PART_SIZE`]).
    pub part_size: Option<u64>,
    /// Parts uploaded at once (default [`DEFAULT_CONCURRENCY`]).
    pub concurrency: Option<usize>,
}

/// Objects above this size are uploaded in parts of this size.
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;
/// The smallest part S3 accepts (all but the last part).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Parts in flight at once (Litestream's default).
pub const DEFAULT_CONCURRENCY: usize = 5;

pub struct S3Client {
    client: aws_sdk_s3::Client,
    bucket: String,
    path: String,
    part_size: u64,
    concurrency: usize,
    multipart_uploads: std::sync::atomic::AtomicU64,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl S3Client {
    pub fn new(o: &S3Options) -> Result<Self, ClientError> {
        let err = |message: String| ClientError::S3 {
            op: "config",
            object: o.bucket.clone(),
            message,
        };
        if o.bucket.is_empty() {
            return Err(err("bucket is empty".into()));
        }
        let key = o
            .access_key_id
            .clone()
            .or_else(|| env_first(&["LITESTREAM_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]))
            .ok_or_else(|| err("no access key: set access-key-id or AWS_ACCESS_KEY_ID".into()))?;
        let secret = o
            .secret_access_key
            .clone()
            .or_else(|| env_first(&["LITESTREAM_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]))
            .ok_or_else(|| {
                err("no secret key: set secret-access-key or AWS_SECRET_ACCESS_KEY".into())
            })?;
        let region = o
            .region
            .clone()
            .or_else(|| env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
            .unwrap_or_else(|| "us-east-1".into());
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(Credentials::new(key, secret, None, None, "static"));
        if let Some(ep) = &o.endpoint {
            b = b
                .endpoint_url(ep)
                .force_path_style(o.force_path_style.unwrap_or(true))
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        } else if let Some(p) = o.force_path_style {
            b = b.force_path_style(p);
        }
        let part_size = o.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(err(format!(
                "part size {part_size} is below the S3 minimum of {MIN_PART_SIZE} bytes (5 MiB)"
            )));
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: o.bucket.clone(),
            path: o.path.trim_matches('/').to_owned(),
            part_size,
            concurrency: o.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            multipart_uploads: Default::default(),
        })
    }

    /// Multipart uploads completed by this client (for tests and the bench).
    pub fn multipart_uploads(&self) -> u64 {
        self.multipart_uploads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Upload `data` in parts; abort the upload if anything fails.
    async fn put_multipart(&self, key: &str, data: Payload, ts: i64) -> Result<(), ClientError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .metadata("litestream-timestamp", crate::time::format_rfc3339(ts))
            .send()
            .await
            .map_err(|e| Self::s3err("put", key.to_owned(), e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| ClientError::S3 {
                op: "put",
                object: key.to_owned(),
                message: "CreateMultipartUpload returned no upload id".into(),
            })?
            .to_owned();
        let result = match self.upload_parts(key, &upload_id, data).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Self::s3err("put", key.to_owned(), e)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if let Err(a) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                log::warn!(object = key, upload_id = upload_id.as_str(), error = format!("{}", DisplayErrorContext(a)).as_str(); "aborting a failed multipart upload failed; the bucket's lifecycle rules must clean it up");
            }
            return Err(e);
        }
        self.multipart_uploads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// UploadPart for each `part_size` slice, `concurrency` at a time; the parts in order.
    /// A spooled payload's parts are streamed from the file at their offsets.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: Payload,
    ) -> Result<Vec<CompletedPart>, ClientError> {
        let ps = self.part_size;
        let len = data.len();
        let count = len.div_ceil(ps);
        let mut inflight = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        loop {
            while inflight.len() < self.concurrency && next < count {
                let offset = next * ps;
                let body = Self::body(key, &data, offset, ps.min(len - offset)).await?;
                let number = next as i32 + 1;
                let req = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(body);
                inflight.spawn(async move { (number, req.send().await) });
                next += 1;
            }
            let Some(joined) = inflight.join_next().await else {
                break;
            };
            let (number, sent) = joined.map_err(|e| ClientError::S3 {
                op: "put",
                object: key.to_owned(),
                message: format!("part upload task: {e}"),
            })?;
            let out = sent.map_err(|e| Self::s3err("put", format!("{key} part {number}"), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// `length` bytes of the payload from `offset`, as a request body.
    async fn body(
        key: &str,
        data: &Payload,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream, ClientError> {
        match data {
            Payload::Memory(b) => Ok(ByteStream::from(
                b.slice(offset as usize..(offset + length) as usize),
            )),
            Payload::File(f) => {
                let path = f.path();
                ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| ClientError::S3 {
                        op: "put",
                        object: key.to_owned(),
                        message: format!("reading {}: {e}", path.display()),
                    })
            }
        }
    }

    fn prefix(&self, level: u8) -> String {
        format!("{}/{level:04x}/", self.path)
    }

    fn key(&self, level: u8, min: u64, max: u64) -> String {
        format!("{}{}", self.prefix(level), format_filename(min, max))
    }

    /// GET one object: its key and the response whose body the caller reads (a missing
    /// object is `NotFound` naming it, as every client reports it).
    async fn get_object(
        &self,
        level: u8,
        min: u64,
        max: u64,
    ) -> Result<(String, aws_sdk_s3::operation::get_object::GetObjectOutput), ClientError> {
        let key = self.key(level, min, max);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(r) => Ok((key, r)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(ClientError::NotFound {
                    object: self.object_name(level, min, max),
                })
            }
            Err(e) => Err(Self::s3err("get", key, e)),
        }
    }

    fn s3err<E: std::error::Error + 'static>(
        op: &'static str,
        object: String,
        e: E,
    ) -> ClientError {
        ClientError::S3 {
            op,
            object,
            message: format!("{}", DisplayErrorContext(e)),
        }
    }
}

impl ReplicaClient for S3Client {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.path)
    }
    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        format!("s3://{}/{}", self.bucket, self.key(level, min, max))
    }
    async fn list(&self, level: u8, precise: bool) -> Result<Vec<FileInfo>, ClientError> {
        let prefix = self.prefix(level);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| Self::s3err("list", prefix.clone(), e))?;
            for obj in resp.contents() {
                let Some(key) = obj.key() else { continue };
                let Some((min, max)) = key.strip_prefix(&prefix).and_then(parse_filename) else {
                    continue;
                };
                let created_ms = obj
                    .last_modified()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0);
                out.push(FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    created_ms,
                });
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        if precise {
            for f in &mut out {
                let key = self.key(level, f.min_txid, f.max_txid);
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| Self::s3err("head", key.clone(), e))?;
                if let Some(ms) = head
                    .metadata()
                    .and_then(|m| m.get("litestream-timestamp"))
                    .and_then(|s| crate::time::parse_rfc3339(s))
                {
                    f.created_ms = ms;
                }
            }
        }
        out.sort_by_key(|f| (f.min_txid, f.max_txid));
        Ok(out)
    }
    async fn get(&self, level: u8, min: u64, max: u64) -> Result<Vec<u8>, ClientError> {
        let (key, resp) = self.get_object(level, min, max).await?;
        let body = resp
            .body
            .collect()
            .await
            .map_err(|e| Self::s3err("get", key.clone(), e))?;
        Ok(body.into_bytes().to_vec())
    }
    async fn download(
        &self,
        level: u8,
        min: u64,
        max: u64,
        dest: &std::path::Path,
    ) -> Result<u64, ClientError> {
        use std::io::Write;
        let (key, resp) = self.get_object(level, min, max).await?;
        let io = |source| ClientError::Io {
            object: dest.display().to_string(),
            source,
        };
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dest).map_err(io)?);
        let mut body = resp.body;
        let mut n = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Self::s3err("get", key.clone(), e))?
        {
            out.write_all(&chunk).map_err(io)?;
            n += chunk.len() as u64;
        }
        out.flush().map_err(io)?;
        Ok(n)
    }
    async fn put(
        &self,
        level: u8,
        min: u64,
        max: u64,
        data: Payload,
        ts: i64,
    ) -> Result<(), ClientError> {
        let key = self.key(level, min, max);
        if data.len() > self.part_size {
            return self.put_multipart(&key, data, ts).await;
        }
        let body = Self::body(&key, &data, 0, data.len()).await?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .metadata("litestream-timestamp", crate::time::format_rfc3339(ts))
            .body(body)
            .send()
            .await
            .map_err(|e| Self::s3err("put", key, e))?;
        Ok(())
    }
    async fn delete(&self, files: &[FileInfo]) -> Result<(), ClientError> {
        for chunk in files.chunks(1000) {
            let mut objs = Vec::with_capacity(chunk.len());
            for f in chunk {
                let key = self.key(f.level, f.min_txid, f.max_txid);
                objs.push(
                    ObjectIdentifier::builder()
                        .key(&key)
                        .build()
                        .map_err(|e| Self::s3err("delete", key, e))?,
                );
            }
            let del = Delete::builder()
                .set_objects(Some(objs))
                .quiet(true)
                .build()
                .map_err(|e| Self::s3err("delete", self.path.clone(), e))?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(del)
                .send()
                .await
                .map_err(|e| Self::s3err("delete", self.path.clone(), e))?;
        }
        Ok(())
    }
    async fn delete_all(&self) -> Result<(), ClientError> {
        let mut all = Vec::new();
        for level in super::LEVELS {
            all.extend(self.list(level, false).await?);
        }
        self.delete(&all).await
    }
}
