//! Where `loyalty` writes: folders and files that appear whole or not at all, never
//! over the input, one run at a time per folder, and nothing left behind by a run
//! that died.
//!
//! An output folder is built in a staging folder beside it (`.NAME.tmp-RUN`), every
//! file and folder of it is fsynced, and it is swapped with the old folder in one
//! `renameat2(RENAME_EXCHANGE)`; the old outputs, now under the staging name, are
//! removed after. Where the filesystem cannot exchange (some network and FUSE
//! filesystems), the fallback renames the old folder to `.NAME.old-RUN` and the new
//! one in: `--out` is missing between the two renames, and a run that dies there is
//! repaired by the next one, which puts the old folder back before anything else.
//!
//! A lock file beside the folder (`.NAME.lock`, `flock`) admits one run at a time;
//! the kernel drops the lock when its process dies, so whoever holds it knows that
//! every other `.NAME.tmp-*` and `.NAME.old-*` is the leftover of a dead run and
//! removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::IoError;

/// Written into every output folder: only folders carrying it are replaced by a run,
/// so a mistyped `--out` cannot wipe a folder of other files.
pub const OUTPUT_MARKER: &str = ".loyalty-output";

/// Written into every generated or imported dataset: such a folder is input, never
/// replaced by a run's outputs.
pub const DATASET_MARKER: &str = ".loyalty-dataset";

/// What a folder written by [`OutputDir`] holds, so which folders it may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// A run's outputs (or rejects): replaces only earlier outputs.
    Outputs,
    /// A dataset (`gen`, `import`): replaces only an earlier dataset.
    Dataset,
}

impl Holds {
    fn marker(self) -> &'static str {
        match self {
            Holds::Outputs => OUTPUT_MARKER,
            Holds::Dataset => DATASET_MARKER,
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> IoError + '_ {
    move |source| IoError::Io { path: path.to_path_buf(), source }
}

/// A name unique to this run: the process id (so a later run can tell a dead owner
/// of a single file's temporary from a live one) and the start time.
fn run_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("{}-{:x}", std::process::id(), nanos as u64)
    })
    .clone()
}

// ---------------------------------------------------------------------------------
// Paths to remove if the process must exit without unwinding (a signal that the run
// did not answer in time). `commit` holds the registry's lock while it swaps, so an
// abort never removes a folder that is being swapped in.

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn register(path: &Path) {
    pending().push(path.to_path_buf());
}

fn unregister(path: &Path) {
    pending().retain(|p| p != path);
}

/// Remove every staging folder, temporary file and lock this process holds, and keep
/// the registry locked so no swap can start: for a process about to exit at once.
pub fn abandon() -> MutexGuard<'static, Vec<PathBuf>> {
    let guard = pending();
    for path in guard.iter() {
        let _ = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    }
    guard
}

// ---------------------------------------------------------------------------------
// Durability.

/// fsync every file and folder under `path` (and `path` itself), so a power loss
/// after the swap cannot leave empty or truncated files under the right names.
pub fn sync_tree(path: &Path) -> Result<(), IoError> {
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err(path))? {
            sync_tree(&entry.map_err(io_err(path))?.path())?;
        }
    }
    sync_path(path)
}

fn sync_path(path: &Path) -> Result<(), IoError> {
    #[cfg(test)]
    tests::SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned())
}

// ---------------------------------------------------------------------------------
// The destination checks.

/// `path` made absolute and free of symlinks as far as it exists (the rest appended).
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return absolute,
        }
    }
    let mut resolved = fs::canonicalize(&existing).unwrap_or(existing);
    resolved.extend(rest.iter().rev());
    resolved
}

