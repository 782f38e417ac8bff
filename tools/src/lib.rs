//! Clients of the service for people and scripts: `demo-client` (the demo's uploads and checks),
//! `bench-ingest` (end-to-end figures through a running API) and `bench-queue` (the queue alone,
//! on a scratch database). The binaries are in `src/bin`; what they share is here.

pub mod config;
