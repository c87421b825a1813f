//! Latency percentiles and the result of one measured phase.

use std::time::Duration;

/// The exact `p`-th percentile (0 < p <= 100) of `sorted` by the nearest-rank method: the
/// smallest sample with at least `p`% of the samples at or below it. `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Less a hair, so that float error cannot push an exact rank to the next sample (99.9 /
    // 100 × 1,000 is 999.0000000000001 in f64).
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What one phase (one target, one operation, one concurrency) measured.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub requests: usize,
    /// Requests answered 200 with `isValid` / `success` true.
    pub ok: usize,
    /// Wall time from the first request sent to the last answer read.
    pub wall: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
}

impl PhaseResult {
    pub fn new(
        mut latencies: Vec<Duration>,
        ok: usize,
        wall: Duration,
        failures: Vec<String>,
    ) -> Self {
        latencies.sort_unstable();
        Self {
            requests: latencies.len(),
            ok,
            wall,
            latencies,
            failures,
        }
    }

    /// Phases of the same target, operation and concurrency taken as one: every sample, and
    /// the wall time of each added up.
    pub fn merge(parts: Vec<PhaseResult>) -> Self {
        let mut latencies = Vec::new();
        let (mut ok, mut wall) = (0, Duration::ZERO);
        let mut failures = Vec::new();
        for part in parts {
            latencies.extend(part.latencies);
            ok += part.ok;
            wall += part.wall;
            failures.extend(part.failures);
        }
        failures.truncate(5);
        Self::new(latencies, ok, wall, failures)
    }

    pub fn failed(&self) -> usize {
        self.requests - self.ok
    }

    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 50.0).unwrap_or_default()
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.latencies, 99.0).unwrap_or_default()
    }

    pub fn p999(&self) -> Duration {
        percentile(&self.latencies, 99.9).unwrap_or_default()
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`; `None` when it
/// cannot be read (not Linux, or the process is gone).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_time(&stat)
}

/// `utime + stime` of a `/proc/<pid>/stat` line, whose times are in USER_HZ ticks (100 a second
/// on Linux whatever the kernel's own tick).
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces: count fields after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so fields 14 and 15 (utime, stime) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[u64]) -> Vec<Duration> {
        let mut v: Vec<Duration> = values.iter().map(|&ms| Duration::from_millis(ms)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = samples(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        let thousand = samples(&(1..=1_000).collect::<Vec<_>>());
        assert_eq!(
            percentile(&thousand, 99.9),
            Some(Duration::from_millis(999))
        );
        assert_eq!(percentile(&s, 0.0), Some(Duration::from_millis(1)));
        let small = samples(&[7, 3, 5]);
        assert_eq!(percentile(&small, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&small, 99.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(3_250)));
        assert_eq!(parse_cpu_time("garbage"), None);
    }

    #[test]
    fn a_phase_sorts_and_counts() {
        let result = PhaseResult::new(
            samples(&[9, 1, 5, 3]),
            3,
            Duration::from_secs(2),
            vec!["x".into()],
        );
        assert_eq!(result.requests, 4);
        assert_eq!(result.failed(), 1);
        assert_eq!(result.p50(), Duration::from_millis(3));
        assert_eq!(result.p99(), Duration::from_millis(9));
        assert_eq!(result.p999(), Duration::from_millis(9));
        assert!((result.throughput() - 2.0).abs() < 1e-9);
        let merged = PhaseResult::merge(vec![
            result,
            PhaseResult::new(samples(&[2, 4]), 2, Duration::from_secs(1), vec![]),
        ]);
        assert_eq!(merged.requests, 6);
        assert_eq!(merged.ok, 5);
        assert_eq!(merged.p50(), Duration::from_millis(3));
        assert!((merged.throughput() - 2.0).abs() < 1e-9);
    }
}