/// Refuse a destination that is, contains or lies inside one of the inputs.
pub fn check_not_input(target: &Path, inputs: &[&Path]) -> Result<(), IoError> {
    let out = resolve(target);
    for input in inputs {
        let input_path = resolve(input);
        let how = if out == input_path {
            "is"
        } else if out.starts_with(&input_path) {
            "is inside"
        } else if input_path.starts_with(&out) {
            "contains"
        } else {
            continue;
        };
        return Err(IoError::OverlapsInput { path: target.to_path_buf(), input: input.to_path_buf(), how });
    }
    Ok(())
}

/// True when `dir` holds a dataset, whatever wrote it: the marker, or a billing table
/// (a run's outputs have a customers table, never a billing one).
fn holds_dataset(dir: &Path) -> bool {
    dir.join(DATASET_MARKER).exists() || dir.join("billing.parquet").exists() || dir.join("billing").is_dir()
}

/// Why `target` must not be replaced by a folder holding `holds`, if it must not.
fn refusal(target: &Path, holds: Holds) -> Result<Option<String>, IoError> {
    let meta = match fs::metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::Io { path: target.to_path_buf(), source: e }),
    };
    if !meta.is_dir() {
        return Ok(Some("it is a file".into()));
    }
    let parent = parent_of(target);
    if fs::metadata(&parent).is_ok_and(|p| p.dev() != meta.dev()) {
        return Ok(Some("it is a mount point (a folder cannot be swapped across filesystems)".into()));
    }
    let own_marker = target.join(holds.marker()).exists();
    match holds {
        Holds::Outputs if holds_dataset(target) => {
            return Ok(Some(format!("it holds a dataset ({DATASET_MARKER} or a billing table)")));
        }
        // A dataset written before datasets had their own marker carries the output one.
        Holds::Dataset if own_marker || (target.join(OUTPUT_MARKER).exists() && holds_dataset(target)) => {
            return Ok(None);
        }
        Holds::Dataset if target.join(OUTPUT_MARKER).exists() => return Ok(Some("it holds a run's outputs".into())),
        _ if own_marker => return Ok(None),
        _ => {}
    }
    let mut entries = fs::read_dir(target).map_err(io_err(target))?;
    Ok(entries.next().is_some().then(|| format!("it holds files and no {} marker", holds.marker())))
}

// ---------------------------------------------------------------------------------
// The lock.

/// `flock` on `.NAME.lock` beside a destination, held for the whole run. Its file
/// says who holds it; it is removed when the lock is released.
struct DestinationLock {
    path: PathBuf,
    file: File,
}

impl DestinationLock {
    fn acquire(parent: &Path, name: &str, target: &Path) -> Result<Self, IoError> {
        let path = parent.join(format!(".{name}.lock"));
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err(&path))?;
            if let Err(e) = file.try_lock() {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return match e {
                    fs::TryLockError::WouldBlock => Err(IoError::Locked {
                        path: target.to_path_buf(),
                        lock: path,
                        holder: holder.trim().to_string(),
                    }),
                    fs::TryLockError::Error(source) => Err(IoError::Io { path, source }),
                };
            }
            // The holder before us may have removed the file after we opened it: the lock
            // counts only if the name still leads to the file we locked.
            let ours = file.metadata().map_err(io_err(&path))?;
            if fs::metadata(&path).is_ok_and(|now| now.ino() == ours.ino() && now.dev() == ours.dev()) {
                file.set_len(0).map_err(io_err(&path))?;
                let holder = format!("pid {} ({})", std::process::id(), std::env::args().collect::<Vec<_>>().join(" "));
                file.write_all(holder.as_bytes()).map_err(io_err(&path))?;
                register(&path);
                return Ok(Self { path, file });
            }
        }
    }
}

