//! The `evidence` crate's one integration-test binary. `tidy` holds the workspace's layering
//! rules by reading its sources; `extract` runs the extraction child on hostile input;
//! `scratch` kills a process holding a worker's scratch folder.

mod extract;
mod scratch;
mod tidy;
