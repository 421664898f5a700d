//! What the fuzz targets share: an allocator that refuses oversized
//! allocations, so that an allocation explosion is a reported crash in
//! every build (libFuzzer's own `-malloc_limit_mb` needs a sanitizer's
//! allocator hooks, which `-s none` builds do not have).

use std::alloc::{GlobalAlloc, Layout, System};

/// Largest single allocation a target may make. The dispatch target runs
/// the node with `--proto-max-bulk-len 1mb` and sessions of at most 64
/// short commands, and the decode target feeds at most a few KiB, so no
/// legitimate allocation comes near this: one that does was sized by a
/// client-supplied number.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// The system allocator, refusing any request over [`MAX_ALLOCATION`].
/// A refused request makes Rust call `handle_alloc_error`, which prints
/// "memory allocation of N bytes failed" and aborts: libFuzzer saves the
/// input as a crash.
pub struct Limited;

// The only unsafe code here, and it has to be: a global allocator is an
// `unsafe impl`. Every call defers to `System` with the caller's arguments;
// refusing with null is allowed by the `GlobalAlloc` contract.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
