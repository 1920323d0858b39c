//! `nifuse info FILE...` (being written).
use std::path::{Path, PathBuf};
/// Prints header summaries.
pub fn run(_files: &[PathBuf], _json: bool, _index_dir: &Path) -> Result<(), String> {
    Err("info: not available yet".into())
}
