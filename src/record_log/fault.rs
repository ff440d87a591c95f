//! A [`LogFile`] that fails on command, for tests of failure paths.

use crate::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use super::{FileWrapper, LogFile};

/// The failures to inject into the next operations; shared between a test
/// and every file the log opens through [`Faults::wrapper`].
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// The next append writes this many bytes of its buffer, then fails.
    pub tear_next_append_after: Option<usize>,
    /// The next sync fails.
    pub fail_next_sync: bool,
    /// Every cut-back fails.
    pub fail_cut_back: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<FaultPlan>>);

impl Faults {
    pub fn plan(&self) -> std::sync::MutexGuard<'_, FaultPlan> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn wrapper(&self) -> FileWrapper {
        let faults = self.clone();
        Arc::new(move |file| {
            Box::new(FaultyFile {
                file,
                faults: faults.clone(),
            })
        })
    }
}

struct FaultyFile {
    file: File,
    faults: Faults,
}

fn injected() -> io::Error {
    io::Error::other("injected failure")
}

impl LogFile for FaultyFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let tear = self.faults.plan().tear_next_append_after.take();
        match tear {
            Some(n) => {
                self.file.append(&bytes[..n.min(bytes.len())])?;
                Err(injected())
            }
            None => self.file.append(bytes),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.faults.plan().fail_next_sync) {
            return Err(injected());
        }
        self.file.sync()
    }

    fn cut_back(&mut self, len: u64) -> io::Result<()> {
        if self.faults.plan().fail_cut_back {
            return Err(injected());
        }
        self.file.cut_back(len)
    }
}
