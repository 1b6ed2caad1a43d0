//! Where lookup structures live in memory: large, randomly read allocations asked to be
//! backed by huge pages, so a probe costs a cache miss but not also a TLB miss.
//! (Only allocations spanning whole 2 MiB pages benefit.)
//!
//! Linux applies transparent huge pages in `madvise` mode (the common default) only to
//! ranges that ask, and only when asked before the pages are first touched.

/// Asks for huge pages over the whole pages inside `len` bytes at `ptr`. Advice only.
#[allow(unsafe_code)] // the one place: madvise over our own allocation
fn advise_huge_pages(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = ptr as usize + len;
        if end > start + PAGE {
            // SAFETY: the range is page-aligned and inside the caller's allocation;
            // MADV_HUGEPAGE changes how pages are backed, never their contents.
            unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    (end - start) / PAGE * PAGE,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// An empty vector with room for `len` values, advised before any page is touched.
pub fn huge_page_vec<T>(len: usize) -> Vec<T> {
    let values: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(values.as_ptr().cast(), len * std::mem::size_of::<T>());
    values
}

/// `len` zeroed values, advised before any page is touched. Large allocations come as
/// fresh zeroed pages, so nothing writes them now: each page is faulted in (as a huge
/// page) by whichever thread first fills it, and zeroing spreads over the fillers.
pub fn huge_page_zeroed<T: Clone + Default>(len: usize) -> Vec<T> {
    let values = vec![T::default(); len];
    advise_huge_pages(values.as_ptr().cast(), len * std::mem::size_of::<T>());
    values
}

/// The memory this process can still allocate, as far as the OS says: Linux's
/// `MemAvailable`, capped by the cgroup's `memory.max` less its current use (a container's
/// limit). `None` where neither can be read.
pub fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) => Some(max.saturating_sub(current)),
        _ => None,
    };
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}
