//! The `evidence` crate's one integration-test binary. `tidy` holds the workspace's layering
//! rules by reading its sources; `extract` runs the extraction child on hostile input.

mod extract;
mod tidy;