impl Drop for DestinationLock {
    fn drop(&mut self) {
        // Removed while still locked: a run waiting on the old file sees it is gone.
        unregister(&self.path);
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// `.NAME.tmp-RUN`, `.NAME.old-RUN`, `.NAME.exchange-RUN` (the distributed engine's
/// scratch folder), `.NAME.buckets-RUN` (the customer buckets, [`OutputDir::scratch`])
/// with RUN a pid-hex or a bare pid, or `.NAME.old`: names only a run writing NAME
/// creates.
fn is_leftover(entry: &str, name: &str) -> bool {
    let run = |rest: &str| {
        let mut parts = rest.splitn(2, '-');
        let pid_ok = parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        pid_ok && parts.next().is_none_or(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let Some(rest) = entry.strip_prefix('.').and_then(|e| e.strip_prefix(name)) else { return false };
    rest == ".old"
        || [".old-", ".tmp-", ".exchange-", ".buckets-"].iter().any(|kind| rest.strip_prefix(kind).is_some_and(run))
}

/// Remove what dead runs left beside `name` in `parent`; the lock proves they are dead.
/// If a dead run's fallback swap left no `target`, its old folder is put back first.
fn clear_leftovers(parent: &Path, name: &str, target: &Path) -> Result<(), IoError> {
    let old = format!(".{name}.old");
    let mut leftovers: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(parent).map_err(io_err(parent))? {
        let entry = entry.map_err(io_err(parent))?;
        if is_leftover(&entry.file_name().to_string_lossy(), name) {
            leftovers.push(entry.path());
        }
    }
    leftovers.sort();
    if !target.exists()
        && let Some(old_folder) = leftovers.iter().find(|p| file_name(p).starts_with(&old))
    {
        fs::rename(old_folder, target).map_err(io_err(target))?;
        tracing::warn!(
            "{} was missing after a run died while swapping; restored the previous outputs",
            target.display()
        );
    }
    for path in leftovers.iter().filter(|p| p.exists()) {
        tracing::info!("removing {} (left by a run that died)", path.display());
        let removed = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
        removed.map_err(io_err(path))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// The output folder.

/// What a scratch folder beside an output holds (its name says it, so a dead run's
/// scratch is recognised as a leftover).
#[derive(Debug, Clone, Copy)]
pub enum ScratchKind {
    /// The customer-bucketed copy of the tables (`crate::buckets`).
    Buckets,
}

impl ScratchKind {
    fn name(self) -> &'static str {
        match self {
            ScratchKind::Buckets => "buckets",
        }
    }
}

/// A scratch folder made by [`OutputDir::scratch`], removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove the scratch folder {}: {e}", self.path.display());
        }
        unregister(&self.path);
    }
}

/// An output folder built beside its final place and swapped into it on success.
/// [`OutputDir::begin`] does every check of the destination, so call it before any
/// work. Dropping it without [`OutputDir::commit`] removes the staging folder, so a
/// failed run leaves the previous outputs exactly as they were.
pub struct OutputDir {
    target: PathBuf,
    parent: PathBuf,
    staging: PathBuf,
    holds: Holds,
    committed: bool,
    _lock: DestinationLock,
}

impl OutputDir {
    /// Check that `target` may receive a folder holding `holds` and that none of
    /// `inputs` overlaps it, take its lock, clear dead runs' leftovers and create the
    /// staging folder.
    pub fn begin(target: &Path, holds: Holds, inputs: &[&Path]) -> Result<Self, IoError> {
        check_not_input(target, inputs)?;
        let target = if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::canonicalize(target).map_err(io_err(target))?
        } else {
            target.to_path_buf()
        };
        if let Some(reason) = refusal(&target, holds)? {
            return Err(IoError::NotAnOutput { path: target, reason });
        }
        let name = file_name(&target);
        let parent = parent_of(&target);
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let lock = DestinationLock::acquire(&parent, &name, &target)?;
        clear_leftovers(&parent, &name, &target)?;
        let staging = parent.join(format!(".{name}.tmp-{}", run_id()));
        fs::create_dir(&staging).map_err(io_err(&staging))?;
        register(&staging);
        Ok(Self { target, parent, staging, holds, committed: false, _lock: lock })
    }

    /// A scratch folder beside the output, `.NAME.KIND-RUN` (KIND: `buckets`), for data
    /// the run reads back and never publishes. It is removed when the guard is
    /// dropped, when the process exits abruptly on a signal ([`abandon`]), and by the
    /// next run on the same output if this one is killed outright.
    pub fn scratch(&self, kind: ScratchKind) -> Result<ScratchDir, IoError> {
        let path = self.parent.join(format!(".{}.{}-{}", file_name(&self.target), kind.name(), run_id()));
        fs::create_dir(&path).map_err(io_err(&path))?;
        register(&path);
        Ok(ScratchDir { path })
    }

    /// Where to write the outputs until [`commit`](Self::commit).
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The folder the outputs go to.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Make the staged folder durable and swap it into place in one step; the old
    /// outputs are removed after.
    pub fn commit(mut self) -> Result<PathBuf, IoError> {
        let marker = self.staging.join(self.holds.marker());
        fs::write(&marker, "written by loyalty; this folder is replaced whole by the next run\n")
            .map_err(io_err(&marker))?;
        sync_tree(&self.staging)?;
        let registry = pending();
        loyalty_contract::cancel::check()?;
        let old = self.swap()?;
        self.committed = true;
        drop(registry);
        sync_path(&self.parent)?;
        unregister(&self.staging);
        // The new outputs are in place: an old folder that will not go is the next
        // run's leftover to remove, not a failure of this one.
        if let Some(old) = old
            && let Err(e) = fs::remove_dir_all(&old)
        {
            tracing::warn!("could not remove the previous outputs at {}: {e}", old.display());
        }
        Ok(self.target.clone())
    }

    /// Put the staging folder at the target; returns where the old outputs now are.
    fn swap(&self) -> Result<Option<PathBuf>, IoError> {
        if !self.target.exists() {
            fs::rename(&self.staging, &self.target).map_err(io_err(&self.target))?;
            return Ok(None);
        }
        match exchange(&self.staging, &self.target) {
            Ok(()) => Ok(Some(self.staging.clone())),
            Err(e) if exchange_unsupported(&e) => self.swap_by_two_renames(),
            Err(source) => Err(IoError::Io { path: self.target.clone(), source }),
        }
    }

    fn swap_by_two_renames(&self) -> Result<Option<PathBuf>, IoError> {
        let old = self.parent.join(format!(".{}.old-{}", file_name(&self.target), run_id()));
        fs::rename(&self.target, &old).map_err(io_err(&self.target))?;
        if let Err(source) = fs::rename(&self.staging, &self.target) {
            let _ = fs::rename(&old, &self.target);
            return Err(IoError::Io { path: self.target.clone(), source });
        }
        Ok(Some(old))
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
            unregister(&self.staging);
        }
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

fn exchange_unsupported(e: &std::io::Error) -> bool {
    // EINVAL: the filesystem does not implement the flag; ENOSYS: an old kernel.
    e.kind() == std::io::ErrorKind::Unsupported || matches!(e.raw_os_error(), Some(22 | 38 | 95))
}

// ---------------------------------------------------------------------------------
// Single files.

/// Check, before any work, that a single output file can go to `path`: not an
/// input, not a folder, its folder creatable.
pub fn check_output_file(path: &Path, inputs: &[&Path]) -> Result<(), IoError> {
    check_not_input(path, inputs)?;
    if path.is_dir() {
        return Err(IoError::NotAnOutput { path: path.to_path_buf(), reason: "it is a folder".into() });
    }
    let parent = parent_of(path);
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    if !parent.is_dir() {
        return Err(IoError::NotAnOutput { path: path.to_path_buf(), reason: "its parent is not a folder".into() });
    }
    Ok(())
}

fn pid_is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove temporaries of `name` in `parent` whose writing process is gone.
fn clear_dead_temporaries(parent: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry_name.strip_prefix(&prefix) else { continue };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !pid_is_alive(p)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Write one file whole or not at all: `write` fills a temporary beside `path`, which
/// is fsynced and renamed over it.
pub fn write_file_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<(), IoError>) -> Result<(), IoError> {
    let parent = parent_of(path);
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = file_name(path);
    clear_dead_temporaries(&parent, &name);
    let tmp = parent.join(format!(".{name}.tmp-{}", run_id()));
    register(&tmp);
    let written = write(&tmp).and_then(|()| {
        sync_path(&tmp)?;
        let _registry = pending();
        loyalty_contract::cancel::check()?;
        fs::rename(&tmp, path).map_err(io_err(path))
    });
    unregister(&tmp);
    match written {
        Ok(()) => sync_path(&parent),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The paths `sync_path` fsynced on this thread, in order.
        pub(super) static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    #[test]
    fn every_file_and_folder_is_fsynced_before_the_swap_and_the_parent_after() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        let staged = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
        let staging = staged.path().to_path_buf();
        fs::create_dir_all(staging.join("rejects")).unwrap();
        fs::write(staging.join("rejects/billing.parquet"), "x").unwrap();
        fs::write(staging.join("run.json"), "{}").unwrap();
        SYNCED.with(|s| s.borrow_mut().clear());
        staged.commit().unwrap();
        let synced = SYNCED.with(|s| s.borrow().clone());
        for path in ["rejects/billing.parquet", "rejects", "run.json", OUTPUT_MARKER, ""] {
            let path = if path.is_empty() { staging.clone() } else { staging.join(path) };
            assert!(synced.contains(&path), "{path:?} not fsynced: {synced:?}");
        }
        assert_eq!(synced.last(), Some(&tmp.path().to_path_buf()), "the parent last, after the swap");
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn failed_output_leaves_previous_untouched_and_commit_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("old.txt"), "previous").unwrap();
        // A folder of other files is never replaced.
        assert!(matches!(OutputDir::begin(&target, Holds::Outputs, &[]), Err(IoError::NotAnOutput { .. })));
        fs::write(target.join(OUTPUT_MARKER), "").unwrap();
        {
            let staged = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
            fs::write(staged.path().join("new.txt"), "partial").unwrap();
            // dropped without commit: a failed run
        }
        assert_eq!(fs::read_to_string(target.join("old.txt")).unwrap(), "previous");
        assert!(!target.join("new.txt").exists());
        assert_eq!(names(tmp.path()), ["out"], "no staging folder or lock left behind");

        let staged = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
        fs::write(staged.path().join("new.txt"), "done").unwrap();
        staged.commit().unwrap();
        assert!(!target.join("old.txt").exists());
        assert_eq!(fs::read_to_string(target.join("new.txt")).unwrap(), "done");
        assert_eq!(names(tmp.path()), ["out"]);
    }

    #[test]
    fn the_fallback_swap_replaces_too() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join(OUTPUT_MARKER), "").unwrap();
        fs::write(target.join("old.txt"), "previous").unwrap();
        let staged = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
        fs::write(staged.path().join("new.txt"), "done").unwrap();
        assert_eq!(staged.swap_by_two_renames().unwrap().map(|p| p.exists()), Some(true));
        assert_eq!(fs::read_to_string(target.join("new.txt")).unwrap(), "done");
    }

    #[test]
    fn an_output_overlapping_an_input_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(data.join("billing")).unwrap();
        for (out, how) in
            [(data.clone(), "is"), (data.join("out"), "is inside"), (tmp.path().to_path_buf(), "contains")]
        {
            match OutputDir::begin(&out, Holds::Outputs, &[&data]) {
                Err(IoError::OverlapsInput { how: h, .. }) => assert_eq!(h, how),
                other => panic!("{out:?}: {:?}", other.err()),
            }
        }
        // Relative spellings and symlinks are seen through.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        assert!(matches!(OutputDir::begin(&link, Holds::Outputs, &[&data]), Err(IoError::OverlapsInput { .. })));
        assert!(matches!(
            OutputDir::begin(&data.join("billing/../x"), Holds::Outputs, &[&data]),
            Err(IoError::OverlapsInput { .. })
        ));
    }

    #[test]
    fn a_dataset_is_never_replaced_by_outputs_but_by_a_new_dataset() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join(DATASET_MARKER), "").unwrap();
        assert!(matches!(OutputDir::begin(&data, Holds::Outputs, &[]), Err(IoError::NotAnOutput { .. })));
        // A dataset from before the dataset marker: the output marker and a billing table.
        let legacy = tmp.path().join("legacy");
        fs::create_dir_all(legacy.join("billing")).unwrap();
        fs::write(legacy.join(OUTPUT_MARKER), "").unwrap();
        fs::write(legacy.join("customers.parquet"), "").unwrap();
        assert!(matches!(OutputDir::begin(&legacy, Holds::Outputs, &[]), Err(IoError::NotAnOutput { .. })));
        assert!(OutputDir::begin(&legacy, Holds::Dataset, &[]).is_ok());
        assert!(OutputDir::begin(&data, Holds::Dataset, &[]).is_ok());
    }

    #[test]
    fn a_second_writer_is_refused_and_the_lock_dies_with_its_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        let first = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
        match OutputDir::begin(&target, Holds::Outputs, &[]) {
            Err(IoError::Locked { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}")
            }
            other => panic!("{:?}", other.err()),
        }
        drop(first);
        assert!(OutputDir::begin(&target, Holds::Outputs, &[]).is_ok());
    }

    #[test]
    fn a_scratch_folder_is_a_leftover_while_it_exists_and_goes_with_its_guard() {
        let tmp = tempfile::tempdir().unwrap();
        let staged = OutputDir::begin(&tmp.path().join("out"), Holds::Outputs, &[]).unwrap();
        let scratch = staged.scratch(ScratchKind::Buckets).unwrap();
        let name = file_name(scratch.path());
        assert!(name.starts_with(".out.buckets-") && is_leftover(&name, "out"), "{name}");
        fs::write(scratch.path().join("f"), "x").unwrap();
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_and_a_missing_target_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        // Another folder's lock, whose name starts like a leftover's, stays.
        fs::write(tmp.path().join(".out.old-x.lock"), "").unwrap();
        assert!(!is_leftover(".out.old-x.lock", "out") && is_leftover(".out.tmp-12", "out"));
        for leftover in [".out.tmp-1-a", ".out.old", ".out.old-2-b", ".out.buckets-3-c"] {
            fs::create_dir_all(tmp.path().join(leftover).join("sub")).unwrap();
            fs::write(tmp.path().join(leftover).join("sub/f"), leftover).unwrap();
        }
        let staged = OutputDir::begin(&target, Holds::Outputs, &[]).unwrap();
        // The fallback swap died between its renames: the old folder is back.
        assert_eq!(fs::read_to_string(target.join("sub/f")).unwrap(), ".out.old");
        let mut left = names(tmp.path());
        left.retain(|n| *n != format!(".out.tmp-{}", run_id()));
        assert_eq!(left, [".out.lock", ".out.old-x.lock", "out"]);
        drop(staged);
        assert_eq!(names(tmp.path()), [".out.old-x.lock", "out"]);
    }

    #[test]
    fn single_files_are_replaced_whole_and_dead_temporaries_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("scores.parquet");
        fs::write(tmp.path().join(".scores.parquet.tmp-999999999-x"), "dead").unwrap();
        write_file_atomic(&path, |t| fs::write(t, "new").map_err(io_err(t))).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let failed = write_file_atomic(&path, |t| {
            fs::write(t, "half").unwrap();
            Err(IoError::NotAnOutput { path: t.to_path_buf(), reason: "test".into() })
        });
        assert!(failed.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(names(tmp.path()), ["scores.parquet"]);
    }
}
