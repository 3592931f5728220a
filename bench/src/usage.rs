//! What a process uses, read from `/proc`: resident memory now and at its peak, and CPU time.

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Resident set size, bytes (`VmRSS`).
    pub rss: u64,
    /// Highest resident set size so far, bytes (`VmHWM`).
    pub peak_rss: u64,
    /// Resident anonymous memory, bytes (`RssAnon`): RSS without file-backed pages such as
    /// memory-mapped chunk files, which the kernel can write out and drop.
    pub anon: u64,
    /// User plus system CPU time, seconds.
    pub cpu_secs: f64,
}

/// Reads `pid`'s usage; None once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, so split after its closing paren):
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Usage { rss: kib("VmRSS:")?, peak_rss: kib("VmHWM:")?, anon: kib("RssAnon:")?, cpu_secs: ticks / hz })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let u = usage(std::process::id()).expect("own usage");
        assert!(u.rss > 0 && u.peak_rss >= u.rss, "{u:?}");
        // Spin until the CPU time (in clock ticks) moves; bounded, in case the machine is busy.
        let spin = std::time::Instant::now();
        while usage(std::process::id()).unwrap().cpu_secs == u.cpu_secs && spin.elapsed().as_secs() < 5 {
            std::hint::black_box(spin.elapsed());
        }
        assert!(usage(std::process::id()).unwrap().cpu_secs > u.cpu_secs, "CPU time grows while spinning");
    }
}
