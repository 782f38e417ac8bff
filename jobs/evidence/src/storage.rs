//! The S3-compatible object store (rust-s3): presigned uploads, HEAD checks, and streaming
//! downloads that hash as they go. Path-style addressing, any endpoint and region.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use md5::Md5;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::serde_types::ObjectIdentifier;
use s3::{Bucket, BucketConfiguration, Region};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::{MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES, S3Settings};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("object is larger than the {limit} byte limit")]
    TooLarge { limit: u64 },
    /// Network errors, timeouts, 5xx: worth retrying.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// Credentials, bucket or request refused (4xx other than 404): retrying will not help.
    #[error("object store refused the request: {0}")]
    Refused(String),
}

impl From<S3Error> for StorageError {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::HttpFailWithBody(404, _) => StorageError::NotFound,
            S3Error::HttpFailWithBody(code, body) if (400..500).contains(&code) && code != 408 && code != 429 => {
                StorageError::Refused(format!("HTTP {code}: {}", body.chars().take(300).collect::<String>()))
            }
            S3Error::HttpFailWithBody(code, body) => {
                StorageError::Unavailable(format!("HTTP {code}: {}", body.chars().take(300).collect::<String>()))
            }
            other => StorageError::Unavailable(other.to_string()),
        }
    }
}

/// A presigned PUT: the client sends exactly these headers with the bytes.
#[derive(Debug, Clone)]
pub struct PresignedPut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_in: Duration,
}

/// The part size for an upload of `size` bytes: `preferred`, or larger (a whole number of MiB)
/// when the file would need more than [`MAX_PARTS`] parts.
pub fn part_size_for(size: u64, preferred: u64) -> u64 {
    let fewest = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    preferred.max(fewest).clamp(MIN_PART_BYTES, MAX_PART_BYTES)
}

/// The parts of an upload of `size` bytes in parts of `part_bytes`: (part number from 1, size).
pub fn parts_of(size: u64, part_bytes: u64) -> impl Iterator<Item = (u32, u64)> {
    let count = size.div_ceil(part_bytes).max(1);
    (1..=count).map(move |n| (n as u32, part_bytes.min(size - (n - 1) * part_bytes)))
}

/// How long the store may take to join the parts of a multipart upload.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Files up to this size are stored with one PUT (below rust-s3's multipart threshold).
const SINGLE_PUT_BYTES: u64 = 8 << 20;

/// Files up to this size are stored at their content key without a HEAD to ask whether they are
/// there already: for so few bytes the PUT costs about what the HEAD does (one request each), and
/// most bytes stored are new, so the HEAD would be a request more for nearly every file.
const PUT_WITHOUT_ASKING_BYTES: u64 = 256 << 10;

/// What a finished download saw: the size and the three hashes of the bytes, from one pass.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub size: u64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// A failed read or write of the local staging file.
fn staging_error(e: std::io::Error) -> StorageError {
    StorageError::Unavailable(format!("staging file: {e}"))
}

/// The name under which jobs report the object store unreachable (`queue::JobError::Unavailable`)
/// and the worker checks it.
pub const OBJECT_STORE: &str = "object_store";

/// Where a tenant's verified bytes with this sha256 are stored: a key no presigned PUT names
/// (uploads go to `<tenant>/uploads/<evidence id>`), shared by every evidence of the tenant
/// with these bytes.
pub fn content_key(tenant: &crate::model::TenantId, sha256: &str) -> String {
    format!("{tenant}/content/{sha256}")
}

#[derive(Debug, Clone)]
pub struct Storage {
    /// Every request but streamed downloads; each must be answered within `request_timeout`.
    bucket: Box<Bucket>,
    /// Streamed downloads: no limit on the whole (a large object at a steady rate takes as
    /// long as it takes), but no more than `request_timeout` without a byte.
    streaming: Box<Bucket>,
    request_timeout: Duration,
    /// The same bucket addressed through the endpoint clients use, for presigning only.
    public: Box<Bucket>,
    region: Region,
    credentials: Credentials,
    presign_expiry: Duration,
}

