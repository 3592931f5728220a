//! Work handed from a shard (or an HTTP handler on one) to a thread of its own, awaited
//! without blocking the shard's runtime: block files, merges of large query results, large
//! HTTP answers. And the lower priority of the threads that evaluate queries.

/// A thread named `name`, with the default stack.
pub fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_string())
}

/// How much nicer than the rest of the process the threads that evaluate queries are.
const QUERY_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's priority by [`QUERY_NICENESS`] (to at most nice 19), for the
/// threads that evaluate queries and prepare their answers: when queries keep both cores busy,
/// the shards' threads, which serve every connection's requests (`/-/healthy` too) and take
/// appends and scrapes, still get the CPU at once. Twenty heavy range queries at a time had a
/// probe wait up to 2.7 s behind twenty query threads competing with two shards. Lowering a
/// thread's own priority needs no privilege; if it cannot, the thread runs as before.
pub fn yield_cpu_to_shards() {
    // On Linux a thread's nice value is its own, and nice(2) changes the calling thread's.
    // SAFETY: it only raises this thread's nice value.
    unsafe { libc::nice(QUERY_NICENESS) };
}

/// Runs `work` on the thread `thread` builds and waits for it without blocking the shard; fails
/// only when the thread cannot start or stops without an answer (it panicked).
pub async fn off_shard<T: Send + 'static>(
    thread: std::thread::Builder,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = flume::bounded(1);
    let handle = thread.spawn(move || {
        let _ = tx.send(work());
    })?;
    let name = handle.thread().name().unwrap_or("unnamed").to_string();
    rx.recv_async().await.map_err(|_| std::io::Error::other(format!("the {name} thread stopped without an answer")))
}
