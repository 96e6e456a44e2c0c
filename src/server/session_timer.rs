//! A session's waits, by name: which one runs, since when, and when it is due.
//!
//! Runtime layer (`server/`), but free of I/O: every method takes the time as an argument, so
//! the table is tested on injected instants. The session sets a timer in the transition that
//! starts its wait and stops it in the one that ends it; [`TimerTable::next`] is the deadline
//! the session arms in the worker's wheel, and [`TimerTable::expired`] names the timer that is
//! due when the wheel fires, so the session never works out again which wait is active.
//!
//! Invariants:
//!
//! - At most one *phase* timer runs ([`Timer::Header`] … [`Timer::Linger`]): they are the
//!   waits of mutually exclusive states of the connection (see `LIFECYCLE.md`), so setting one
//!   replaces the one before. [`Timer::Write`] runs beside them. So the table is one tag
//!   and two instants, smaller than the fields it replaces.
//! - [`Timer::Body`] and [`Timer::Ping`] measure silence: each read restarts them in place
//!   ([`TimerTable::read_at`]: a tag test and one field write). A busy connection thus never touches the
//!   wheel: its entry fires early and is re-armed (`timer.rs`).
//! - Durations come from [`Timeouts`] at the time of asking; a timer whose duration is unset
//!   ([`Timeouts::ping`] `None`) or overflows an `Instant` is never due.

use std::time::{Duration, Instant};

use super::Timeouts;

/// One of a session's waits, named after what it waits for (or what it does when due).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The first request after the accept (and a TLS handshake), or a request head that has
    /// started arriving: [`Timeouts::header`] from then (408, or a close mid-handshake).
    Header,
    /// The rest of a request body: [`Timeouts::body`] of silence (408 if unanswered).
    Body,
    /// The next request after a response: [`Timeouts::keep_alive`] (a silent close once the
    /// output is flushed).
    KeepAlive,
    /// Any frame from an open WebSocket: [`Timeouts::ping`] of silence, then a ping.
    Ping,
    /// Any frame after our ping: [`Timeouts::pong`] (close, reason `Timeout`).
    Pong,
    /// The peer's Close, once ours has reached the socket: [`Timeouts::close`].
    Close,
    /// The peer's EOF after our write side is shut: [`Timeouts::close`].
    Linger,
    /// The socket to take some of the queued output: [`Timeouts::write`] without progress
    /// (close as a slow consumer). Runs beside the phase timer.
    Write,
}

impl Timer {
    /// How long this wait may last, under `t`; `None` never expires.
    fn duration(self, t: &Timeouts) -> Option<Duration> {
        match self {
            Timer::Header => Some(t.header),
            Timer::Body => Some(t.body),
            Timer::KeepAlive => Some(t.keep_alive),
            Timer::Ping => t.ping,
            Timer::Pong => Some(t.pong),
            Timer::Close | Timer::Linger => Some(t.close),
            Timer::Write => Some(t.write),
        }
    }
}

/// The running timers of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimerTable {
    /// The phase timer that runs, if any.
    wait: Option<Timer>,
    /// When `wait` started; for `Body` and `Ping`, the last read since.
    started: Instant,
    /// [`Timer::Write`]: since when output has waited without the socket taking any.
    stalled: Option<Instant>,
}

impl TimerTable {
    /// A new connection's table at `now`: [`Timer::Header`] runs from the accept.
    pub(crate) fn new(now: Instant) -> Self {
        TimerTable {
            wait: Some(Timer::Header),
            started: now,
            stalled: None,
        }
    }

    /// Start `timer` at `now` (again, if it runs). A phase timer replaces the one running.
    pub(crate) fn set(&mut self, timer: Timer, now: Instant) {
        if timer == Timer::Write {
            self.stalled = Some(now);
        } else {
            self.wait = Some(timer);
            self.started = now;
        }
    }

    /// Stop `timer`, if it runs.
    pub(crate) fn stop(&mut self, timer: Timer) {
        if timer == Timer::Write {
            self.stalled = None;
        } else if self.wait == Some(timer) {
            self.wait = None;
        }
    }

