//! The `evidence` crate's one integration-test binary. `tidy` holds the workspace's layering
//! rules by reading its sources.

mod tidy;
