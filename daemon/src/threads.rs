//! Work handed from a shard (or an HTTP handler on one) to a thread of its own, awaited
//! without blocking the shard's runtime: block files, merges of large query results, large
//! HTTP answers.

/// A thread named `name`, with the default stack.
pub fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_string())
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