    /// Does `timer` run?
    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        if timer == Timer::Write {
            self.stalled.is_some()
        } else {
            self.wait == Some(timer)
        }
    }

    /// Bytes arrived at `now`: [`Timer::Body`] and [`Timer::Ping`] run from here.
    pub(crate) fn read_at(&mut self, now: Instant) {
        if matches!(self.wait, Some(Timer::Body | Timer::Ping)) {
            self.started = now;
        }
    }

    /// When `timer` is due under `t`, if it runs.
    pub(crate) fn deadline(&self, timer: Timer, t: &Timeouts) -> Option<Instant> {
        let from = match timer {
            Timer::Write => self.stalled?,
            _ if self.wait != Some(timer) => return None,
            _ => self.started,
        };
        from.checked_add(timer.duration(t)?)
    }

    /// The earliest deadline of the running timers: what the session arms in the wheel.
    pub(crate) fn next(&self, t: &Timeouts) -> Option<Instant> {
        let phase = self.wait.and_then(|timer| self.deadline(timer, t));
        let write = self.deadline(Timer::Write, t);
        match (phase, write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer due at `now`, if one is: [`Timer::Write`] first (it ends the connection
    /// whatever the phase waits for), else the phase timer. A due timer stays set until the
    /// session stops or replaces it.
    pub(crate) fn expired(&self, now: Instant, t: &Timeouts) -> Option<Timer> {
        let due = |timer| self.deadline(timer, t).is_some_and(|at| now >= at);
        if due(Timer::Write) {
            return Some(Timer::Write);
        }
        self.wait.filter(|&timer| due(timer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            keep_alive: Duration::from_secs(60),
            body: Duration::from_secs(30),
            ping: Some(Duration::from_secs(20)),
            pong: Duration::from_secs(15),
            write: Duration::from_secs(25),
            close: Duration::from_secs(5),
            shutdown: Duration::from_secs(10),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_new_table_times_the_first_request_from_the_accept() {
        let t = timeouts();
        let t0 = crate::server::clock::Clock::new().now();
        let table = TimerTable::new(t0);
        assert!(table.is_set(Timer::Header));
        assert!(!table.is_set(Timer::Write));
        assert_eq!(table.next(&t), Some(t0 + secs(10)));
        assert_eq!(
            table.expired(t0 + secs(10) - Duration::from_nanos(1), &t),
            None
        );
        assert_eq!(table.expired(t0 + secs(10), &t), Some(Timer::Header));
    }

    #[test]
    fn a_phase_timer_replaces_the_one_before_and_stops_only_itself() {
        let t = timeouts();
        let t0 = crate::server::clock::Clock::new().now();
        let mut table = TimerTable::new(t0);
        table.set(Timer::KeepAlive, t0 + secs(1));
        assert!(!table.is_set(Timer::Header));
        assert!(table.is_set(Timer::KeepAlive));
        assert_eq!(table.deadline(Timer::Header, &t), None);
        assert_eq!(table.next(&t), Some(t0 + secs(61)));
        // Stopping a timer that does not run leaves the running one alone.
        table.stop(Timer::Header);
        assert!(table.is_set(Timer::KeepAlive));
        table.stop(Timer::KeepAlive);
        assert_eq!(table.next(&t), None);
        assert_eq!(table.expired(t0 + secs(3600), &t), None);
    }

    #[test]
    fn body_and_ping_run_from_the_last_read() {
        let t = timeouts();
        let t0 = crate::server::clock::Clock::new().now();
        let mut table = TimerTable::new(t0);
        // A read does not move the header wait.
        table.read_at(t0 + secs(2));
        assert_eq!(table.next(&t), Some(t0 + secs(10)));
        table.set(Timer::Body, t0 + secs(2));
        assert_eq!(table.next(&t), Some(t0 + secs(32)));
        table.read_at(t0 + secs(20));
        assert_eq!(table.expired(t0 + secs(32), &t), None);
        assert_eq!(table.expired(t0 + secs(50), &t), Some(Timer::Body));

        table.set(Timer::Ping, t0 + secs(50));
        table.read_at(t0 + secs(55));
        assert_eq!(table.next(&t), Some(t0 + secs(75)));
        // The ping goes out; the pong wait runs from then, whatever is read after.
        table.set(Timer::Pong, t0 + secs(60));
        table.read_at(t0 + secs(70));
        assert_eq!(table.next(&t), Some(t0 + secs(75)));
        assert_eq!(table.expired(t0 + secs(75), &t), Some(Timer::Pong));
    }

    #[test]
    fn a_ping_never_falls_due_without_a_ping_interval() {
        let t = Timeouts {
            ping: None,
            ..timeouts()
        };
        let t0 = crate::server::clock::Clock::new().now();
        let mut table = TimerTable::new(t0);
        table.set(Timer::Ping, t0);
        assert_eq!(table.next(&t), None);
        assert_eq!(table.expired(t0 + secs(1 << 20), &t), None);
    }

    #[test]
    fn the_write_timer_runs_beside_the_phase_timer_and_wins_a_tie() {
        let t = timeouts();
        let t0 = crate::server::clock::Clock::new().now();
        let mut table = TimerTable::new(t0);
        table.set(Timer::Close, t0);
        table.set(Timer::Write, t0 + secs(1));
        assert!(table.is_set(Timer::Close) && table.is_set(Timer::Write));
        assert_eq!(table.next(&t), Some(t0 + secs(5)));
        assert_eq!(table.expired(t0 + secs(5), &t), Some(Timer::Close));
        // Progress on the socket restarts the stall clock in place.
        table.set(Timer::Write, t0 + secs(2));
        table.set(Timer::Linger, t0 + secs(22));
        assert_eq!(table.next(&t), Some(t0 + secs(27)));
        assert_eq!(table.expired(t0 + secs(27), &t), Some(Timer::Write));
        table.stop(Timer::Write);
        assert!(table.is_set(Timer::Linger));
        assert_eq!(table.expired(t0 + secs(27), &t), Some(Timer::Linger));
    }

    #[test]
    fn a_deadline_past_what_an_instant_holds_never_falls_due() {
        let t = Timeouts {
            header: Duration::MAX,
            ..timeouts()
        };
        let t0 = crate::server::clock::Clock::new().now();
        let table = TimerTable::new(t0);
        assert_eq!(table.next(&t), None);
        assert_eq!(table.expired(t0 + secs(1 << 20), &t), None);
    }

    #[test]
    fn the_table_is_no_larger_than_two_instants_and_a_tag() {
        assert!(core::mem::size_of::<TimerTable>() <= 2 * core::mem::size_of::<Instant>() + 8);
    }
}
