//! `Stats`: the figures a server keeps about itself for the inventory
//! (`inventory.rs`) — when it was born, whether it has started, whether a
//! handler runs and since when, how many requests it served and how many
//! times it restarted. A field of `Control`, written by `observe.rs`.
//!
//! With the `inventory` feature, a few atomics; without it, a zero-sized
//! value whose methods are empty, so `Control` and the serve path are what
//! they would be without this module.

#[cfg(feature = "observer")]
pub(crate) use on::LATENCY_BUCKETS;
#[cfg(feature = "inventory")]
pub(crate) use on::{Serving, Stats};

#[cfg(not(feature = "inventory"))]
pub(crate) use off::{Serving, Stats};

#[cfg(feature = "inventory")]
mod on {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use crate::id::ServerId;

    pub(crate) use super::serving::Serving;

    /// Nanoseconds are counted from this instant, so that "serving since"
    /// fits one atomic.
    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    fn nanos_since_epoch(at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
    }

    /// A server's own figures, read by the inventory at any time.
    pub(crate) struct Stats {
        born: Instant,
        /// `#[on_start]` has returned for the current state.
        started: AtomicBool,
        /// Replicas inside a handler now.
        busy: AtomicU32,
        /// When the latest handler began, in nanoseconds since `epoch()`.
        since: AtomicU64,
        served: AtomicU64,
        restarts: AtomicU64,
        /// Calls to this server refused because they would have waited in
        /// a cycle (a self-call or a deadlock), and the caller of the last.
        cycles: AtomicU64,
        cycle_from: AtomicU64,
        /// The supervisor the server was started under, if any: set once,
        /// by the supervisor that starts it.
        supervisor: OnceLock<ServerId>,
        /// How long handlers ran, for the observer's percentiles.
        #[cfg(feature = "observer")]
        latency: Latency,
    }

    /// Handlers' run times, counted in power-of-two buckets of
    /// microseconds: bucket `i` holds runs shorter than `2^i` µs (the last,
    /// every longer one).
    #[cfg(feature = "observer")]
    #[derive(Default)]
    pub(crate) struct Latency([AtomicU64; LATENCY_BUCKETS]);

    /// Up to 2^31 µs (36 minutes), then one bucket for longer runs.
    #[cfg(feature = "observer")]
    pub(crate) const LATENCY_BUCKETS: usize = 32;

    #[cfg(feature = "observer")]
    impl Latency {
        fn record(&self, run: Duration) {
            let micros = u64::try_from(run.as_micros()).unwrap_or(u64::MAX);
            let bucket = (64 - micros.leading_zeros() as usize).min(LATENCY_BUCKETS - 1);
            self.0[bucket].fetch_add(1, Ordering::Relaxed);
        }

        /// The counts so far, bucket by bucket.
        pub(crate) fn read(&self) -> [u64; LATENCY_BUCKETS] {
            std::array::from_fn(|bucket| self.0[bucket].load(Ordering::Relaxed))
        }
    }

    impl Stats {
        pub(crate) fn new() -> Self {
            epoch();
            Stats {
                born: Instant::now(),
                started: AtomicBool::new(false),
                busy: AtomicU32::new(0),
                since: AtomicU64::new(0),
                served: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                cycles: AtomicU64::new(0),
                cycle_from: AtomicU64::new(0),
                supervisor: OnceLock::new(),
                #[cfg(feature = "observer")]
                latency: Latency::default(),
            }
        }
    }

    /// A server's figures at one moment.
    pub(crate) struct Read {
        pub(crate) uptime: Duration,
        pub(crate) started: bool,
        /// When the latest handler began, if one runs.
        pub(crate) serving_since: Option<Instant>,
        pub(crate) served: u64,
        pub(crate) restarts: u64,
        pub(crate) cycles: u64,
        pub(crate) cycle_from: Option<ServerId>,
        pub(crate) supervisor: Option<ServerId>,
    }

    impl Stats {
        /// A handler begins `now`.
        #[inline]
        pub(crate) fn serving(&self, now: Instant) {
            self.since.store(nanos_since_epoch(now), Ordering::Relaxed);
            self.busy.fetch_add(1, Ordering::Release);
        }

