//! The catalog: an embedded LMDB environment (heed) holding series, episodes and pieces,
//! uploads and their match regions ([`matches`](mod@matches)), ownership records
//! ([`rights`]), the review exclusion list, and the append-only audit log ([`audit`]).
//!
//! One database per record kind, JSON values, a schema version key. Every multi-record change
//! runs in one write transaction, so a killed process leaves either all of an episode or none of
//! it. The map grows on demand: a write that fills it is retried after a resize.
//!
//! Schema versions: adding a database (as uploads, matches, rights and audit were added) is
//! compatible, since opening creates any missing one empty, so [`SCHEMA_VERSION`] changes only
//! when an existing record's layout does. New record fields carry `#[serde(default)]`.
//!
//! Every open handle holds a shared `flock` on `aniprint.lock` in the directory, so
//! [`Catalog::compact`], which swaps the data file for a compacted copy, can tell that no other
//! process has the catalog open (one that had would go on writing to the old file).

pub mod audit;
pub mod date;
pub mod matches;
pub mod records;
pub mod rights;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use heed::types::{SerdeJson, Str, U32, U64, Unit};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn};

pub use self::audit::{AuditAction, AuditRecord, TargetKind};
pub use self::matches::{
    Band, Exclusion, MatchFilter, MatchRegion, MatchStatus, Review, ScanModels, ScanStored,
    StatusChange, Stem, Upload,
};
pub use self::records::{
    Episode, Numbering, Piece, PieceStatus, QualityFlag, Series, path_fields, stored_path,
};
pub use self::rights::{OwnershipRecord, Policy, RightsType, TerritoryMode, WorkKind};
use crate::{Error, Result};

/// Schema version this build writes: 2 once the catalog holds an index of half floats, which
/// builds before them (schema 1 only) would misread as 32-bit floats; a catalog without one
/// stays at 1, which those builds still open.
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema version this build reads.
pub const OLDEST_SCHEMA: u32 = 1;
// A large virtual map (address space only: the file stays sparse), so that it practically
// never has to grow: growing remaps it, which is unsafe while another thread of the process
// holds a read transaction (a search scanning mapped vectors). 1 TiB holds ~60,000 episodes
// at 17 MiB each.
const INITIAL_MAP: usize = 1 << 40;
const MAX_DBS: u32 = 32;
/// The file every open handle holds a shared lock on (see the module docs).
const LOCK_FILE: &str = "aniprint.lock";
/// LMDB's data file.
const DATA_FILE: &str = "data.mdb";
/// Where [`Catalog::compact`] writes the copy before renaming it over [`DATA_FILE`].
const COMPACTING_FILE: &str = "data.mdb.compacting";

/// The default catalog directory: `ANIPRINT_CATALOG`, else `./catalog`.
pub fn default_home() -> PathBuf {
    std::env::var_os("ANIPRINT_CATALOG").map(PathBuf::from).unwrap_or_else(|| "catalog".into())
}

/// Milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Clone, Copy)]
struct Dbs {
    meta: Database<'static, Str, U32<heed::byteorder::BE>>,
    series: Database<'static, Str, SerdeJson<Series>>,
    episodes: Database<'static, Str, SerdeJson<Episode>>,
    /// sha256 (hex) -> episode id: re-ingest by content, whatever the file is called now.
    by_hash: Database<'static, Str, Str>,
    pieces: Database<'static, Str, SerdeJson<Piece>>,
    uploads: Database<'static, Str, SerdeJson<Upload>>,
    matches: Database<'static, Str, SerdeJson<MatchRegion>>,
    /// `<upload id>/<match id>`: the matches of one upload.
    matches_by_upload: Database<'static, Str, Unit>,
    /// `<episode id>/<match id>` -> excluded reference range.
    exclusions: Database<'static, Str, SerdeJson<Exclusion>>,
    rights: Database<'static, Str, SerdeJson<OwnershipRecord>>,
    /// Append-only, keyed by a sequence number.
    audit: Database<'static, U64<heed::byteorder::BE>, SerdeJson<AuditRecord>>,
    /// `<kind>/<id>/<seq, 20 digits>`: the audit records of one target.
    audit_by_target: Database<'static, Str, Unit>,
}

