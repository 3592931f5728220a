//! The process's allocator, and handing the memory it frees back to the system.
//!
//! mimalloc rather than glibc's malloc: with a query's short-lived buffers freed on other
//! threads than the shards', glibc's per-thread arenas kept them as resident memory
//! (`bench/RESULTS.md`, issue 19). Built without transparent huge pages (the `no_thp`
//! feature): partly used 2 MiB pages per thread more than doubled an idle server's RSS.
//!
//! mimalloc returns freed memory to the system only when a delay has passed since the last
//! free, checked when a thread allocates. Under a steady trickle of frees (scrapes, housekeeping)
//! that delay kept being extended, and on an idle server nothing checked it: after a range query
//! of 140 MB of JSON, RSS stayed at 565–590 MiB with no traffic. A thread of its own purges what
//! is free every [`PURGE_EVERY`] instead: 34 MiB ten seconds later. Under 100,000 samples a
//! second and two dashboard queries a second, its CPU cost was within the noise (three runs
//! each way), and RSS under that load fell from 226–247 MiB to 155–209 MiB. Once a second cost
//! up to a tenth more CPU under queries, which fault the purged pages back in.

use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often freed memory goes back to the system.
const PURGE_EVERY: Duration = Duration::from_secs(10);

extern "C" {
    /// mimalloc's `mi_thread_init`: sets up the calling thread's heap (idempotent).
    fn mi_thread_init();
    /// mimalloc's `mi_collect`: frees what the calling thread's heap no longer uses and, with
    /// `force`, purges every arena's free memory now rather than when its delay expires. It
    /// returns at once on a thread whose heap was never set up.
    fn mi_collect(force: bool);
}

/// Hands every arena's free memory back to the system now, from any thread.
fn purge() {
    // SAFETY: both may be called from any thread at any time: the first sets up this thread's
    // heap (without which the second does nothing), the second collects that heap and takes a
    // guard of its own to purge the shared arenas.
    unsafe {
        mi_thread_init();
        mi_collect(true);
    }
}

/// Starts the thread that purges freed memory every [`PURGE_EVERY`].
pub fn start_purging() -> std::io::Result<()> {
    crate::threads::named("allocator-purge").spawn(|| loop {
        std::thread::sleep(PURGE_EVERY);
        purge();
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Resident bytes of this process.
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
        // SAFETY: sysconf has no preconditions.
        pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
    }

    /// Memory a thread frees is given back by a purge from a thread that allocated nothing.
    /// Tried three times: the process's other tests allocate beside it.
    #[test]
    fn a_purge_from_a_fresh_thread_gives_freed_memory_back() {
        const SIZE: usize = 256 << 20;
        let attempt = || {
            let full = std::thread::spawn(|| {
                let touched = vec![1u8; SIZE];
                let full = resident();
                drop(std::hint::black_box(touched));
                full
            })
            .join()
            .unwrap();
            std::thread::spawn(super::purge).join().unwrap();
            (full, resident())
        };
        let tries: Vec<(usize, usize)> = (0..3).map(|_| attempt()).collect();
        let given_back = |&(full, after): &(usize, usize)| after + SIZE / 2 < full;
        assert!(tries.iter().any(given_back), "resident with the buffer, then after the purge: {tries:?}");
    }
}
