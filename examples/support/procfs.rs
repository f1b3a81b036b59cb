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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS")?.parse()?)
}
