//! Unit tests of the echo bench's rules (`sample.rs`): the `echo_bench_sample` test target in
//! `Cargo.toml`, which `cargo test` runs.

#[path = "sample.rs"]
mod sample;

use sample::{median_round, sample_from_report, Metric, Sample};
use serde_json::{json, Value};

fn sample(value: f64, server_cpu: f64) -> Sample {
    Sample {
        value,
        per_server_cpu: value / server_cpu,
        server_cpu,
        ..Sample::default()
    }
}

fn clean_report() -> Value {
    json!({
        "ops_per_s": 1000.0,
        "ops_per_server_cpu_s": 1250.0,
        "ops_per_client_cpu_s": 1100.0,
        "server_cpu_s": 4.0,
        "client_cpu_s": 4.5,
        "server_rss_bytes_per_conn": null,
        "errors": { "total": 0, "connect": 0, "mismatch": 0, "timeout": 0 },
    })
}

#[test]
fn median_round_reports_one_whole_round() {
    // Per-field medians would take the rate of round 1 (2000) and the server CPU of round
    // 0 (4.5 s): a row no round measured.
    let samples = [
        sample(1000.0, 4.5),
        sample(2000.0, 4.9),
        sample(3000.0, 4.0),
    ];
    let i = median_round(&samples).unwrap();
    assert_eq!(i, 1);
    assert_eq!(samples[i].server_cpu, 4.9);
    assert_eq!(samples[i].per_server_cpu, 2000.0 / 4.9);
}

#[test]
fn median_round_orders_by_the_primary_figure_not_by_round() {
    let samples = [
        sample(3000.0, 1.0),
        sample(1000.0, 2.0),
        sample(2000.0, 3.0),
    ];
    assert_eq!(median_round(&samples), Some(2));
    let samples = [sample(5.0, 1.0), sample(9.0, 1.0), sample(1.0, 1.0)];
    assert_eq!(median_round(&samples), Some(0));
}

#[test]
fn median_round_of_even_count_is_the_upper_middle() {
    let samples = [
        sample(40.0, 1.0),
        sample(10.0, 1.0),
        sample(30.0, 1.0),
        sample(20.0, 1.0),
    ];
    assert_eq!(median_round(&samples), Some(2));
    assert_eq!(median_round(&samples[..2]), Some(0));
}

#[test]
fn median_round_of_equal_figures_keeps_round_order() {
    let samples = [sample(7.0, 1.0), sample(7.0, 2.0), sample(7.0, 3.0)];
    assert_eq!(median_round(&samples), Some(1));
}

#[test]
fn median_round_of_one_and_of_none() {
    assert_eq!(median_round(&[sample(1.0, 1.0)]), Some(0));
    assert_eq!(median_round(&[]), None);
}

#[test]
fn clean_report_is_a_sample() {
    let s = sample_from_report(&clean_report(), Some(0), Metric::Rate).unwrap();
    assert_eq!(
        s,
        Sample {
            value: 1000.0,
            per_server_cpu: 1250.0,
            per_client_cpu: 1100.0,
            server_cpu: 4.0,
            client_cpu: 4.5,
        }
    );
}

#[test]
fn report_with_errors_is_not_a_sample() {
    let mut report = clean_report();
    report["errors"]["total"] = json!(3);
    report["errors"]["mismatch"] = json!(2);
    report["errors"]["timeout"] = json!(1);
    // The load generator exits with 2 when it counted errors; the errors are the reason.
    let err = sample_from_report(&report, Some(2), Metric::Rate).unwrap_err();
    assert_eq!(
        err,
        "the load generator reported 3 errors (mismatch 2, timeout 1)"
    );
    // Even with a clean exit code, and whatever the rate.
    assert!(sample_from_report(&report, Some(0), Metric::Rate).is_err());
}

#[test]
fn report_without_error_count_is_not_a_sample() {
    let mut report = clean_report();
    report["errors"] = json!(null);
    assert!(sample_from_report(&report, Some(0), Metric::Rate).is_err());
    assert!(sample_from_report(&json!({}), Some(0), Metric::Rate).is_err());
}

#[test]
fn failed_exit_is_not_a_sample() {
    let err = sample_from_report(&clean_report(), Some(1), Metric::Rate).unwrap_err();
    assert!(err.contains("code 1"), "{err}");
    assert!(sample_from_report(&clean_report(), None, Metric::Rate).is_err());
}

#[test]
fn rate_of_zero_is_not_a_sample() {
    let mut report = clean_report();
    report["ops_per_s"] = json!(0.0);
    assert!(sample_from_report(&report, Some(0), Metric::Rate).is_err());
    report["ops_per_s"] = json!(null);
    assert!(sample_from_report(&report, Some(0), Metric::Rate).is_err());
}

#[test]
fn memory_needs_its_figure() {
    let mut report = clean_report();
    assert!(sample_from_report(&report, Some(0), Metric::Memory).is_err());
    // A server may free memory while the connections open: a negative figure is a figure.
    report["server_rss_bytes_per_conn"] = json!(-12.5);
    let s = sample_from_report(&report, Some(0), Metric::Memory).unwrap();
    assert_eq!(s.value, -12.5);
}
