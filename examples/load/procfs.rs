//! What Linux's `/proc` tells about a process: its CPU time, its resident memory, and the
//! open-file limit a run is checked against before it starts.

use crate::args::Args;
use crate::SPARE_FDS;

/// User plus system CPU time of process `pid` ("self" for this one), all threads, in clock
/// ticks of 10 ms.
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after it start
    // with the state (field 3). utime and stime are fields 14 and 15, in clock ticks.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds between two [`cpu_ticks`] readings. The ticks are USER_HZ, which Linux fixes at
/// 100 on every architecture this runs on.
pub(crate) fn cpu_between(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    let (before, after) = before.zip(after)?;
    Some(after.saturating_sub(before) as f64 / 100.0)
}

/// Resident set size of process `pid` in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Refuse a run whose connections would not fit under the open-file limit, rather than fail
/// halfway with EMFILE.
pub(crate) fn check_fd_limit(args: &Args) -> Result<(), String> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<u64>().ok());
    match soft {
        Some(soft) if args.conns as u64 + SPARE_FDS > soft => Err(format!(
            "{} connections need about {} file descriptors, over the limit of {soft}: \
             raise it (ulimit -n) in the shell that starts the load generator",
            args.conns,
            args.conns as u64 + SPARE_FDS
        )),
        _ => Ok(()),
    }
}
