//! Where things are in this repository.

use std::path::{Path, PathBuf};

/// The repository root (xtask lives one level below it).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// The target directory stamped projects share, so dependencies build once.
pub fn stamped_target_dir() -> PathBuf {
    root().join("target").join("stamped")
}
