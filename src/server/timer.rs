//! A hashed timer wheel, one per worker, for connection deadlines.
//!
//! Deadlines are coarse (one tick is [`TICK`]) and lazy: a session records its own deadline
//! and keeps at most one entry in the wheel. When activity pushes the deadline later, the
//! wheel is not touched; the old entry fires early, the session finds its deadline has not
//! come, and arms a new entry. So a busy connection costs one field write per event, and an
//! idle one costs one wheel entry per timeout period. Entries carry the session's key,
//! generation and tick, so an entry for a closed session, or a superseded one, is ignored.

use std::time::{Duration, Instant};

/// The wheel's resolution: a deadline fires within one tick after it passes.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Slots in a worker's wheel (`Config::timer_slots`): 512 ticks of 100 ms span 51.2 s, and a
/// deadline further away than the span fires early and is re-armed.
pub(crate) const DEFAULT_SLOTS: usize = 512;

/// One armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The session's slab key.
    pub(crate) key: u32,
    /// The session's generation, so that a reused key does not inherit the entry.
    pub(crate) gen: u32,
    /// The tick the entry was armed for; the session remembers the tick of its live entry.
    pub(crate) tick: u64,
}

/// The wheel.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    origin: Instant,
    slots: Vec<Vec<Entry>>,
    /// The next tick to expire; every entry is in `current..current + span`.
    current: u64,
    /// `slots.len()`: how many ticks ahead the wheel reaches.
    span: u64,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel of `slots` slots (at least 2) whose tick 0 starts at `origin`.
    pub(crate) fn new(origin: Instant, slots: usize) -> Self {
        let slots = slots.max(2);
        TimerWheel {
            origin,
            // A little room in every slot up front, so that arming allocates nothing in
            // steady state.
            slots: (0..slots).map(|_| Vec::with_capacity(4)).collect(),
            current: 0,
            span: slots as u64,
            len: 0,
        }
    }

    fn tick_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        (since.as_nanos() / TICK.as_nanos()) as u64
    }

    /// The tick [`TimerWheel::arm`] would choose for `at`.
    pub(crate) fn tick_for(&self, at: Instant) -> u64 {
        (self.tick_at(at) + 1).clamp(self.current, self.current + self.span - 1)
    }

    /// Arm a timer for the session `key`/`gen` at `at` (rounded up to the next tick, and no
    /// further than the wheel reaches). Returns the tick, for the session to remember.
    pub(crate) fn arm(&mut self, key: u32, gen: u32, at: Instant) -> u64 {
        let tick = self.tick_for(at);
        if let Some(slot) = self.slots.get_mut((tick % self.span) as usize) {
            slot.push(Entry { key, gen, tick });
            self.len += 1;
        }
        tick
    }

    /// Move every entry whose tick has passed by `now` into `out`.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Entry>) {
        let target = self.tick_at(now);
        // After a long sleep every slot is due; visit each once.
        let last = target.min(self.current + self.span - 1);
        while self.current <= last {
            if let Some(slot) = self.slots.get_mut((self.current % self.span) as usize) {
                self.len -= slot.len();
                out.append(slot);
            }
            self.current += 1;
        }
        self.current = self.current.max(target + 1);
    }

    /// How long the event loop may sleep before the next tick is due, if any entry is armed.
    pub(crate) fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let next = self.origin + TICK * u32::try_from(self.current).unwrap_or(u32::MAX);
        Some(next.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_the_deadline_not_before() {
        let t0 = crate::server::clock::Clock::new().now();
        let mut wheel = TimerWheel::new(t0, DEFAULT_SLOTS);
        let tick = wheel.arm(7, 1, t0 + Duration::from_millis(250));
        let mut out = Vec::new();
        wheel.expire(t0 + Duration::from_millis(200), &mut out);
        assert!(out.is_empty());
        wheel.expire(t0 + Duration::from_millis(400), &mut out);
        assert_eq!(
            out,
            [Entry {
                key: 7,
                gen: 1,
                tick
            }]
        );
        assert_eq!(wheel.timeout(t0), None);
    }

    #[test]
    fn far_deadlines_fire_early_and_a_long_sleep_fires_everything_once() {
        let t0 = crate::server::clock::Clock::new().now();
        let mut wheel = TimerWheel::new(t0, DEFAULT_SLOTS);
        let slots = DEFAULT_SLOTS as u64;
        let at_tick = |tick: u64| t0 + TICK * u32::try_from(tick).unwrap();
        let mut out = Vec::new();

        // A deadline an hour away is armed at the wheel's last tick, 51.1 s ahead: it fires
        // then, long before its deadline (the session re-arms), and not a moment earlier.
        let far = wheel.arm(1, 0, t0 + Duration::from_secs(3600));
        assert_eq!(far, slots - 1);
        wheel.expire(at_tick(slots / 2), &mut out);
        wheel.expire(at_tick(far) - Duration::from_nanos(1), &mut out);
        assert!(out.is_empty(), "fired before the wheel's span: {out:?}");
        assert_eq!(wheel.timeout(at_tick(far - 1)), Some(TICK));
        wheel.expire(at_tick(far), &mut out);
        assert_eq!(
            out,
            [Entry {
                key: 1,
                gen: 0,
                tick: far
            }]
        );
        assert!(at_tick(far) < t0 + Duration::from_secs(3600));
        out.clear();
        assert_eq!(wheel.timeout(at_tick(far)), None);

        // An entry in every slot (the last two share the furthest tick), and one more an hour
        // away; then the loop sleeps for many revolutions of the wheel: each fires once.
        let now = at_tick(slots);
        for i in 0..slots {
            let key = 100 + u32::try_from(i).unwrap();
            wheel.arm(key, 0, now + TICK * u32::try_from(i).unwrap());
        }
        wheel.arm(99, 0, now + Duration::from_secs(3600));
        wheel.expire(t0 + Duration::from_secs(7200), &mut out);
        let mut keys: Vec<u32> = out.iter().map(|e| e.key).collect();
        keys.sort_unstable();
        let expected: Vec<u32> = (99..100 + u32::try_from(slots).unwrap()).collect();
        assert_eq!(keys, expected);
        out.clear();
        wheel.expire(t0 + Duration::from_secs(7300), &mut out);
        assert!(out.is_empty(), "fired twice: {out:?}");
        assert_eq!(wheel.timeout(t0 + Duration::from_secs(7300)), None);

        // A timer armed in the past fires at the next tick.
        wheel.arm(3, 0, t0);
        wheel.expire(t0 + Duration::from_secs(7300), &mut out);
        assert!(out.is_empty());
        wheel.expire(t0 + Duration::from_secs(7300) + TICK, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_short_wheel_reaches_only_its_span() {
        let t0 = crate::server::clock::Clock::new().now();
        let mut wheel = TimerWheel::new(t0, 8);
        // 2 s away, but the wheel reaches 0.7 s: it fires at tick 7.
        assert_eq!(wheel.arm(1, 0, t0 + Duration::from_secs(2)), 7);
        let mut out = Vec::new();
        wheel.expire(t0 + Duration::from_millis(699), &mut out);
        assert!(out.is_empty());
        wheel.expire(t0 + Duration::from_millis(700), &mut out);
        assert_eq!(out.len(), 1);
    }
}