/// An open catalog.
pub struct Catalog {
    env: Env,
    dbs: Dbs,
    path: PathBuf,
    /// Shared `flock` on [`LOCK_FILE`] while this handle lives.
    lock: File,
}

/// What [`Catalog::compact`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    /// Size of the data file before, bytes.
    pub before: u64,
    /// Size of the compacted data file, bytes.
    pub after: u64,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("path", &self.path).finish()
    }
}

/// Counts of what the catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Series.
    pub series: u64,
    /// Episodes.
    pub episodes: u64,
    /// Pieces.
    pub pieces: u64,
    /// Scanned uploads.
    pub uploads: u64,
    /// Match regions (any review state).
    pub matches: u64,
    /// Ownership records.
    pub rights: u64,
    /// Bytes the LMDB file takes on disk.
    pub disk_bytes: u64,
}

impl Catalog {
    /// Open (creating if needed) the catalog in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_map(path.as_ref(), INITIAL_MAP)
    }

    fn open_with_map(path: &Path, initial_map: usize) -> Result<Self> {
        let path = path.to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        // Blocks only while a compaction swaps the data file (seconds).
        lock.lock_shared().map_err(|e| Error::io(&lock_path, e))?;
        // A compaction holds the lock exclusively until its copy is renamed: one left now was
        // cut short (killed, disk full) and is only taking space.
        let _ = std::fs::remove_file(path.join(COMPACTING_FILE));
        // The data file may already be bigger than our initial map (it grew in an earlier run).
        let existing =
            std::fs::metadata(path.join(DATA_FILE)).map(|m| m.len() as usize).unwrap_or(0);
        let map = grow_to(initial_map, existing + (existing / 2));
        let env = open_env(&path, map)?;
        let wtxn = env.write_txn()?;
        let dbs = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let meta = dbo.create_database(wtxn, Some("meta"))?;
                let series = dbo.create_database(wtxn, Some("series"))?;
                let episodes = dbo.create_database(wtxn, Some("episodes"))?;
                let by_hash = dbo.create_database(wtxn, Some("episodes_by_hash"))?;
                let pieces = dbo.create_database(wtxn, Some("pieces"))?;
                // Review and rights (src/catalog/{matches,rights,audit}.rs).
                let review = (
                    dbo.create_database(wtxn, Some("uploads"))?,
                    dbo.create_database(wtxn, Some("matches"))?,
                    dbo.create_database(wtxn, Some("matches_by_upload"))?,
                    dbo.create_database(wtxn, Some("exclusions"))?,
                    dbo.create_database(wtxn, Some("rights"))?,
                    dbo.create_database(wtxn, Some("audit"))?,
                    dbo.create_database(wtxn, Some("audit_by_target"))?,
                );
                Ok(CommitOrAbort::<_, ()>::Commit((
                    (meta, series, episodes, by_hash, pieces),
                    review,
                )))
            })?
            .unwrap_commit();
        let ((meta, series, episodes, by_hash, pieces), review) = dbs;
        let (uploads, matches, matches_by_upload, exclusions, rights, audit, audit_by_target) =
            review;
        let dbs = Dbs {
            meta,
            series,
            episodes,
            by_hash,
            pieces,
            uploads,
            matches,
            matches_by_upload,
            exclusions,
            rights,
            audit,
            audit_by_target,
        };
        let cat = Self { env, dbs, path, lock };
        cat.check_schema()?;
        Ok(cat)
    }

    /// The catalog's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrite the data file without its free pages (LMDB files never shrink on their own:
    /// removed episodes and dropped forests leave free pages behind).
    ///
    /// Refuses with [`Error::CatalogBusy`] when another process has the catalog open. `prepare`
    /// runs first, once this handle is the only one, for changes that free pages (dropping
    /// vector forests). Then a compacted copy is written beside the data file, synced, and
    /// renamed over it, so a crash at any point leaves either the old file or the new one.
    pub fn compact<T>(
        self,
        prepare: impl FnOnce(&Catalog) -> Result<T>,
    ) -> Result<(T, Compaction)> {
        // Shared -> exclusive; fails while any other handle (process) holds its shared lock.
        match self.lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::CatalogBusy { path: self.path.clone() });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(self.path.join(LOCK_FILE), e));
            }
        }
        let prepared = prepare(&self)?;
        let data = self.path.join(DATA_FILE);
        let tmp = self.path.join(COMPACTING_FILE);
        let meta = std::fs::metadata(&data).map_err(|e| Error::io(&data, e))?;
        let before = meta.len();
        if let Err(e) = self.write_copy(&tmp, &meta) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let Catalog { env, path, lock, .. } = self;
        // The environment must be closed before its file is replaced; the exclusive lock is
        // held until the new file is in place, so no aniprint opens the old one meanwhile.
        env.prepare_for_closing().wait();
        // A program without that lock (an older aniprint, mdb_stat, a backup) may still have
        // the environment open: it would keep the old file's transaction id in lock.mdb and
        // could read or write the copy's meta pages wrongly. LMDB's own test says.
        let lmdb = match lmdb_sole_user(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, &data).map_err(|e| Error::io(&data, e))?;
        File::open(&path).and_then(|d| d.sync_all()).map_err(|e| Error::io(&path, e))?;
        if let Some(l) = lmdb {
            // The old file's reader table and transaction id: emptied, so the next opener
            // (the sole one, with the lock released) sets the region up from the new file.
            l.set_len(0).map_err(|e| Error::io(path.join("lock.mdb"), e))?;
        }
        let after = std::fs::metadata(&data).map(|m| m.len()).map_err(|e| Error::io(&data, e))?;
        drop(lock);
        Ok((prepared, Compaction { before, after }))
    }

    /// Write the compacted copy to `tmp` with the data file's owner and mode (LMDB made it
    /// 0600; a new file would get the umask's and the running user's), synced.
    fn write_copy(&self, tmp: &Path, data: &std::fs::Metadata) -> Result<()> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let io = |e| Error::io(tmp, e);
        let mut copy = File::options()
            .write(true)
            .create_new(true)
            .mode(data.permissions().mode() & 0o777)
            .open(tmp)
            .map_err(io)?;
        let owner = copy.metadata().map_err(io)?;
        if (owner.uid(), owner.gid()) != (data.uid(), data.gid()) {
            std::os::unix::fs::fchown(&copy, Some(data.uid()), Some(data.gid())).map_err(io)?;
        }
        self.env.copy_to_file(&mut copy, heed::CompactionOption::Enabled)?;
        copy.sync_all().map_err(io)
    }

    fn check_schema(&self) -> Result<()> {
        let found = {
            let rtxn = self.env.read_txn()?;
            self.dbs.meta.get(&rtxn, "schema_version")?
        };
        match found {
            Some(v) if (OLDEST_SCHEMA..=SCHEMA_VERSION).contains(&v) => Ok(()),
            Some(v) => Err(Error::SchemaMismatch {
                path: self.path.clone(),
                found: v,
                expected: SCHEMA_VERSION,
            }),
            // New catalogs keep half-float indexes from their first ingest.
            None => self.write(|w, dbs| Ok(dbs.meta.put(w, "schema_version", &SCHEMA_VERSION)?)),
        }
    }

    /// The schema version stored in the catalog.
    pub fn schema_version(&self) -> Result<u32> {
        let rtxn = self.env.read_txn()?;
        Ok(self.dbs.meta.get(&rtxn, "schema_version")?.unwrap_or(SCHEMA_VERSION))
    }

    /// Store `v` as the schema version (tests: a catalog as an older build left it).
    #[cfg(test)]
    pub(crate) fn set_schema_version(&self, v: u32) -> Result<()> {
        self.write(|w, d| Ok(d.meta.put(w, "schema_version", &v)?))
    }

    /// Raise the stored schema version to at least `v` in `wtxn` (the write that first stores
    /// what older builds cannot read).
    pub(crate) fn require_schema(&self, wtxn: &mut RwTxn<'_>, v: u32) -> Result<()> {
        if self.dbs.meta.get(wtxn, "schema_version")?.is_none_or(|found| found < v) {
            self.dbs.meta.put(wtxn, "schema_version", &v)?;
        }
        Ok(())
    }

    /// Run `f` in one write transaction and commit it; if the map is full, grow it and retry.
    fn write<T>(&self, f: impl Fn(&mut RwTxn<'_>, &Dbs) -> Result<T>) -> Result<T> {
        self.write_txn(|w| f(w, &self.dbs))
    }

    /// The LMDB environment, for modules that keep their own databases in it (the vector index).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Run `f` in one write transaction of the environment and commit it; if the map is full,
    /// grow it and run `f` again from scratch (so `f` must not have side effects outside the
    /// transaction).
    pub fn write_txn<T>(&self, f: impl Fn(&mut RwTxn<'_>) -> Result<T>) -> Result<T> {
        loop {
            let mut wtxn = self.env.write_txn()?;
            match f(&mut wtxn).and_then(|t| Ok(wtxn.commit().map(|()| t)?)) {
                Err(Error::Catalog(heed::Error::Mdb(heed::MdbError::MapFull))) => {
                    let size = self.env.info().map_size * 2;
                    tracing::info!("catalog map full, growing to {} MiB", size >> 20);
                    // SAFETY: the transaction above has ended (dropped or failed commit). LMDB
                    // also needs no other transaction of this process open; a search running
                    // on another thread would break that, which is why the map starts at 1 TiB
                    // and this is reached only by catalogs past it (or a smaller map chosen
                    // with `open_with_map`, as the tests do).
                    #[allow(unsafe_code)]
                    unsafe {
                        self.env.resize(size)?;
                    }
                }
                other => return other,
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&RoTxn<'_>, &Dbs) -> Result<T>) -> Result<T> {
        let rtxn = self.env.read_txn()?;
        f(&rtxn, &self.dbs)
    }

    /// The episode with this content hash, if ingested.
    pub fn episode_by_hash(&self, sha256: &str) -> Result<Option<Episode>> {
        self.read(|r, d| match d.by_hash.get(r, sha256)? {
            Some(id) => Ok(d.episodes.get(r, id)?),
            None => Ok(None),
        })
    }

    /// Store an episode with its pieces (and its series if new) in one transaction. If an
    /// episode with the same content is already there, nothing is written and it is returned.
    pub fn insert_episode(&self, episode: &Episode, pieces: &[Piece]) -> Result<Option<Episode>> {
        self.insert_episode_with(episode, pieces, |_| Ok(()))
    }

    /// [`Catalog::insert_episode`] that also runs `extra` (e.g. storing the pieces' vectors) in
    /// the same transaction, only when the episode is new: all of it lands, or none.
    pub fn insert_episode_with(
        &self,
        episode: &Episode,
        pieces: &[Piece],
        extra: impl Fn(&mut RwTxn<'_>) -> Result<()>,
    ) -> Result<Option<Episode>> {
        self.write(|w, d| {
            if let Some(id) = d.by_hash.get(w, &episode.sha256)? {
                return Ok(d.episodes.get(w, id)?);
            }
            if d.series.get(w, &episode.series)?.is_none() {
                let s = Series { name: episode.series.clone(), created_ms: episode.ingested_ms };
                d.series.put(w, &episode.series, &s)?;
            }
            d.episodes.put(w, &episode.id, episode)?;
            d.by_hash.put(w, &episode.sha256, &episode.id)?;
            for p in pieces {
                d.pieces.put(w, &p.id, p)?;
            }
            extra(w)?;
            Ok(None)
        })
    }

    /// Remove an episode and its pieces.
    pub fn remove_episode(&self, id: &str) -> Result<()> {
        self.remove_episode_with(id, |_| Ok(()))
    }

    /// [`Catalog::remove_episode`] that also runs `extra` (e.g. removing the episode's vectors)
    /// in the same transaction.
    pub fn remove_episode_with(
        &self,
        id: &str,
        extra: impl Fn(&mut RwTxn<'_>) -> Result<()>,
    ) -> Result<()> {
        self.write(|w, d| {
            let ep = d
                .episodes
                .get(w, id)?
                .ok_or_else(|| Error::NotFound { kind: "episode", id: id.to_string() })?;
            let prefix = format!("{id}-");
            let keys: Vec<String> = d
                .pieces
                .prefix_iter(w, &prefix)?
                .map(|r| r.map(|(k, _)| k.to_string()))
                .collect::<heed::Result<_>>()?;
            for k in keys {
                d.pieces.delete(w, &k)?;
            }
            d.by_hash.delete(w, &ep.sha256)?;
            d.episodes.delete(w, id)?;
            extra(w)
        })
    }

    /// Every series, by name.
    pub fn series(&self) -> Result<Vec<Series>> {
        self.read(|r, d| collect(d.series.iter(r)?))
    }

    /// Every episode, ordered by series then title.
    pub fn episodes(&self) -> Result<Vec<Episode>> {
        let mut eps = self.read(|r, d| collect(d.episodes.iter(r)?))?;
        eps.sort_by(|a, b| (&a.series, &a.title, &a.id).cmp(&(&b.series, &b.title, &b.id)));
        Ok(eps)
    }

    /// One episode by id.
    pub fn episode(&self, id: &str) -> Result<Episode> {
        self.read(|r, d| {
            d.episodes.get(r, id)?.ok_or_else(|| Error::NotFound { kind: "episode", id: id.into() })
        })
    }

    /// The pieces of one episode, in time order.
    pub fn pieces_of(&self, episode: &str) -> Result<Vec<Piece>> {
        let prefix = format!("{episode}-");
        self.read(|r, d| collect(d.pieces.prefix_iter(r, &prefix)?))
    }

    /// Every piece, grouped by episode in time order.
    pub fn pieces(&self) -> Result<Vec<Piece>> {
        self.read(|r, d| collect(d.pieces.iter(r)?))
    }

    /// One piece by id.
    pub fn piece(&self, id: &str) -> Result<Piece> {
        self.read(|r, d| {
            d.pieces.get(r, id)?.ok_or_else(|| Error::NotFound { kind: "piece", id: id.into() })
        })
    }

    /// Set a piece's curation status.
    pub fn set_piece_status(&self, id: &str, status: PieceStatus) -> Result<Piece> {
        self.write(|w, d| {
            let mut p = d
                .pieces
                .get(w, id)?
                .ok_or_else(|| Error::NotFound { kind: "piece", id: id.into() })?;
            p.status = status;
            d.pieces.put(w, id, &p)?;
            Ok(p)
        })
    }

    /// Set the curation status of several pieces in one transaction: either every id is found
    /// and all change, or nothing changes.
    pub fn set_pieces_status(&self, ids: &[String], status: PieceStatus) -> Result<Vec<Piece>> {
        self.write(|w, d| {
            let mut changed = Vec::with_capacity(ids.len());
            for id in ids {
                let mut p = d
                    .pieces
                    .get(w, id)?
                    .ok_or_else(|| Error::NotFound { kind: "piece", id: id.clone() })?;
                p.status = status;
                d.pieces.put(w, id, &p)?;
                changed.push(p);
            }
            Ok(changed)
        })
    }

    /// Record counts and size on disk.
    pub fn stats(&self) -> Result<Stats> {
        let (series, episodes, pieces, uploads, matches, rights) = self.read(|r, d| {
            Ok((
                d.series.len(r)?,
                d.episodes.len(r)?,
                d.pieces.len(r)?,
                d.uploads.len(r)?,
                d.matches.len(r)?,
                d.rights.len(r)?,
            ))
        })?;
        let disk_bytes = self.env.real_disk_size()?;
        Ok(Stats { series, episodes, pieces, uploads, matches, rights, disk_bytes })
    }
}

fn open_env(path: &Path, map: usize) -> Result<Env> {
    // SAFETY: LMDB requires that the same environment is not opened twice in one process and
    // that the files are not modified by other means; aniprint opens each catalog once per
    // process and only through this function.
    #[allow(unsafe_code)]
    let env = unsafe { EnvOpenOptions::new().map_size(map).max_dbs(MAX_DBS).open(path) };
    env.map_err(|e| match e {
        heed::Error::Io(io) => Error::io(path, io),
        other => Error::Catalog(other),
    })
}

/// LMDB's test for "nobody else has this environment open": a write lock on byte 0 of
/// `lock.mdb`, on which every open environment holds a read lock (of any program: it is LMDB's
/// own protocol). Returns the lock file, locked; `None` if there is none.
fn lmdb_sole_user(dir: &Path) -> Result<Option<File>> {
    use std::os::fd::AsRawFd;
    let p = dir.join("lock.mdb");
    let f = match File::options().read(true).write(true).open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    // SAFETY: plain C struct, all-zero is a valid value.
    #[allow(unsafe_code)]
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 1;
    // SAFETY: fcntl on a descriptor this function owns, with a valid `flock`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &lock) };
    if rc == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Err(Error::CatalogBusy { path: dir.to_path_buf() }),
        _ => Err(Error::io(&p, e)),
    }
}

/// The smallest map size >= `min` that is `base` doubled some times (page-aligned).
fn grow_to(base: usize, min: usize) -> usize {
    let mut size = base;
    while size < min {
        size *= 2;
    }
    size
}

fn collect<K, V>(iter: impl Iterator<Item = heed::Result<(K, V)>>) -> Result<Vec<V>> {
    iter.map(|r| r.map(|(_, v)| v).map_err(Error::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{SampleRate, Samples, Seconds};

    pub(crate) fn episode(id: &str, sha: &str) -> Episode {
        Episode {
            id: id.into(),
            series: "Show".into(),
            title: format!("ep {id}"),
            path: format!("/x/{id}.mkv"),
            path_bytes: None,
            sha256: sha.into(),
            size_bytes: 10,
            duration: Seconds(200.0),
            streams: vec![],
            audio_stream: 1,
            language: Some("jpn".into()),
            source_rate: Some(48_000),
            work_rate: SampleRate(16_000),
            pieces: 2,
            ingested_ms: 1,
            numbering: Default::default(),
        }
    }

    fn piece(ep: &str, i: u32, start: u64, end: u64) -> Piece {
        Piece {
            id: Piece::make_id(ep, SampleRate(16_000).seconds(Samples(start))),
            episode: ep.into(),
            index: i,
            start: Samples(start),
            end: Samples(end),
            status: PieceStatus::Unreviewed,
            flags: vec![],
            rms_dbfs: -20.0,
        }
    }

    #[test]
    fn insert_is_idempotent_by_hash_and_remove_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let ep = episode("aaa", "hash1");
        let pieces =
            [piece("aaa", 0, 0, 16_000 * 180), piece("aaa", 1, 16_000 * 180, 16_000 * 200)];
        assert!(cat.insert_episode(&ep, &pieces).unwrap().is_none());
        // Same content under another name: a no-op that returns the existing record.
        let mut renamed = ep.clone();
        renamed.path = "/y/renamed.mkv".into();
        assert_eq!(cat.insert_episode(&renamed, &pieces).unwrap().unwrap().path, "/x/aaa.mkv");
        let s = cat.stats().unwrap();
        assert_eq!((s.series, s.episodes, s.pieces), (1, 1, 2));
        assert_eq!(cat.pieces_of("aaa").unwrap()[1].index, 1);
        cat.remove_episode("aaa").unwrap();
        let s = cat.stats().unwrap();
        assert_eq!((s.episodes, s.pieces), (0, 0));
        assert!(cat.episode_by_hash("hash1").unwrap().is_none());
    }

    #[test]
    fn setting_many_statuses_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let pieces = [piece("ccc", 0, 0, 16_000), piece("ccc", 1, 16_000, 32_000)];
        cat.insert_episode(&episode("ccc", "h3"), &pieces).unwrap();
        let ids: Vec<String> = pieces.iter().map(|p| p.id.clone()).collect();
        let mut with_unknown = ids.clone();
        with_unknown.push("ccc-999999999".into());
        let err = cat.set_pieces_status(&with_unknown, PieceStatus::Drop).unwrap_err();
        assert!(matches!(err, Error::NotFound { kind: "piece", .. }), "{err}");
        assert!(cat.pieces().unwrap().iter().all(|p| p.status == PieceStatus::Unreviewed));
        assert_eq!(cat.set_pieces_status(&ids, PieceStatus::Keep).unwrap().len(), 2);
        assert!(cat.pieces().unwrap().iter().all(|p| p.status == PieceStatus::Keep));
    }

    #[test]
    fn compact_shrinks_the_file_keeps_the_records_and_refuses_beside_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        // ~4 MB of pieces, then all but one episode removed: free pages LMDB keeps.
        for e in 0..40 {
            let id = format!("e{e:03}");
            let pieces: Vec<Piece> =
                (0..100).map(|i| piece(&id, i, u64::from(i) * 16_000, 16_000)).collect();
            cat.insert_episode(&episode(&id, &format!("h{e}")), &pieces).unwrap();
        }
        for e in 1..40 {
            cat.remove_episode(&format!("e{e:03}")).unwrap();
        }
        cat.set_piece_status(&cat.pieces_of("e000").unwrap()[7].id, PieceStatus::Keep).unwrap();

        // Another process's handle is a shared lock on the same file.
        let other = File::open(dir.path().join(LOCK_FILE)).unwrap();
        other.lock_shared().unwrap();
        let err = cat.compact(|_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::CatalogBusy { .. }), "{err}");
        drop(other);

        let cat = Catalog::open(dir.path()).unwrap();
        let (episodes, done) = cat.compact(|c| Ok(c.stats()?.episodes)).unwrap();
        assert_eq!(episodes, 1);
        assert!(done.after * 2 < done.before, "{done:?}");
        assert!(!dir.path().join(COMPACTING_FILE).exists());
        let cat = Catalog::open(dir.path()).unwrap();
        let s = cat.stats().unwrap();
        assert_eq!((s.episodes, s.pieces), (1, 100));
        assert_eq!(cat.pieces_of("e000").unwrap()[7].status, PieceStatus::Keep);
        // And it takes writes as before.
        cat.insert_episode(&episode("new", "hn"), &[piece("new", 0, 0, 16_000)]).unwrap();
        assert_eq!(cat.stats().unwrap().episodes, 2);
    }

    /// A program without aniprint's lock (an older aniprint, mdb_stat) with the environment
    /// open: the test binary again, as a child, opening it the way those do.
    #[test]
    fn compact_refuses_beside_a_program_without_the_lock() {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Command, Stdio};
        const NAME: &str = "catalog::tests::compact_refuses_beside_a_program_without_the_lock";
        if let Ok(dir) = std::env::var("ANIPRINT_TEST_HOLD_ENV") {
            let _env = open_env(Path::new(&dir), INITIAL_MAP).unwrap();
            println!("LMDB-HELD");
            std::io::stdout().flush().unwrap();
            std::io::stdin().read_line(&mut String::new()).unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        cat.insert_episode(&episode("aaa", "h1"), &[piece("aaa", 0, 0, 16_000)]).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("ANIPRINT_TEST_HOLD_ENV", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("LMDB-HELD")), "the child did not open it");
        let before = std::fs::read(dir.path().join(DATA_FILE)).unwrap();

        let err = cat.compact(|_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::CatalogBusy { .. }), "{err}");
        assert_eq!(std::fs::read(dir.path().join(DATA_FILE)).unwrap(), before);
        assert!(!dir.path().join(COMPACTING_FILE).exists());

        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        let cat = Catalog::open(dir.path()).unwrap();
        let ((), _) = cat.compact(|_| Ok(())).unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        assert_eq!(cat.stats().unwrap().pieces, 1);
    }

    #[test]
    fn grows_the_map_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open_with_map(dir.path(), 1 << 20).unwrap();
        let before = cat.env.info().map_size;
        // ~4 MB of piece records overflow a 1 MiB map.
        let big: Vec<Piece> = (0..40)
            .map(|i| {
                let mut p = piece("bbb", i, u64::from(i) * 16_000, u64::from(i + 1) * 16_000);
                p.flags = vec![QualityFlag::Silence; 10_000];
                p
            })
            .collect();
        cat.insert_episode(&episode("bbb", "h2"), &big).unwrap();
        assert!(cat.env.info().map_size > before);
        assert_eq!(cat.stats().unwrap().pieces, 40);
    }

    #[test]
    fn schema_version_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cat = Catalog::open(dir.path()).unwrap();
            cat.write(|w, d| Ok(d.meta.put(w, "schema_version", &999)?)).unwrap();
        }
        let err = Catalog::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch { found: 999, .. }), "{err}");
        // A catalog from before half floats (1) still opens, and stays 1 until one is stored
        // (`index::store`'s tests).
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
        cat.set_schema_version(1).unwrap();
        drop(cat);
        let cat = Catalog::open(dir.path()).unwrap();
        assert_eq!(cat.schema_version().unwrap(), 1);
    }
}
