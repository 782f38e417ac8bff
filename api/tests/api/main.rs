//! The `api` crate's one integration-test binary: the API served on a real port, an in-process
//! worker, a real Postgres (a fresh database per test) and a real S3 server (S3_* variables;
//! scripts/test starts s3s-fs). Each test uses its own bucket.

mod access;
mod custody;
mod flow;
mod hardening;
mod integrity;
mod jobs;
mod ops;
mod search;
mod support;
mod uploader;