impl Storage {
    pub fn new(s: &S3Settings) -> Result<Self, StorageError> {
        let credentials = Credentials::new(Some(&s.access_key), Some(&s.secret_key), None, None, None)
            .map_err(|e| StorageError::Refused(format!("credentials: {e}")))?;
        let region = Region::Custom { region: s.region.clone(), endpoint: s.endpoint.trim_end_matches('/').to_owned() };
        let public_region =
            Region::Custom { region: s.region.clone(), endpoint: s.public_endpoint.trim_end_matches('/').to_owned() };
        let mut bucket = Bucket::new(&s.bucket, region.clone(), credentials.clone())?.with_path_style();
        bucket.set_request_timeout(Some(s.request_timeout));
        let mut streaming = bucket.clone();
        streaming.set_request_timeout(None);
        let public = Bucket::new(&s.bucket, public_region, credentials.clone())?.with_path_style();
        Ok(Self {
            bucket,
            streaming,
            request_timeout: s.request_timeout,
            public,
            region,
            credentials,
            presign_expiry: s.presign_expiry,
        })
    }

    pub fn bucket_name(&self) -> &str {
        &self.bucket.name
    }

    /// Whether the store answers for the bucket (a listing of at most one key): what the
    /// worker's breaker asks while the object store is down ([`OBJECT_STORE`]).
    pub async fn check(&self) -> Result<(), StorageError> {
        self.bucket.list_page(String::new(), None, None, None, Some(1)).await.map(drop).map_err(StorageError::from)
    }

    /// Create the bucket if a listing says it is not there (`Bucket::exists` is not portable).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        match self.check().await {
            Ok(()) => return Ok(()),
            Err(StorageError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let created = Bucket::create_with_path_style(
            &self.bucket.name,
            self.region.clone(),
            self.credentials.clone(),
            BucketConfiguration::private(),
        )
        .await;
        // 409: another process (the api and the worker start together) created it first. Some
        // servers answer a concurrent create with a 500 instead (s3s-fs does): if the bucket is
        // there now, that is success too.
        let failure = match created {
            Ok(r) if (200..300).contains(&r.response_code) || r.response_code == 409 => return Ok(()),
            Err(S3Error::HttpFailWithBody(409, _)) => return Ok(()),
            Ok(r) => StorageError::Refused(format!("create bucket: HTTP {}: {}", r.response_code, r.response_text)),
            Err(e) => e.into(),
        };
        self.check().await.map_err(|_| failure)
    }