        /// The handler that [`serving`](Self::serving) announced has
        /// returned (or panicked).
        #[inline]
        fn served(&self) {
            self.served.fetch_add(1, Ordering::Relaxed);
            self.busy.fetch_sub(1, Ordering::Release);
        }

        /// `#[on_start]` has returned: the server serves.
        pub(crate) fn started(&self) {
            self.started.store(true, Ordering::Release);
        }

        /// The state is replaced by a fresh one, which starts again.
        pub(crate) fn restarting(&self) {
            self.started.store(false, Ordering::Release);
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }

        /// A call to this server from server `from`'s code was refused: it
        /// would have waited in a cycle.
        pub(crate) fn refused_cycle(&self, from: ServerId) {
            self.cycle_from.store(from.get(), Ordering::Relaxed);
            self.cycles.fetch_add(1, Ordering::Relaxed);
        }

        /// The server runs under supervisor `id` (the first call wins).
        pub(crate) fn supervised_by(&self, id: ServerId) {
            let _ = self.supervisor.set(id);
        }

        /// One request, as its server's figures count it.
        #[inline]
        pub(crate) fn request(&self) -> Serving<'_> {
            Serving {
                stats: self,
                began: None,
            }
        }

        /// How long handlers ran.
        #[cfg(feature = "observer")]
        pub(crate) fn latency(&self) -> &Latency {
            &self.latency
        }

        /// A handler that began at `began` has ended.
        #[inline]
        #[cfg_attr(not(feature = "observer"), allow(unused_variables))]
        pub(super) fn ended(&self, began: Instant) {
            #[cfg(feature = "observer")]
            self.latency.record(began.elapsed());
            self.served();
        }

        pub(crate) fn read(&self) -> Read {
            let busy = self.busy.load(Ordering::Acquire) > 0;
            let since = self.since.load(Ordering::Relaxed);
            Read {
                uptime: self.born.elapsed(),
                started: self.started.load(Ordering::Acquire),
                serving_since: busy.then(|| epoch() + Duration::from_nanos(since)),
                served: self.served.load(Ordering::Relaxed),
                restarts: self.restarts.load(Ordering::Relaxed),
                cycles: self.cycles.load(Ordering::Relaxed),
                cycle_from: ServerId::from_u64(self.cycle_from.load(Ordering::Relaxed)),
                supervisor: self.supervisor.get().copied(),
            }
        }
    }
}

#[cfg(feature = "inventory")]
mod serving {
    use std::time::Instant;

    use super::on::Stats;

    /// One request, as its server's figures count it: counted served only
    /// if its handler began.
    pub(crate) struct Serving<'a> {
        pub(super) stats: &'a Stats,
        /// When its handler began.
        pub(super) began: Option<Instant>,
    }

    impl Serving<'_> {
        /// The handler begins.
        #[inline]
        pub(crate) fn start(&mut self) {
            let now = Instant::now();
            self.began = Some(now);
            self.stats.serving(now);
        }

        /// The request has ended.
        #[inline]
        pub(crate) fn finish(self) {
            if let Some(began) = self.began {
                self.stats.ended(began);
            }
        }
    }
}

#[cfg(not(feature = "inventory"))]
mod off {
    use std::marker::PhantomData;

    /// Nothing: servers keep no figures without the `inventory` feature.
    pub(crate) struct Stats;

    /// Nothing: requests are not counted without the `inventory` feature.
    pub(crate) struct Serving<'a>(PhantomData<&'a Stats>);

    impl Serving<'_> {
        #[inline(always)]
        pub(crate) fn start(&mut self) {}

        #[inline(always)]
        pub(crate) fn finish(self) {}
    }

    impl Stats {
        #[inline(always)]
        pub(crate) fn request(&self) -> Serving<'_> {
            Serving(PhantomData)
        }

        #[inline(always)]
        pub(crate) fn new() -> Self {
            Stats
        }

        #[inline(always)]
        pub(crate) fn started(&self) {}

        #[inline(always)]
        pub(crate) fn restarting(&self) {}

        #[inline(always)]
        pub(crate) fn refused_cycle(&self, _: crate::id::ServerId) {}

        #[inline(always)]
        pub(crate) fn supervised_by(&self, _: crate::id::ServerId) {}
    }
}
