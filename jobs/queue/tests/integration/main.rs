//! The `jobs` crate's one integration-test binary (one binary links once: faster on 2 cores).
//! Every test gets a fresh migrated database from `#[sqlx::test]`; DATABASE_URL must name a role
//! that may create databases.

mod queue;
mod support;
