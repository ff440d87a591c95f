//! The process-wide allocator: mimalloc, with a guard for huge requests.
//!
//! Why the guard: the wire codec sizes a `Vec` from the element count a
//! request claims before it reads the elements, so a 20-byte frame can ask
//! for 70 GB. A refused allocation aborts a Rust process, which would let
//! any client kill the broker. Requests above [`HUGE`] are therefore backed
//! by a lazily committed anonymous mapping (`MAP_NORESERVE`): nothing is
//! touched, the decoder fails at the end of the frame a moment later, and
//! the mapping is returned. Legitimate allocations this large (none occur in
//! normal operation) still work, only without mimalloc's pooling.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;

/// Allocations at or above this size bypass mimalloc.
const HUGE: usize = 1 << 30;

pub struct GuardedAllocator;

// SAFETY: small requests are forwarded to mimalloc unchanged. Huge requests
// are served by `mmap`, which returns page-aligned memory (alignment up to
// the page size is honoured; larger alignments go to mimalloc) and are
// released by `munmap` with the same size; `realloc` moves data between the
// two kinds with a copy of the smaller size.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            map_huge(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(layout) {
            // SAFETY: ptr came from map_huge with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(layout) {
            // Fresh anonymous mappings are already zeroed.
            map_huge(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_huge(layout) && !is_huge(new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        }
        // SAFETY: new_layout has a non-zero size (it is huge or the old one was).
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both regions are valid for the smaller size and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

fn is_huge(layout: Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= 4096
}

fn map_huge(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED and mapped to null.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}
