//! Writing an export file so that it is either complete or absent.
//!
//! A regular file is written to a temporary sibling, synced and renamed over the target, so a
//! crash or a full disk never leaves a truncated PSKC file where a validation server might
//! import it. A target that is not a regular file (a FIFO, `/dev/stdout`, `/dev/full`) cannot be
//! replaced by a rename and is written in place; its errors are reported all the same.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// Writes `bytes` to `path` (owner-only permissions) and returns their SHA-256, hex.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<String> {
    let fail = |cause| EngineError::ExportWrite {
        path: path.to_path_buf(),
        cause,
    };
    let special = fs::metadata(path).is_ok_and(|m| !m.is_file());
    if special {
        let mut file = OpenOptions::new().write(true).open(path).map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.flush().map_err(fail)?;
        // Devices such as /dev/full report ENOSPC only on write or sync; a FIFO cannot sync.
        if let Err(e) = file.sync_all()
            && e.raw_os_error() != Some(22)
        {
            return Err(fail(e));
        }
    } else {
        let temp = temp_sibling(path);
        let result = write_new(&temp, bytes).and_then(|()| fs::rename(&temp, path));
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(fail(e));
        }
        sync_parent(path);
    }
    Ok(hex::encode(Sha256::digest(bytes)))
}

fn write_new(temp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: the rename is already visible; syncing the directory makes it durable.
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_file_and_returns_its_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("batch.pskcxml");
        let digest = write_atomically(&path, b"abc").expect("write");
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(fs::read(&path).expect("read"), b"abc");
        let leftovers = fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let err = write_atomically(Path::new("/dev/full"), &[0u8; 4096]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/dev/full"), "{message}");
        assert!(message.contains("No space left on device"), "{message}");
    }

    #[test]
    fn a_missing_directory_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("x.pskcxml");
        let err = write_atomically(&path, b"abc").unwrap_err();
        assert!(matches!(err, EngineError::ExportWrite { .. }));
        assert!(!path.exists());
    }
}
