//! What the bench clients read of a process from /proc (shared by the examples that measure one).
use anyhow::{Context, Result};

/// utime + stime of a process (`self` or a pid), in seconds.
pub fn cpu_s(pid: &str, clk_tck: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok((f[11].parse::<f64>()? + f[12].parse::<f64>()?) / clk_tck)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: &str) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// One KiB figure of /proc/PID/status (`VmRSS`, `RssAnon`: the heap and stacks, `RssFile`: mapped
/// files such as the binary and its libraries).
pub fn status_kib(pid: &str, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .with_context(|| field.to_string())?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| field.to_string())?
        .parse()?)
}
