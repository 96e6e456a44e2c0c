//! The echo bench's rules, apart from its processes: which round counts as a sample, and which
//! round a row of the table reports.
//!
//! - A round is a sample only if the load generator exited with success, reported zero errors
//!   (every echo is checked byte for byte, every HTTP answer for its status), and produced the
//!   scenario's primary figure: a positive rate, or (for memory) a per-connection figure. Any
//!   other round is a failed sample: the bench leaves it out of the medians and fails the run.
//! - A row reports one whole round, the one whose primary figure is the median, so that the
//!   rate, the CPU times and the client cost beside it were measured together.
//!
//! No I/O and no processes here, so the rules can be tested: `sample_tests.rs` beside this file
//! is the `echo_bench_sample` test target (`Cargo.toml`), which `cargo test` runs. (Tests in a
//! `#[cfg(test)]` module here would not run: a bench with `harness = false` is built with
//! `cfg(test)` but without the test harness.)

use serde_json::Value;

/// The figure a scenario compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Operations per second (`ops_per_s`).
    Rate,
    /// Server memory per idle connection (`server_rss_bytes_per_conn`).
    Memory,
}

/// What one round measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// The primary figure: operations per second, or bytes per connection.
    pub value: f64,
    pub per_server_cpu: f64,
    pub per_client_cpu: f64,
    pub server_cpu: f64,
    pub client_cpu: f64,
}

/// One round's sample, from the load generator's JSON report and its exit code (`None`: it was
/// killed by a signal).
///
/// # Errors
///
/// Why the round is not a sample: errors reported (with their kinds), a failed exit, or no
/// primary figure.
pub fn sample_from_report(
    report: &Value,
    exit_code: Option<i32>,
    metric: Metric,
) -> Result<Sample, String> {
    let errors = &report["errors"];
    let Some(total) = errors["total"].as_u64() else {
        return Err("the load generator's report has no error count".into());
    };
    if total > 0 {
        let kinds: Vec<String> = errors
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(kind, n)| *kind != "total" && n.as_u64().is_some_and(|n| n > 0))
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        return Err(format!(
            "the load generator reported {total} errors ({})",
            kinds.join(", ")
        ));
    }
    match exit_code {
        Some(0) => {}
        Some(code) => {
            return Err(format!(
                "the load generator exited with code {code} but reported no errors"
            ))
        }
        None => return Err("the load generator was killed by a signal".into()),
    }
    let number = |key: &str| report[key].as_f64().filter(|v| v.is_finite());
    let value = match metric {
        Metric::Rate => match number("ops_per_s") {
            Some(rate) if rate > 0.0 => rate,
            _ => return Err("no operation completed in the measured window".into()),
        },
        Metric::Memory => number("server_rss_bytes_per_conn")
            .ok_or("no memory figure (no connection held open, or no server RSS read)")?,
    };
    Ok(Sample {
        value,
        per_server_cpu: number("ops_per_server_cpu_s").unwrap_or(0.0),
        per_client_cpu: number("ops_per_client_cpu_s").unwrap_or(0.0),
        server_cpu: number("server_cpu_s").unwrap_or(0.0),
        client_cpu: number("client_cpu_s").unwrap_or(0.0),
    })
}

/// The index of the round a row reports: the one whose primary figure (`value`) is the median.
/// With an even count, the upper of the two middle ones; among equal figures, the earlier
/// round. `None` when there is no sample.
pub fn median_round(samples: &[Sample]) -> Option<usize> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    // A stable sort: equal figures keep their round order.
    order.sort_by(|&a, &b| samples[a].value.total_cmp(&samples[b].value));
    order.get(samples.len() / 2).copied()
}
