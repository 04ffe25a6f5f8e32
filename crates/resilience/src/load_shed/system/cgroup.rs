//! [`SysinfoSource`]: host CPU and memory through `sysinfo`, or the container's cgroup v2
//! limits when there are any. The parsing is plain functions of the files' text, tested on
//! sample strings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sysinfo::{MemoryRefreshKind, System};
use tokio::time::Instant;

use super::{SystemMetricsSource, SystemSample};

/// The default [`SystemMetricsSource`].
///
/// * **Memory**: with a cgroup v2 limit (`/sys/fs/cgroup/memory.max` holds a number),
///   `memory.current / memory.max`; otherwise the host's used over total memory (as psutil's
///   `virtual_memory().percent`, which aioresilience uses).
/// * **CPU**: with a cgroup v2 quota (`cpu.max` holds `"quota period"`), the growth of
///   `usage_usec` in `cpu.stat` over the time since the previous sample, divided by the cores
///   the quota grants; otherwise the host's CPU use from `sysinfo`, averaged over all cores.
///   Either way the first reading covers the time since the source was created.
pub struct SysinfoSource {
    system: System,
    cgroup: PathBuf,
    previous_usage: Option<(Instant, u64)>,
}

impl SysinfoSource {
    /// Reads `/sys/fs/cgroup` (the cgroup v2 mount point inside a container) and `sysinfo`.
    pub fn new() -> Self {
        Self::with_cgroup_root("/sys/fs/cgroup")
    }

    /// Reads the cgroup v2 files under `root` instead.
    pub fn with_cgroup_root(root: impl Into<PathBuf>) -> Self {
        let mut system = System::new();
        // CPU use is a difference between two refreshes: take the baseline now.
        system.refresh_cpu_usage();
        let mut source = Self {
            system,
            cgroup: root.into(),
            previous_usage: None,
        };
        source.previous_usage = source.cgroup_usage().map(|usage| (Instant::now(), usage));
        source
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.cgroup.join(file)).ok()
    }

    fn cgroup_usage(&self) -> Option<u64> {
        parse_usage_usec(&self.read("cpu.stat")?)
    }

    fn memory(&mut self) -> f64 {
        let limited = self
            .read("memory.max")
            .and_then(|max| parse_limit(&max))
            .zip(
                self.read("memory.current")
                    .and_then(|now| parse_limit(&now)),
            );
        if let Some((max, current)) = limited {
            return ratio(current as f64, max as f64);
        }
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        ratio(
            self.system.used_memory() as f64,
            self.system.total_memory() as f64,
        )
    }

    fn cpu(&mut self) -> f64 {
        let cores = self.read("cpu.max").and_then(|text| parse_cpu_max(&text));
        if let Some((cores, usage)) = cores.zip(self.cgroup_usage()) {
            let now = Instant::now();
            let previous = self.previous_usage.replace((now, usage));
            if let Some((then, before)) = previous {
                return cpu_ratio(before, usage, now.saturating_duration_since(then), cores);
            }
            return 0.0;
        }
        self.system.refresh_cpu_usage();
        f64::from(self.system.global_cpu_usage()) / 100.0
    }
}

impl Default for SysinfoSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SysinfoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysinfoSource")
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

impl SystemMetricsSource for SysinfoSource {
    fn sample(&mut self) -> SystemSample {
        let cpu = self.cpu();
        let memory = self.memory();
        SystemSample::new(cpu, memory)
    }
}

fn ratio(used: f64, total: f64) -> f64 {
    if total > 0.0 {
        (used / total).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A cgroup v2 byte count or limit (`memory.max`, `memory.current`): `None` for `"max"`
/// (no limit) or anything unreadable.
pub(crate) fn parse_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The cores granted by `cpu.max` (`"quota period"` in microseconds): `None` for `"max ..."`
/// (no quota) or anything unreadable.
pub(crate) fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// `usage_usec` from `cpu.stat`: the CPU time the cgroup used, in microseconds.
pub(crate) fn parse_usage_usec(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(char::is_whitespace)?;
        (key == "usage_usec").then(|| value.trim().parse().ok())?
    })
}

/// CPU use over `elapsed` given the usage counter before and after and the cores granted.
pub(crate) fn cpu_ratio(before_usec: u64, after_usec: u64, elapsed: Duration, cores: f64) -> f64 {
    let used = after_usec.saturating_sub(before_usec) as f64 / 1e6;
    ratio(used, elapsed.as_secs_f64() * cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_parse_and_max_means_unlimited() {
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(ratio(268_435_456.0, 536_870_912.0), 0.5);
    }

    #[test]
    fn cpu_max_gives_the_cores_of_the_quota() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(
            parse_cpu_max("150000"),
            Some(1.5),
            "the period defaults to 100 ms"
        );
        assert_eq!(parse_cpu_max("0 100000"), None);
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn cpu_stat_usage_is_found_among_other_lines() {
        let stat = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
                    nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_usage_usec(stat), Some(1_234_567));
        assert_eq!(parse_usage_usec("user_usec 5\n"), None);
        assert_eq!(parse_usage_usec("usage_usec x\n"), None);
    }

    #[test]
    fn cpu_ratio_is_usage_over_granted_time() {
        // 1.5 s of CPU in 1 s on a 2-core quota: 75 %.
        let second = Duration::from_secs(1);
        assert_eq!(cpu_ratio(1_000_000, 2_500_000, second, 2.0), 0.75);
        assert_eq!(cpu_ratio(0, 5_000_000, second, 1.0), 1.0, "clamped");
        assert_eq!(
            cpu_ratio(10, 5, second, 1.0),
            0.0,
            "a reset counter reads as idle"
        );
        assert_eq!(cpu_ratio(0, 10, Duration::ZERO, 1.0), 0.0);
    }

    #[test]
    fn a_fake_cgroup_directory_is_read() {
        let root = std::env::temp_dir().join(format!("resilience-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("memory.max"), "1000\n").unwrap();
        std::fs::write(root.join("memory.current"), "250\n").unwrap();
        let mut source = SysinfoSource::with_cgroup_root(&root);
        let sample = source.sample();
        assert_eq!(sample.memory, 0.25);
        assert!((0.0..=1.0).contains(&sample.cpu));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