    /// A URL the client PUTs the bytes to, valid for the presign expiry or `at_most`, whichever
    /// is shorter (at least a second). The signature covers the content type, the exact length
    /// and, when the client declared one, the checksum header, so the store rejects other types,
    /// more or fewer bytes, or other bytes.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        sha256_hex: Option<&str>,
        at_most: Option<Duration>,
    ) -> Result<PresignedPut, StorageError> {
        let mut headers = BTreeMap::new();
        headers.insert("content-type".to_owned(), content_type.to_owned());
        headers.insert("content-length".to_owned(), size.to_string());
        if let Some(hex_digest) = sha256_hex {
            let bytes = hex::decode(hex_digest).map_err(|e| StorageError::Refused(format!("sha256: {e}")))?;
            headers.insert("x-amz-checksum-sha256".to_owned(), base64(&bytes));
        }
        self.presign(key, headers, None, at_most).await
    }

    /// Start a multipart upload to `key`: its upload id.
    pub async fn start_multipart(&self, key: &str, content_type: &str) -> Result<String, StorageError> {
        Ok(self.bucket.initiate_multipart_upload(key, content_type).await?.upload_id)
    }

    /// A URL the client PUTs part `part_number` (from 1) of the multipart upload to, valid as
    /// [`Storage::presign_put`]'s; the signature covers the part's exact length.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        size: u64,
        at_most: Option<Duration>,
    ) -> Result<PresignedPut, StorageError> {
        let mut headers = BTreeMap::new();
        headers.insert("content-length".to_owned(), size.to_string());
        let mut queries = std::collections::HashMap::new();
        queries.insert("partNumber".to_owned(), part_number.to_string());
        queries.insert("uploadId".to_owned(), upload_id.to_owned());
        self.presign(key, headers, Some(queries), at_most).await
    }

    /// A PUT URL on the public endpoint that is valid only with exactly these headers.
    async fn presign(
        &self,
        key: &str,
        headers: BTreeMap<String, String>,
        queries: Option<std::collections::HashMap<String, String>>,
        at_most: Option<Duration>,
    ) -> Result<PresignedPut, StorageError> {
        let mut map = http::HeaderMap::new();
        for (k, v) in &headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| StorageError::Refused(e.to_string()))?;
            let value =
                http::HeaderValue::from_str(v).map_err(|e| StorageError::Refused(format!("header {k}: {e}")))?;
            map.insert(name, value);
        }
        let valid_for = self.valid_for(at_most);
        let url = self.public.presign_put(key, valid_for.as_secs() as u32, Some(map), queries).await?;
        Ok(PresignedPut { url, headers, expires_in: valid_for })
    }

    /// Join the parts (number and the ETag its PUT answered, in order) into the object.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StorageError> {
        let parts =
            parts.iter().map(|(n, etag)| s3::serde_types::Part { part_number: *n, etag: etag.clone() }).collect();
        // Joining many GiB can take the store minutes before it answers (rust-s3's default
        // request timeout is 60 s, and a timed-out join is not one to repeat).
        let patient = self.bucket.with_request_timeout(JOIN_TIMEOUT)?;
        patient.complete_multipart_upload(key, upload_id, parts).await?;
        Ok(())
    }

    /// Abort a multipart upload and delete its parts; one already gone is not an error.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        match self.bucket.abort_upload(key, upload_id).await {
            Ok(()) => Ok(()),
            Err(e) => match StorageError::from(e) {
                StorageError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    /// The presign expiry, or `at_most` when shorter; at least a second.
    fn valid_for(&self, at_most: Option<Duration>) -> Duration {
        let valid_for = at_most.map_or(self.presign_expiry, |cap| cap.min(self.presign_expiry));
        Duration::from_secs(valid_for.as_secs().max(1))
    }

    /// A URL to GET the object from, valid for the presign expiry. The response names the file
    /// `filename` (`Content-Disposition: attachment`), whatever the object's key.
    pub async fn presign_get(&self, key: &str, filename: &str) -> Result<(String, Duration), StorageError> {
        let mut queries = std::collections::HashMap::new();
        queries.insert("response-content-disposition".to_owned(), content_disposition(filename));
        let url = self.public.presign_get(key, self.presign_expiry.as_secs() as u32, Some(queries)).await?;
        Ok((url, self.presign_expiry))
    }

    /// The object's size, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.bucket.head_object(key).await {
            Ok((head, _)) => Ok(Some(head.content_length.unwrap_or(0).max(0) as u64)),
            Err(e) => match StorageError::from(e) {
                StorageError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Stream the object into `file`, hashing on the way; memory use does not depend on size.
    /// Stops with `TooLarge` as soon as more than `max_bytes` have arrived.
    pub async fn download_to(
        &self,
        key: &str,
        file: &mut tokio::fs::File,
        max_bytes: u64,
    ) -> Result<Downloaded, StorageError> {
        self.stream_hashed(key, Some(file), max_bytes).await
    }

    /// Stream the object only to hash it (the fixity check): nothing is written anywhere.
    pub async fn hash_object(&self, key: &str) -> Result<Downloaded, StorageError> {
        self.stream_hashed(key, None, u64::MAX).await
    }

    /// `wait`'s output, or `Unavailable` when the store sends nothing for the request timeout.
    async fn unstalled<T>(&self, key: &str, wait: impl std::future::Future<Output = T>) -> Result<T, StorageError> {
        tokio::time::timeout(self.request_timeout, wait)
            .await
            .map_err(|_| StorageError::Unavailable(format!("no byte of {key} for {:?}", self.request_timeout)))
    }

    async fn stream_hashed(
        &self,
        key: &str,
        mut file: Option<&mut tokio::fs::File>,
        max_bytes: u64,
    ) -> Result<Downloaded, StorageError> {
        let mut response = self.unstalled(key, self.streaming.get_object_stream(key)).await??;
        let (mut sha256, mut sha1, mut md5) = (Sha256::new(), Sha1::new(), Md5::new());
        let mut size = 0u64;
        while let Some(chunk) = self.unstalled(key, response.bytes().next()).await? {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > max_bytes {
                return Err(StorageError::TooLarge { limit: max_bytes });
            }
            sha256.update(&chunk);
            sha1.update(&chunk);
            md5.update(&chunk);
            if let Some(file) = file.as_mut() {
                file.write_all(&chunk).await.map_err(staging_error)?;
            }
        }
        if let Some(file) = file {
            file.flush().await.map_err(staging_error)?;
        }
        Ok(Downloaded {
            size,
            sha256: hex::encode(sha256.finalize()),
            sha1: hex::encode(sha1.finalize()),
            md5: hex::encode(md5.finalize()),
        })
    }

    /// Store the file at `key` and check what the store received. Up to 8 MiB it is one PUT, and
    /// the answer's ETag (the MD5 of what the store received, for a single-part PUT) must equal
    /// `md5`; stores whose ETag is something else (encryption with KMS) get the size check. Larger
    /// files are streamed (multipart, two 8 MiB parts in flight, so memory use does not depend on
    /// the size), then a HEAD checks the size.
    pub async fn upload_file(
        &self,
        key: &str,
        path: &std::path::Path,
        size: u64,
        md5: &str,
    ) -> Result<(), StorageError> {
        if size <= SINGLE_PUT_BYTES {
            let bytes = tokio::fs::read(path).await.map_err(staging_error)?;
            let answer = self.bucket.put_object_with_content_type(key, &bytes, "application/octet-stream").await?;
            let etag = answer.headers().get("etag").map(|e| e.trim_matches('"').to_ascii_lowercase());
            if etag.as_deref() == Some(md5) {
                return Ok(());
            }
        } else {
            let mut file = tokio::fs::File::open(path).await.map_err(staging_error)?;
            self.bucket
                .put_object_stream_builder(key)
                .with_content_type("application/octet-stream")
                .with_max_concurrent_chunks(2)
                .execute_stream(&mut file)
                .await?;
        }
        match self.head(key).await? {
            Some(stored) if stored == size => Ok(()),
            stored => Err(StorageError::Unavailable(format!(
                "{key} holds {} bytes after its upload, not {size}",
                stored.map_or("no".to_owned(), |n| n.to_string())
            ))),
        }
    }

    /// [`Storage::upload_file`], unless `key` holds `size` bytes already: content keys are named
    /// by their sha256, so bytes stored there before (a duplicate, a retried attempt) are these.
    /// Files up to [`PUT_WITHOUT_ASKING_BYTES`] are put without asking first: the PUT writes the
    /// same bytes again at worst, and stores replace an object whole (s3s-fs writes a new file
    /// and renames it over the old), so a reader never sees a mix.
    pub async fn upload_file_once(
        &self,
        key: &str,
        path: &std::path::Path,
        size: u64,
        md5: &str,
    ) -> Result<(), StorageError> {
        if size > PUT_WITHOUT_ASKING_BYTES && self.head(key).await? == Some(size) {
            return Ok(());
        }
        self.upload_file(key, path, size, md5).await
    }

    /// Upload bytes directly (tests, demo fixtures); clients use presigned URLs instead.
    pub async fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), StorageError> {
        self.bucket.put_object_with_content_type(key, bytes, content_type).await?;
        Ok(())
    }

    /// Delete the object; one that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(e) => match StorageError::from(e) {
                StorageError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Delete many objects with one request per thousand keys (`DeleteObjects`); keys already
    /// gone are not errors. Returns the keys the store did not delete, each with its reason.
    pub async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, StorageError> {
        let objects: Vec<ObjectIdentifier> = keys.iter().map(ObjectIdentifier::new).collect();
        let result = self.bucket.delete_objects(objects).await?;
        // S3 reports a missing key as deleted; a store that says `NoSuchKey` means the same.
        let refused = result.errors.into_iter().filter(|e| e.code != "NoSuchKey");
        Ok(refused.map(|e| (e.key, format!("{}: {}", e.code, e.message))).collect())
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `attachment` with the filename: an ASCII fallback (anything else, quotes and controls become
/// `_`) plus the exact name in RFC 5987 form.
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_cover_the_file_within_s3s_bounds() {
        use super::{part_size_for, parts_of};
        use crate::config::{MAX_PARTS, MIN_PART_BYTES};
        let mib = 1u64 << 20;
        assert_eq!(part_size_for(6 << 30, 64 * mib), 64 * mib);
        assert_eq!(part_size_for(1 << 40, 64 * mib), 105 * mib, "1 TiB needs parts above 64 MiB");
        assert_eq!(part_size_for(100, 1), MIN_PART_BYTES);
        let parts: Vec<_> = parts_of(11 * mib + 3, 5 * mib).collect();
        assert_eq!(parts, vec![(1, 5 * mib), (2, 5 * mib), (3, mib + 3)]);
        assert_eq!(parts_of(10 * mib, 5 * mib).count(), 2);
        let size = 5u64 << 40;
        let part = part_size_for(size, 64 * mib);
        assert!(parts_of(size, part).count() as u64 <= MAX_PARTS);
        assert_eq!(parts_of(size, part).map(|(_, n)| n).sum::<u64>(), size);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in table {
            assert_eq!(super::base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn content_disposition_keeps_the_name_and_escapes_what_a_header_cannot_hold() {
        assert_eq!(
            super::content_disposition("board minutes.pdf"),
            "attachment; filename=\"board minutes.pdf\"; filename*=UTF-8''board%20minutes.pdf"
        );
        assert_eq!(
            super::content_disposition("Zeugenaussage \"Müller\".txt"),
            "attachment; filename=\"Zeugenaussage _M_ller_.txt\"; filename*=UTF-8''Zeugenaussage%20%22M%C3%BCller%22.txt"
        );
    }
}
