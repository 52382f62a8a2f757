//! Backup and restore (issue 16 item 5): a consistent copy of the database taken while the
//! server keeps writing, the scanned requisitions the copy names (kept outside the database),
//! and a manifest of every file with its SHA-256, the schema version and the audit head.
//!
//! SQLite: `VACUUM INTO` on a connection of its own, one read transaction (a WAL snapshot), so
//! writers are never blocked and the copy is one committed state. PostgreSQL: `pg_dump` in the
//! custom format under a snapshot exported from a repeatable-read transaction, in which the
//! schema version, the audit head and the scan list are read too, so the manifest describes
//! exactly the dump.
//!
//! A restore checks every file against the manifest before it changes anything, and replaces
//! the database last (the new file is renamed over the old one): a restore cut short leaves
//! the old database in place. It never runs under a process that has the database open: every
//! [`crate::SqliteStore`] holds a shared lock on `<database>.lock` for as long as it lives, and
//! a restore takes it exclusively.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{ChainKey, ChainReport, StoreError, migrations};

/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this binary writes and reads.
pub const FORMAT: u32 = 1;
/// The SQLite copy inside a backup directory.
pub const SQLITE_FILE: &str = "aliquot.db";
/// The `pg_dump` custom-format file inside a backup directory.
pub const PG_DUMP_FILE: &str = "database.dump";
/// The audit key file inside a backup directory (see [`crate::keyfile`]): without it the
/// restored chain cannot be verified, so a backup carries it; keep backups as secret as it.
pub const KEY_FILE: &str = "audit.key";
/// Where scans go inside a backup directory (the data directory's layout:
/// `scans/<first two hex digits>/<SHA-256>`).
pub const SCANS_DIR: &str = "scans";

/// What a backup holds, written last (a directory without it is not a backup).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// When the copy was taken (RFC 3339, UTC).
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The last migration applied to the copied database.
    pub schema_version: i64,
    /// The audit head of the copy: its newest event.
    pub audit_head: Head,
    /// Every file of the backup but the manifest, with its size and SHA-256.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The operation would do harm (a server is running, a database is there) or cannot run.
    #[error("{0}")]
    Refused(String),
    /// The backup does not match its manifest; nothing was changed.
    #[error("the backup is damaged: {0}; nothing was changed")]
    Damaged(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(e.into())
    }
}

type BackupResult<T> = Result<T, BackupError>;

fn io<T>(r: std::io::Result<T>, context: impl FnOnce() -> String) -> BackupResult<T> {
    r.map_err(|source| BackupError::Io {
        context: context(),
        source,
    })
}

/// What a copy of the database holds, read from the copy itself.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub schema_version: i64,
    /// The problems SQLite's `PRAGMA integrity_check` names (empty: intact).
    pub integrity: Vec<String>,
    /// The audit chain of the copy.
    pub chain: ChainReport,
    /// The SHA-256 of every scan the copy names.
    pub scans: Vec<String>,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub manifest: Manifest,
    /// The audit chain of the copy (the backup is written whatever it says).
    pub chain: Option<ChainReport>,
    /// Scans the database names that were not in the data directory (not in the backup).
    pub missing_scans: Vec<String>,
}

/// The outcome of a restore.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub manifest: Manifest,
    /// Where the database that was replaced was moved (with `--force`).
    pub replaced: Option<PathBuf>,
    pub scans: usize,
}

/// Files kept beside the database that a backup carries too (the audit key), each copied
/// to `name` in the backup, and back to `path` by a restore.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    pub name: &'static str,
    pub path: PathBuf,
}

// ── the lock ───────────────────────────────────────────────────────────────────────────

/// A lock on `<database>.lock`: shared by every process that has the database open, taken
/// exclusively by a restore. Released when dropped (or when the process ends, however).
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

pub fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn open_lock_file(db: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(db))
}

