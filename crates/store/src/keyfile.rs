//! The audit key file (issue 16 item 4): the HMAC key of the audit chain, kept outside the
//! database. Created on first open with mode 0600 (see `ChainKey` for its text); a file
//! readable by others is refused.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use rand::RngCore;

use crate::StoreError;
use crate::audit::ChainKey;

fn config(msg: String) -> StoreError {
    StoreError::Config(msg)
}

/// The key in `path`, `None` when there is no such file.
pub fn load(path: &Path) -> Result<Option<ChainKey>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(config(format!(
                "cannot read the audit key file {}: {e}",
                path.display()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| config(format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(config(format!(
                "the audit key file {} may be read by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    ChainKey::from_file_text(&text)
        .map(Some)
        .map_err(|e| config(format!("the audit key file {}: {e}", path.display())))
}

/// Records in the key file at `path` that the access log is keyed from row `access_from`
/// (written once, when the access log is first keyed): the file is replaced atomically (a
/// new file, mode 0600, fsynced, renamed over it, the directory fsynced), so a crash leaves
/// the old file or the new one.
pub fn record_access_from(
    path: &Path,
    key: &ChainKey,
    access_from: i64,
) -> Result<ChainKey, StoreError> {
    let key = key.clone().with_access_from(access_from);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, &key)?;
    fs::rename(&tmp, path).map_err(|e| {
        config(format!(
            "cannot replace the audit key file {}: {e}",
            path.display()
        ))
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(key)
}

/// Writes `key` to a new file at `path` (never over an existing one), mode 0600, fsynced.
fn write_new(path: &Path, key: &ChainKey) -> Result<(), StoreError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(path).and_then(|mut f| {
        f.write_all(key.to_file_text().as_bytes())?;
        f.sync_all()
    });
    written.map_err(|e| {
        config(format!(
            "cannot create the audit key file {}: {e}",
            path.display()
        ))
    })
}

/// Creates a new key file at `path` (never over an existing one), mode 0600, fsynced.
pub fn create(path: &Path, from: i64) -> Result<ChainKey, StoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = ChainKey::new(bytes, from);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir)
            .map_err(|e| config(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_new(path, &key)?;
    if let Some(dir) = dir {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(key)
}
