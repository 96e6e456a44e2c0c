//! A minimal `log` backend for the examples: one line per record on stderr.
//!
//! The level comes from `BERTH_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default
//! `info`). Applications bring their own logger; berth only uses the `log` facade.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                Level::Error => "ERROR",
                Level::Warn => "WARN ",
                Level::Info => "INFO ",
                Level::Debug => "DEBUG",
                Level::Trace => "TRACE",
            };
            eprintln!("{level} {}: {}", record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Install the logger; call once at start.
pub fn init() {
    let level = match std::env::var("BERTH_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("off") => LevelFilter::Off,
        _ => LevelFilter::Info,
    };
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
}
