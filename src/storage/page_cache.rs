//! Segment reads that may not wait for the disk.
//!
//! Reading a segment is blocking file I/O, so the broker does it off the
//! async workers — which costs a hand-off per fetch even when every byte is
//! already in the page cache, the common case for consumers a little
//! behind the log end. [`cached_only`] runs a read with each `pread`
//! replaced by `preadv2(RWF_NOWAIT)`: the kernel copies what the page cache
//! holds and refuses (`EAGAIN`) where it would have to go to the disk. If
//! any read was refused, the result is thrown away and the caller reads
//! again off the workers; a read that never waits is safe on a worker.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

thread_local! {
    /// `Some(refused)` inside [`cached_only`]: whether a read was refused.
    static CACHED_ONLY: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Runs `read` with segment reads limited to the page cache: `Some` of its
/// result when no read had to wait for the disk, `None` when one would have
/// (its result, errors included, is then meaningless).
pub fn cached_only<T>(read: impl FnOnce() -> T) -> Option<T> {
    let outer = CACHED_ONLY.replace(Some(false));
    let result = read();
    let refused = CACHED_ONLY.replace(outer) == Some(true);
    (!refused).then_some(result)
}

/// Reads up to `buf_len` bytes at `position` into `buf` (which the caller
/// owns and has not initialized), as `pread` does; inside [`cached_only`],
/// from the page cache only (`WouldBlock` where the disk would be needed).
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes.
pub(super) unsafe fn pread(
    file: &File,
    buf: *mut u8,
    buf_len: usize,
    position: u64,
) -> io::Result<usize> {
    let nowait = CACHED_ONLY.get().is_some();
    let iov = libc::iovec {
        iov_base: buf.cast::<libc::c_void>(),
        iov_len: buf_len,
    };
    let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
    // SAFETY: the caller guarantees `buf` is writable for `buf_len` bytes;
    // the descriptor is owned by `file` for the duration of the call.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, position as libc::off_t, flags) };
    if read >= 0 {
        return Ok(read as usize);
    }
    let error = io::Error::last_os_error();
    // EAGAIN: the disk would be needed. EOPNOTSUPP: this file system cannot
    // read without waiting at all (tmpfs before Linux 6.6). Either way the
    // caller reads again, off the workers, without the flag.
    if nowait && matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EOPNOTSUPP)) {
        CACHED_ONLY.set(Some(true));
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Err(error)
}

/// Fills `buf` from `position`, as `read_exact_at` does, through [`pread`].
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], mut position: u64) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable slice of `rest.len()` bytes.
        match unsafe { pread(file, rest.as_mut_ptr(), rest.len(), position) } {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => {
                filled += read;
                position += read as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cached_bytes_are_read_and_reads_outside_keep_blocking() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello page cache").unwrap();
        let mut buf = [0u8; 4];
        // Just written: in the page cache, so the no-wait read succeeds.
        let read = cached_only(|| read_exact_at(&file, &mut buf, 6).map(|()| buf));
        assert_eq!(read.unwrap().unwrap(), *b"page");
        read_exact_at(&file, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"hell");
        assert!(CACHED_ONLY.get().is_none(), "the mode ends with the scope");
    }

    #[test]
    fn a_file_system_without_no_wait_reads_refuses_instead_of_failing() {
        // tmpfs answers RWF_NOWAIT with EOPNOTSUPP: the read must be
        // refused (and then done blocking), not reported as an I/O error.
        let Ok(mut file) = tempfile::tempfile_in("/dev/shm") else {
            return; // no tmpfs here
        };
        file.write_all(b"in memory").unwrap();
        let mut buf = [0u8; 6];
        match cached_only(|| read_exact_at(&file, &mut buf, 3)) {
            None => {}
            Some(read) => read.expect("a no-wait read either works or is refused"),
        }
        read_exact_at(&file, &mut buf, 3).unwrap();
        assert_eq!(&buf, b"memory");
    }

    #[test]
    fn a_refused_read_discards_the_result() {
        let refused = cached_only(|| {
            CACHED_ONLY.set(Some(true));
            42
        });
        assert_eq!(refused, None);
        assert_eq!(cached_only(|| cached_only(|| 7)), Some(Some(7)));
    }
}
