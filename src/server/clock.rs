//! The runtime's only reading of the clock.
//!
//! Each worker reads the time once per turn of its event loop and hands that `now` to
//! everything it drives, so one turn sees one instant and the sans-I/O core never reads a
//! clock itself (`clippy.toml` disallows `Instant::now` and `SystemTime::now` everywhere else).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A worker's cached view of the time: monotonic for deadlines, wall-clock seconds for `Date`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    now: Instant,
    unix_secs: u64,
}

impl Clock {
    /// Read the clock.
    pub(crate) fn new() -> Self {
        let mut clock = Clock {
            now: read_monotonic(),
            unix_secs: 0,
        };
        clock.update();
        clock
    }

    /// Read the clock again; returns the new monotonic instant.
    pub(crate) fn update(&mut self) -> Instant {
        self.now = read_monotonic();
        self.unix_secs = read_wall_secs();
        self.now
    }

    /// The instant read by the last update.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Seconds since the Unix epoch at the last update (0 if the wall clock is before 1970).
    pub(crate) fn unix_secs(&self) -> u64 {
        self.unix_secs
    }
}

#[allow(clippy::disallowed_methods)] // The one place the monotonic clock is read.
fn read_monotonic() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // The one place the wall clock is read.
fn read_wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
