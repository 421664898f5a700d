//! The standalone node's RDB file, as redis-server keeps it: `SAVE`
//! writes it while the server waits, `BGSAVE` from a thread of its own
//! while clients are served, `LASTSAVE` says when one last succeeded, and
//! the node loads it at start-up. Each save writes a temporary file in
//! the same directory, syncs it and renames it over the old one, so the
//! file is always a whole snapshot.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::{Locker, Summary, write_stepwise};
use crate::db::Db;

/// What `INFO persistence` and `LASTSAVE` report.
#[derive(Debug, Clone, Default)]
pub struct SaveState {
    /// Unix seconds of the last successful save (or of start-up).
    pub last_save: u64,
    /// Whether the last background save succeeded.
    pub last_bgsave_ok: bool,
    /// Seconds the last background save took (-1: none yet).
    pub last_bgsave_secs: i64,
    /// When the running background save started.
    pub running_since: Option<Instant>,
    /// `BGSAVE SCHEDULE` asked for another save after the running one.
    pub scheduled: bool,
    /// What the last successful save wrote.
    pub last: Option<Summary>,
    /// Saves that succeeded.
    pub saves: u64,
    /// The error of the last failed save.
    pub last_error: Option<String>,
}

/// The node's save state and where its file goes.
pub struct Saves {
    pub state: Mutex<SaveState>,
    dir: PathBuf,
    dbfilename: String,
}

/// Why `BGSAVE` did not start one.
#[derive(Debug, PartialEq, Eq)]
pub enum Busy {
    /// One is running: the request was noted (`SCHEDULE`) or refused.
    Scheduled,
    Running,
}

impl Saves {
    pub fn new(dir: PathBuf, dbfilename: String, now_secs: u64) -> Self {
        Saves {
            state: Mutex::new(SaveState {
                last_save: now_secs,
                last_bgsave_ok: true,
                last_bgsave_secs: -1,
                ..SaveState::default()
            }),
            dir,
            dbfilename,
        }
    }

    /// The RDB file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }

    pub fn state(&self) -> SaveState {
        self.state.lock().expect("save state lock").clone()
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        self.dir
            .join(format!("temp-{what}-{}.rdb", std::process::id()))
    }

    /// `SAVE`: the whole keyspace to the file, holding the lock throughout.
    pub fn save(&self, db: &mut Db) -> std::io::Result<Summary> {
        if self.state().running_since.is_some() {
            return Err(std::io::Error::other("Background save already in progress"));
        }
        let temp = self.temp_path("save");
        let written = write_file(&temp, &self.path(), |out| {
            super::Snapshotter::start(db, 0..tidecache_topology::SLOT_COUNT, &[])
                .run_locked(db, out)
        });
        self.record(written, db.now_ms() / 1000, None)
    }

    /// Marks a background save as started, unless one runs.
    pub fn begin_background(&self, schedule: bool) -> Result<(), Busy> {
        let mut s = self.state.lock().expect("save state lock");
        if s.running_since.is_some() {
            if schedule {
                s.scheduled = true;
                return Err(Busy::Scheduled);
            }
            return Err(Busy::Running);
        }
        s.running_since = Some(Instant::now());
        Ok(())
    }

    /// `BGSAVE`'s work, on a thread of its own after
    /// [`Saves::begin_background`]; runs again while `SCHEDULE` asked.
    pub fn run_background(&self, locker: &Locker, now_secs: impl Fn() -> u64) {
        loop {
            let started = Instant::now();
            let temp = self.temp_path("bgsave");
            let written = write_file(&temp, &self.path(), |out| {
                let all: Vec<u16> = (0..tidecache_topology::SLOT_COUNT).collect();
                write_stepwise(locker, all, Vec::new(), out)
            });
            if let Err(e) = &written {
                tracing::warn!(error = %e, path = %self.path().display(), "background save failed");
            }
            let _ = self.record(written, now_secs(), Some(started));
            let mut s = self.state.lock().expect("save state lock");
            if !std::mem::take(&mut s.scheduled) {
                s.running_since = None;
                return;
            }
            s.running_since = Some(Instant::now());
        }
    }

    fn record(
        &self,
        written: std::io::Result<Summary>,
        now_secs: u64,
        background: Option<Instant>,
    ) -> std::io::Result<Summary> {
        let mut s = self.state.lock().expect("save state lock");
        if let Some(started) = background {
            s.last_bgsave_ok = written.is_ok();
            s.last_bgsave_secs = started.elapsed().as_secs() as i64;
        }
        match &written {
            Ok(summary) => {
                s.last_save = now_secs;
                s.saves += 1;
                s.last = Some(summary.clone());
                s.last_error = None;
            }
            Err(e) => s.last_error = Some(e.to_string()),
        }
        written
    }
}

/// Writes `temp` through `write`, syncs it and renames it to `path`; the
/// temporary file goes on failure.
fn write_file(
    temp: &Path,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<Summary>,
) -> std::io::Result<Summary> {
    let result = (|| {
        let file = IncrementalSync {
            file: File::create(temp)?,
            unsynced: 0,
        };
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let summary = write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?.file;
        file.sync_all()?;
        std::fs::rename(temp, path)?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    result
}

/// Syncs the file every [`SYNC_EVERY`] bytes as it is written (Redis's
/// `rdb-save-incremental-fsync`): the disk writes while the next chunks
/// are serialized, instead of all of it in one sync at the end, and the
/// page cache holds little unsynced data at a time.
struct IncrementalSync {
    file: File,
    unsynced: usize,
}

const SYNC_EVERY: usize = 32 << 20;

impl Write for IncrementalSync {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(b)?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
