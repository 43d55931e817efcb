//! [`FileTokenStore`]: tokens in a JSON file, written atomically with 0600 permissions, and an
//! OS file lock on a sibling `.lock` file around refreshes, so two processes (two terminals
//! running the same CLI) never spend one refresh token.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::store::{StoreError, StoreErrorKind, StoreFuture, StoreLock, TokenStore};
use crate::stored::StoredTokens;

/// The default time [`FileTokenStore`] waits for the lock: 30 s (longer than a refresh).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A token file is a few KiB; anything past this is not one.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// How often a waiting [`FileTokenStore::lock`] tries the lock again.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// Tokens in one JSON file (see [`StoredTokens::to_json`]).
///
/// - **Atomic writes**: a temporary file in the same directory, created with permissions
///   0600 (on Unix), written, `fsync`ed, then renamed over the file (and the directory
///   `fsync`ed): a reader sees the old tokens or the new ones, never half of them.
/// - **The lock** is an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on
///   `{path}.lock`, beside the file, so that it survives the renames. The OS releases it when
///   the holder exits, even by a crash.
/// - **A corrupt file** (truncated, hand-edited) is a [`StoreErrorKind::Corrupt`] error that
///   says where it fails, never what it holds; the file is left as it is.
///
/// Cheap to clone. The directory must exist; put it where only the user can read it (such as
/// `~/.config/yourapp/`).
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    path: PathBuf,
    lock_path: PathBuf,
    lock_timeout: Duration,
}

impl FileTokenStore {
    /// A store at `path`, locked through `{path}.lock`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        Self {
            inner: Arc::new(Paths {
                path,
                lock_path: lock_path.into(),
                lock_timeout: DEFAULT_LOCK_TIMEOUT,
            }),
        }
    }

    /// How long [`lock`](TokenStore::lock) waits before [`StoreErrorKind::LockTimeout`]
    /// (default [`DEFAULT_LOCK_TIMEOUT`]).
    #[must_use]
    pub fn lock_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Paths {
                path: self.inner.path.clone(),
                lock_path: self.inner.lock_path.clone(),
                lock_timeout: timeout,
            }),
        }
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.inner.lock_path
    }
}

/// `f` on Tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StoreError::new(StoreErrorKind::Other, "the file task did not finish").with_source(e)
    })?
}

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Io, format!("{what} {}", path.display())).with_source(e)
}

fn read(path: &Path) -> Result<Option<StoredTokens>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot open", path, e)),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(StoreError::corrupt(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    StoredTokens::from_json(&bytes)
        .map(Some)
        .map_err(|e| StoreError::corrupt(format!("{}: {e}", path.display())))
}

/// Opens `path` for writing, new, with permissions 0600 on Unix.
fn create_private(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tokens".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut file = create_private(&temp, true)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error("cannot write", path, e));
    }
    // The rename is durable once the directory is; best effort (not possible everywhere).
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The locked `.lock` file; dropping it unlocks (the OS would on close anyway).
struct LockedFile(File);

impl Drop for LockedFile {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredTokens>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking(move || read(&inner.path)))
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        let inner = Arc::clone(&self.inner);
        let bytes = tokens.to_json();
        Box::pin(blocking(move || write_atomically(&inner.path, &bytes)))
    }

    fn clear(&self) -> StoreFuture<'_, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking(move || match fs::remove_file(&inner.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_error("cannot remove", &inner.path, e))
            }
            _ => Ok(()),
        }))
    }

    fn lock(&self) -> StoreFuture<'_, StoreLock> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let path = inner.lock_path.clone();
            let file = blocking(move || {
                create_private(&path, false).map_err(|e| io_error("cannot open", &path, e))
            })
            .await?;
            let start = Instant::now();
            loop {
                match fs4::FileExt::try_lock(&file) {
                    Ok(()) => return Ok(StoreLock::new(LockedFile(file))),
                    Err(fs4::TryLockError::WouldBlock) => {}
                    Err(fs4::TryLockError::Error(e)) => {
                        return Err(io_error("cannot lock", &inner.lock_path, e))
                    }
                }
                if start.elapsed() >= inner.lock_timeout {
                    return Err(StoreError::new(
                        StoreErrorKind::LockTimeout,
                        format!(
                            "{} still locked after {:?}",
                            inner.lock_path.display(),
                            inner.lock_timeout
                        ),
                    ));
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
        })
    }
}