/// Taken by every process that opens the SQLite database.
pub(crate) fn lock_shared(db: &Path) -> Result<DatabaseLock, StoreError> {
    let file = open_lock_file(db)
        .map_err(|e| StoreError::Config(format!("cannot open {}: {e}", lock_path(db).display())))?;
    match file.try_lock_shared() {
        Ok(()) => Ok(DatabaseLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Config(format!(
            "the database {} is being restored (aliquot restore holds {}); try again when it ends",
            db.display(),
            lock_path(db).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Config(format!(
            "cannot lock {}: {e}",
            lock_path(db).display()
        ))),
    }
}

/// Taken by a restore: fails while any process has the database open.
pub fn lock_exclusive(db: &Path) -> BackupResult<DatabaseLock> {
    let file = io(open_lock_file(db), || {
        format!("cannot open {}", lock_path(db).display())
    })?;
    match file.try_lock() {
        Ok(()) => Ok(DatabaseLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::Refused(format!(
            "the database {} is in use (a running `aliquot serve` or another aliquot command \
             holds {}); stop it before restoring",
            db.display(),
            lock_path(db).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(BackupError::Io {
            context: format!("cannot lock {}", lock_path(db).display()),
            source: e,
        }),
    }
}

// ── files ──────────────────────────────────────────────────────────────────────────────

/// `(size, SHA-256)` of a file, read in pieces.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies `src` to `dst` (through a temporary name, fsynced, renamed) and returns the copy's
/// size and SHA-256, read back from the copy.
fn copy_synced(src: &Path, dst: &Path) -> BackupResult<(u64, String)> {
    let dir = dst
        .parent()
        .ok_or_else(|| BackupError::Refused(format!("{} has no directory", dst.display())))?;
    io(fs::create_dir_all(dir), || {
        format!("cannot create {}", dir.display())
    })?;
    let mut tmp = dst.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    io(fs::copy(src, &tmp), || {
        format!("cannot copy {} to {}", src.display(), tmp.display())
    })?;
    io(File::open(&tmp).and_then(|f| f.sync_all()), || {
        format!("cannot sync {}", tmp.display())
    })?;
    io(fs::rename(&tmp, dst), || {
        format!("cannot rename {}", tmp.display())
    })?;
    io(sync_dir(dir), || format!("cannot sync {}", dir.display()))?;
    io(hash_file(dst), || format!("cannot read {}", dst.display()))
}

/// `scans/ab/abcdef…` for a scan's SHA-256 (checked: 64 lowercase hex digits).
fn scan_rel(sha: &str) -> Option<String> {
    (sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| format!("{SCANS_DIR}/{}/{sha}", &sha[..2]))
}

/// A manifest path as a path under `dir`, refusing anything but plain relative names.
fn under(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    (!rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| dir.join(p))
}

fn prepare_out(out: &Path) -> BackupResult<()> {
    if out.exists() {
        let mut entries = io(fs::read_dir(out), || {
            format!("cannot read {}", out.display())
        })?;
        if entries.next().is_some() {
            return Err(BackupError::Refused(format!(
                "{} is not empty: give a new directory for each backup",
                out.display()
            )));
        }
    }
    io(fs::create_dir_all(out), || {
        format!("cannot create {}", out.display())
    })
}

/// Copies the scans and extra files into `out`, writes the manifest last.
fn finish_backup(
    out: &Path,
    db_entry: FileEntry,
    scans_dir: &Path,
    info: &SnapshotInfo,
    extra: &[ExtraFile],
    backend: &str,
) -> BackupResult<BackupReport> {
    let mut files = vec![db_entry];
    let mut missing_scans = Vec::new();
    for sha in &info.scans {
        let Some(rel) = scan_rel(sha) else {
            missing_scans.push(sha.clone());
            continue;
        };
        let src = scans_dir.join(&sha[..2]).join(sha);
        if !src.exists() {
            missing_scans.push(sha.clone());
            continue;
        }
        let (size, got) = copy_synced(&src, &out.join(&rel))?;
        if &got != sha {
            // The data directory's copy is damaged: keep it out of the backup, say so.
            let _ = fs::remove_file(out.join(&rel));
            missing_scans.push(sha.clone());
            continue;
        }
        files.push(FileEntry {
            path: rel,
            size,
            sha256: got,
        });
    }
    for x in extra {
        if x.path.exists() {
            let (size, sha256) = copy_synced(&x.path, &out.join(x.name))?;
            files.push(FileEntry {
                path: x.name.to_owned(),
                size,
                sha256,
            });
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: jiff::Timestamp::now().to_string(),
        backend: backend.to_owned(),
        schema_version: info.schema_version,
        audit_head: Head {
            seq: info.chain.head_seq,
            hash: info.chain.head_hash.clone(),
        },
        files,
    };
    write_manifest(out, &manifest)?;
    Ok(BackupReport {
        manifest,
        chain: Some(info.chain.clone()),
        missing_scans,
    })
}

fn write_manifest(out: &Path, manifest: &Manifest) -> BackupResult<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| BackupError::Refused(format!("cannot write the manifest: {e}")))?;
    let tmp = out.join(format!("{MANIFEST}.partial"));
    io(
        File::create(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        }),
        || format!("cannot write {}", tmp.display()),
    )?;
    io(fs::rename(&tmp, out.join(MANIFEST)), || {
        format!("cannot write {}", out.join(MANIFEST).display())
    })?;
    io(sync_dir(out), || format!("cannot sync {}", out.display()))
}

/// Reads a backup's manifest.
pub fn read_manifest(dir: &Path) -> BackupResult<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::Damaged(format!(
                "{} has no {MANIFEST} (not a backup, or one that did not finish)",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(BackupError::Io {
                context: format!("cannot read {}", path.display()),
                source: e,
            });
        }
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| BackupError::Damaged(format!("{MANIFEST} cannot be read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Refused(format!(
            "{MANIFEST} has format {}; this aliquot reads format {FORMAT}",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Checks every file the manifest lists: a plain relative name, present, of its size and
/// SHA-256. Names the first file that does not match.
pub fn check_files(dir: &Path, manifest: &Manifest) -> BackupResult<()> {
    for f in &manifest.files {
        let Some(path) = under(dir, &f.path) else {
            return Err(BackupError::Damaged(format!(
                "{MANIFEST} names {:?}, which is not a file inside the backup",
                f.path
            )));
        };
        let (size, sha) = match hash_file(&path) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Damaged(format!("{} is missing", f.path)));
            }
            Err(e) => {
                return Err(BackupError::Io {
                    context: format!("cannot read {}", path.display()),
                    source: e,
                });
            }
        };
        if size != f.size {
            return Err(BackupError::Damaged(format!(
                "{} has {size} bytes, {MANIFEST} says {}",
                f.path, f.size
            )));
        }
        if sha != f.sha256 {
            return Err(BackupError::Damaged(format!(
                "{} does not match its SHA-256 in {MANIFEST}",
                f.path
            )));
        }
    }
    Ok(())
}

// ── SQLite ─────────────────────────────────────────────────────────────────────────────

/// Backs up the SQLite database at `db` (online) and the scans it names from `scans_dir`
/// into the new or empty directory `out`.
pub async fn backup_sqlite(
    db: &Path,
    key: Option<&ChainKey>,
    scans_dir: &Path,
    extra: &[ExtraFile],
    out: &Path,
) -> BackupResult<BackupReport> {
    if !db.exists() {
        return Err(BackupError::Refused(format!(
            "there is no database at {}",
            db.display()
        )));
    }
    prepare_out(out)?;
    let copy = out.join(SQLITE_FILE);
    let copy_text = copy
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not UTF-8", copy.display())))?
        .to_owned();
    // A connection of its own (not the server's), read-only towards the database: VACUUM
    // INTO reads one snapshot in one read transaction and writes a new, compact file.
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    let vacuumed = sqlx::query("VACUUM INTO $1")
        .bind(&copy_text)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    vacuumed?;
    io(File::open(&copy).and_then(|f| f.sync_all()), || {
        format!("cannot sync {}", copy.display())
    })?;
    let info = crate::SqliteStore::inspect_file(&copy, key).await?;
    if !info.integrity.is_empty() {
        return Err(BackupError::Refused(format!(
            "the copy fails SQLite's integrity check ({}); the database itself is damaged: \
             restore it from an earlier backup",
            info.integrity.join("; ")
        )));
    }
    let (size, sha256) = io(hash_file(&copy), || {
        format!("cannot read {}", copy.display())
    })?;
    let entry = FileEntry {
        path: SQLITE_FILE.to_owned(),
        size,
        sha256,
    };
    finish_backup(out, entry, scans_dir, &info, extra, "sqlite")
}

/// Where the database that a restore replaces goes: beside it, named by the time.
fn aside_name(db: &Path, suffix: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let mut s = db.as_os_str().to_owned();
    s.push(format!(".before-restore-{stamp}{suffix}"));
    PathBuf::from(s)
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies the backup's scans into the data directory's `scans/` (content-addressed: a file
/// already there with the same bytes is kept) and its extra files to their places.
fn restore_files(
    dir: &Path,
    manifest: &Manifest,
    scans_dir: &Path,
    extra: &[ExtraFile],
    force: bool,
) -> BackupResult<usize> {
    let mut scans = 0;
    for f in &manifest.files {
        let Some(rest) = f.path.strip_prefix(&format!("{SCANS_DIR}/")) else {
            continue;
        };
        let src = dir.join(&f.path);
        let dst = scans_dir.join(rest);
        if hash_file(&dst).is_ok_and(|(_, sha)| sha == f.sha256) {
            scans += 1;
            continue;
        }
        let (_, sha) = copy_synced(&src, &dst)?;
        if sha != f.sha256 {
            return Err(BackupError::Damaged(format!(
                "{} changed while copied",
                f.path
            )));
        }
        scans += 1;
    }
    for x in extra {
        let Some(f) = manifest.files.iter().find(|f| f.path == x.name) else {
            continue;
        };
        if hash_file(&x.path).is_ok_and(|(_, sha)| sha == f.sha256) {
            continue;
        }
        if x.path.exists() {
            if !force {
                return Err(BackupError::Refused(format!(
                    "{} exists and differs from the backup's {}; pass --force to replace it \
                     (the current one is kept beside it)",
                    x.path.display(),
                    x.name
                )));
            }
            let aside = aside_name(&x.path, "");
            io(fs::rename(&x.path, &aside), || {
                format!("cannot move {} aside", x.path.display())
            })?;
        }
        copy_synced(&dir.join(x.name), &x.path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            io(
                fs::set_permissions(&x.path, fs::Permissions::from_mode(0o600)),
                || format!("cannot set the mode of {}", x.path.display()),
            )?;
        }
    }
    Ok(scans)
}

/// Restores a SQLite backup into `db` (and `scans_dir`, and the extra files). Refuses while
/// any process has `db` open, and when `db` exists unless `force` (the existing database is
/// then moved aside to `<db>.before-restore-<time>`, never deleted).
pub async fn restore_sqlite(
    dir: &Path,
    db: &Path,
    scans_dir: &Path,
    extra: &[ExtraFile],
    force: bool,
) -> BackupResult<RestoreReport> {
    let manifest = read_manifest(dir)?;
    if manifest.backend != "sqlite" {
        return Err(BackupError::Refused(format!(
            "this is a {} backup; restore it with --database {}://… (see README, Backup and restore)",
            manifest.backend, manifest.backend
        )));
    }
    let latest = migrations::SQLITE.last().map_or(0, |m| m.0);
    if manifest.schema_version > latest {
        return Err(BackupError::Refused(format!(
            "the backup has schema version {}, newer than this aliquot knows ({latest}): \
             restore it with the release that took it",
            manifest.schema_version
        )));
    }
    if !manifest.files.iter().any(|f| f.path == SQLITE_FILE) {
        return Err(BackupError::Damaged(format!(
            "{MANIFEST} lists no {SQLITE_FILE}"
        )));
    }
    check_files(dir, &manifest)?;
    let key = backup_key(dir, &manifest)?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        io(fs::create_dir_all(parent), || {
            format!("cannot create {}", parent.display())
        })?;
    }
    let _lock = lock_exclusive(db)?;
    if db.exists() && !force {
        return Err(BackupError::Refused(format!(
            "{} already holds a database; pass --force to replace it (it is moved aside to \
             {}.before-restore-<time>, not deleted)",
            db.display(),
            db.display()
        )));
    }
    // The copy goes beside the database first and is checked there.
    let tmp = sidecar(db, ".restoring");
    let (_, sha) = copy_synced(&dir.join(SQLITE_FILE), &tmp)?;
    let expected = manifest
        .files
        .iter()
        .find(|f| f.path == SQLITE_FILE)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    let checked = async {
        if sha != expected {
            return Err(BackupError::Damaged(format!(
                "{SQLITE_FILE} changed while copied"
            )));
        }
        let info = crate::SqliteStore::inspect_file(&tmp, key.as_ref()).await?;
        if !info.integrity.is_empty() {
            return Err(BackupError::Damaged(format!(
                "{SQLITE_FILE} fails SQLite's integrity check: {}",
                info.integrity.join("; ")
            )));
        }
        if let Some(b) = &info.chain.first_break {
            return Err(BackupError::Damaged(format!(
                "the copy's audit chain is broken at event {}: {}",
                b.seq, b.problem
            )));
        }
        if info.chain.head_seq != manifest.audit_head.seq
            || info.chain.head_hash != manifest.audit_head.hash
        {
            return Err(BackupError::Damaged(format!(
                "the copy's audit head {} does not match the manifest's {}",
                info.chain.head_seq, manifest.audit_head.seq
            )));
        }
        Ok(())
    }
    .await;
    if let Err(e) = checked {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let scans = match restore_files(dir, &manifest, scans_dir, extra, force) {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // The old database (and its WAL: a stale WAL would be replayed into the new file) moves
    // aside; then the new file takes its name: the one step that switches databases.
    let mut replaced = None;
    if db.exists() {
        let aside = aside_name(db, "");
        io(fs::rename(db, &aside), || {
            format!("cannot move {} aside", db.display())
        })?;
        replaced = Some(aside);
    }
    for suffix in ["-wal", "-shm"] {
        let side = sidecar(db, suffix);
        if side.exists() {
            let aside = aside_name(db, suffix);
            io(fs::rename(&side, &aside), || {
                format!("cannot move {} aside", side.display())
            })?;
        }
    }
    io(fs::rename(&tmp, db), || {
        format!("cannot rename {} to {}", tmp.display(), db.display())
    })?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        io(sync_dir(parent), || {
            format!("cannot sync {}", parent.display())
        })?;
    }
    Ok(RestoreReport {
        manifest,
        replaced,
        scans,
    })
}

/// The audit key a backup carries (checked against the manifest already).
fn backup_key(dir: &Path, manifest: &Manifest) -> BackupResult<Option<ChainKey>> {
    if !manifest.files.iter().any(|f| f.path == KEY_FILE) {
        return Ok(None);
    }
    Ok(crate::keyfile::load(&dir.join(KEY_FILE))?)
}

// ── PostgreSQL ─────────────────────────────────────────────────────────────────────────

/// Runs a PostgreSQL client tool, refusing clearly when it is not installed.
async fn run_tool(tool: &str, args: &[&str]) -> BackupResult<()> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BackupError::Refused(format!(
            "{tool} was not found on PATH: install the PostgreSQL client tools (the server's \
             major version or newer), or back up with pg_basebackup and WAL archiving and copy \
             the data directory's scans/ beside it (README: Backup and restore)"
        ))),
        Err(e) => Err(BackupError::Io {
            context: format!("cannot run {tool}"),
            source: e,
        }),
        Ok(out) if !out.status.success() => Err(BackupError::Refused(format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Ok(_) => Ok(()),
    }
}

/// Backs up the PostgreSQL database at `url` with `pg_dump` (custom format) under one
/// exported snapshot, and the scans it names.
pub async fn backup_postgres(
    url: &str,
    key: Option<&ChainKey>,
    scans_dir: &Path,
    extra: &[ExtraFile],
    out: &Path,
) -> BackupResult<BackupReport> {
    prepare_out(out)?;
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let mut conn = options.connect().await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await?;
    let info = crate::PgStore::inspect_conn(&mut conn, key).await?;
    let dump = out.join(PG_DUMP_FILE);
    let dump_text = dump
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not UTF-8", dump.display())))?
        .to_owned();
    let dumped = run_tool(
        "pg_dump",
        &[
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            &format!("--snapshot={snapshot}"),
            &format!("--file={dump_text}"),
            &format!("--dbname={url}"),
        ],
    )
    .await;
    let _ = sqlx::query("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    dumped?;
    io(File::open(&dump).and_then(|f| f.sync_all()), || {
        format!("cannot sync {}", dump.display())
    })?;
    let (size, sha256) = io(hash_file(&dump), || {
        format!("cannot read {}", dump.display())
    })?;
    let entry = FileEntry {
        path: PG_DUMP_FILE.to_owned(),
        size,
        sha256,
    };
    finish_backup(out, entry, scans_dir, &info, extra, "postgres")
}

/// Restores a PostgreSQL backup with `pg_restore` into the database at `url`, which must be
/// new or empty (a database in use is never empty), then the scans and extra files.
pub async fn restore_postgres(
    dir: &Path,
    url: &str,
    scans_dir: &Path,
    extra: &[ExtraFile],
    force: bool,
) -> BackupResult<RestoreReport> {
    use sqlx::migrate::MigrateDatabase;
    let manifest = read_manifest(dir)?;
    if manifest.backend != "postgres" {
        return Err(BackupError::Refused(format!(
            "this is a {} backup; restore it without --database postgres://… (into --data-dir)",
            manifest.backend
        )));
    }
    let latest = migrations::POSTGRES.last().map_or(0, |m| m.0);
    if manifest.schema_version > latest {
        return Err(BackupError::Refused(format!(
            "the backup has schema version {}, newer than this aliquot knows ({latest})",
            manifest.schema_version
        )));
    }
    if !manifest.files.iter().any(|f| f.path == PG_DUMP_FILE) {
        return Err(BackupError::Damaged(format!(
            "{MANIFEST} lists no {PG_DUMP_FILE}"
        )));
    }
    check_files(dir, &manifest)?;
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
    }
    {
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let mut conn = options.connect().await?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await?;
        let _ = conn.close().await;
        if tables > 0 {
            return Err(BackupError::Refused(format!(
                "the database {} is not empty ({tables} tables): restore into a new database \
                 (name one in --database; it is created) or drop this one first",
                crate::redact_url(url)
            )));
        }
    }
    let scans = restore_files(dir, &manifest, scans_dir, extra, force)?;
    let dump = dir.join(PG_DUMP_FILE);
    let dump_text = dump
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not UTF-8", dump.display())))?
        .to_owned();
    run_tool(
        "pg_restore",
        &[
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            &format!("--dbname={url}"),
            &dump_text,
        ],
    )
    .await?;
    Ok(RestoreReport {
        manifest,
        replaced: None,
        scans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        let d = Path::new("/b");
        assert_eq!(under(d, "scans/ab/x"), Some(PathBuf::from("/b/scans/ab/x")));
        for bad in ["", "/etc/passwd", "../x", "scans/../../x", "./x"] {
            assert_eq!(under(d, bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_names_are_checked() {
        let sha = "ab".repeat(32);
        assert_eq!(scan_rel(&sha), Some(format!("scans/ab/{sha}")));
        assert_eq!(scan_rel("../../etc"), None);
        assert_eq!(scan_rel(&"AB".repeat(32)), None);
    }
}
