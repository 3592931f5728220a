//! The `process_*` family, as Go's process collector exports it for upstream: memory, CPU,
//! file descriptors and start time, read from `/proc/self` and the resource limits each time
//! `/metrics` is scraped. Figures the system does not give are left out, never made up.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub struct ProcessCollector;

/// What `/proc/self/stat` says, in seconds and bytes.
struct Stat {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

fn sysconf(name: libc::c_int) -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as f64)
}

/// The soft limit of `resource`, as a float (no limit: `u64::MAX`, as Go reports it).
fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<f64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur as f64)
}

/// The system's boot time (Unix seconds), from `/proc/stat`.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split_whitespace().collect();
    // Field n of proc(5) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let ticks = sysconf(libc::_SC_CLK_TCK)?;
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_time_seconds: boot_time()? + field(22)? / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * sysconf(libc::_SC_PAGESIZE)?,
    })
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Some(s) = read_stat() {
            let cpu = ConstCounter::new(s.cpu_seconds);
            let help = "Total user and system CPU time spent in seconds.";
            cpu.encode(encoder.encode_descriptor("process_cpu_seconds", help, None, cpu.metric_type())?)?;
            let e = &mut encoder;
            gauge(e, "process_resident_memory_bytes", "Resident memory size in bytes.", s.resident_bytes)?;
            gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes.", s.virtual_bytes)?;
            let help = "Start time of the process since unix epoch in seconds.";
            gauge(e, "process_start_time_seconds", help, s.start_time_seconds)?;
        }
        if let Some(n) = open_fds() {
            gauge(&mut encoder, "process_open_fds", "Number of open file descriptors.", n as f64)?;
        }
        if let Some(max) = soft_limit(libc::RLIMIT_NOFILE) {
            gauge(&mut encoder, "process_max_fds", "Maximum number of open file descriptors.", max)?;
        }
        if let Some(max) = soft_limit(libc::RLIMIT_AS) {
            let help = "Maximum amount of virtual memory available in bytes.";
            gauge(&mut encoder, "process_virtual_memory_max_bytes", help, max)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_cpu_and_a_start_time() {
        let s = read_stat().expect("/proc/self/stat");
        assert!(s.resident_bytes > 1e6 && s.virtual_bytes >= s.resident_bytes);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0);
        assert!(s.cpu_seconds >= 0.0);
        assert!(open_fds().expect("fds") >= 3);
    }
}
