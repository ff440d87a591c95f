//! Test builds: each call goes to turmoil's simulated disk when it runs on
//! a simulated host, and to std's otherwise.

use std::cell::Cell;
use std::io::{self, Write};
use std::path::Path;

use turmoil::fs::shim::std::fs as simulated;

fn in_simulation() -> bool {
    turmoil::in_simulation()
}

/// Which paths a lying disk lies about.
pub type LiesAbout = fn(&Path) -> bool;

thread_local! {
    /// The broken disk of the simulation's self-test: syncs of the chosen
    /// files (and directories) return at once and make nothing durable, so
    /// the stores acknowledge before fsync.
    static SYNCS_LIE: Cell<Option<LiesAbout>> = const { Cell::new(None) };
}

/// Makes simulated syncs of the paths `lies_about` picks lie, on this
/// thread; `None` makes them work again.
pub fn set_syncs_lie(lies_about: Option<LiesAbout>) {
    SYNCS_LIE.with(|cell| cell.set(lies_about));
}

fn syncs_lie(path: Option<&Path>) -> bool {
    match (SYNCS_LIE.with(Cell::get), path) {
        (Some(lies_about), Some(path)) => lies_about(path),
        _ => false,
    }
}

/// A file on std's disk or on the simulated one.
#[derive(Debug)]
pub enum File {
    Std(std::fs::File),
    Simulated(simulated::File),
}

impl File {
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            Self::Std(file) => file.set_len(len),
            Self::Simulated(file) => file.set_len(len),
        }
    }

    pub fn sync_data(&self) -> io::Result<()> {
        match self {
            Self::Std(file) => file.sync_data(),
            Self::Simulated(file) if syncs_lie(file.path().as_deref()) => Ok(()),
            Self::Simulated(file) => file.sync_data(),
        }
    }

    pub fn sync_all(&self) -> io::Result<()> {
        match self {
            Self::Std(file) => file.sync_all(),
            Self::Simulated(file) if syncs_lie(file.path().as_deref()) => Ok(()),
            Self::Simulated(file) => file.sync_all(),
        }
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Std(file) => file.write(buf),
            Self::Simulated(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Std(file) => file.flush(),
            Self::Simulated(file) => file.flush(),
        }
    }
}

/// `std::fs::OpenOptions` for either disk; the flags are kept and applied
/// to the disk in use at `open`.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
}

impl OpenOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }

    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }

    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }

    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }

    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        if in_simulation() {
            simulated::OpenOptions::new()
                .write(self.write)
                .append(self.append)
                .truncate(self.truncate)
                .create(self.create)
                .open(path)
                .map(File::Simulated)
        } else {
            std::fs::OpenOptions::new()
                .write(self.write)
                .append(self.append)
                .truncate(self.truncate)
                .create(self.create)
                .open(path)
                .map(File::Std)
        }
    }
}

pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    if in_simulation() {
        simulated::read(path)
    } else {
        std::fs::read(path)
    }
}

pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    if in_simulation() {
        simulated::rename(from, to)
    } else {
        std::fs::rename(from, to)
    }
}

pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    if in_simulation() {
        simulated::remove_file(path)
    } else {
        std::fs::remove_file(path)
    }
}

pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    if in_simulation() {
        simulated::create_dir_all(path)
    } else {
        std::fs::create_dir_all(path)
    }
}

pub fn exists(path: &Path) -> bool {
    if in_simulation() {
        simulated::exists(path)
    } else {
        path.exists()
    }
}

pub fn sync_dir(path: &Path) -> io::Result<()> {
    if !in_simulation() {
        return std::fs::File::open(path)?.sync_all();
    }
    if syncs_lie(Some(path)) {
        return Ok(());
    }
    simulated::sync_dir(path)
}

/// Blocking work: in place inside a simulation (its disk answers at once,
/// and a thread of its own would escape the simulated host and its
/// deterministic schedule), on tokio's blocking pool otherwise.
pub async fn blocking<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if in_simulation() {
        Ok(work())
    } else {
        tokio::task::spawn_blocking(work).await
    }
}
