//! What the runtime tells the `metrics` facade: the one place that knows
//! the `metrics` feature. Without it, the same names are zero-sized and
//! empty, as in `trace`.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `patchboard_calls_total` | counter | `server`, `message`, `outcome` (`ok`, `error`, `panic`, `cancelled`, `closed`) |
//! | `patchboard_queue_wait_seconds` | histogram | `server`, `message` |
//! | `patchboard_run_seconds` | histogram | `server`, `message` |
//! | `patchboard_mailbox_depth` | gauge | `server` |
//! | `patchboard_restarts_total` | counter | `server` |
//! | `patchboard_panics_total` | counter | `server` |
//! | `patchboard_servers` | gauge | `server` |
//!
//! `server` is the server's `Builder::name`, else its type's name;
//! `message` the message method's name. Handles are taken from the
//! recorder once per server and message, at first use, so the recorder
//! must be installed before.

use crate::outcome::Outcome;

#[cfg(feature = "metrics")]
pub(crate) use on::{Meters, RequestMeter, Sent};

#[cfg(not(feature = "metrics"))]
pub(crate) use off::{Meters, RequestMeter, Sent};

#[cfg(feature = "metrics")]
mod on {
    use std::sync::{Arc, Mutex, OnceLock};

    use metrics::{Counter, Gauge, Histogram, SharedString};
    use tokio::time::Instant;

    use super::Outcome;

    /// When a request was sent, for its queue wait.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Sent(Instant);

    impl Sent {
        #[inline]
        pub(crate) fn now() -> Self {
            Sent(Instant::now())
        }
    }

    /// One message's handles.
    struct Message {
        name: &'static str,
        calls: [Counter; 5],
        queue_wait: Histogram,
        run: Histogram,
    }

    /// One server's handles, made when it is spawned.
    struct Server {
        label: SharedString,
        depth: Gauge,
        restarts: Counter,
        panics: Counter,
        running: Gauge,
        /// A way to read the mailbox's depth.
        queued: Box<dyn Fn() -> usize + Send + Sync>,
    }

    /// A server's metrics: nothing until it is spawned (`Control` is made
    /// before its label is known).
    #[derive(Default)]
    pub(crate) struct Meters {
        server: OnceLock<Server>,
        messages: Mutex<Vec<Arc<Message>>>,
    }

    impl Meters {
        pub(crate) fn new() -> Self {
            Meters::default()
        }

        /// The server is spawned as `label`; `queued` reads its mailbox.
        pub(crate) fn spawned(
            &self,
            label: SharedString,
            queued: Box<dyn Fn() -> usize + Send + Sync>,
        ) {
            let server = Server {
                depth: metrics::gauge!("patchboard_mailbox_depth", "server" => label.clone()),
                restarts: metrics::counter!("patchboard_restarts_total", "server" => label.clone()),
                panics: metrics::counter!("patchboard_panics_total", "server" => label.clone()),
                running: metrics::gauge!("patchboard_servers", "server" => label.clone()),
                label,
                queued,
            };
            server.running.increment(1.0);
            let _ = self.server.set(server);
        }

        pub(crate) fn stopped(&self) {
            if let Some(server) = self.server.get() {
                server.running.decrement(1.0);
                server.depth.set(0.0);
            }
        }

        pub(crate) fn restarting(&self) {
            if let Some(server) = self.server.get() {
                server.restarts.increment(1);
            }
        }

        pub(crate) fn panicked(&self) {
            if let Some(server) = self.server.get() {
                server.panics.increment(1);
            }
        }

        /// The handles of `message`, made at its first request.
        fn message(&self, name: &'static str) -> Option<Arc<Message>> {
            let server = self.server.get()?;
            let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = messages.iter().find(|message| message.name == name) {
                return Some(found.clone());
            }
            let label = &server.label;
            let message = Arc::new(Message {
                name,
                calls: Outcome::ALL.map(|outcome| {
                    metrics::counter!(
                        "patchboard_calls_total",
                        "server" => label.clone(),
                        "message" => name,
                        "outcome" => outcome.label(),
                    )
                }),
                queue_wait: metrics::histogram!(
                    "patchboard_queue_wait_seconds",
                    "server" => label.clone(),
                    "message" => name,
                ),
                run: metrics::histogram!(
                    "patchboard_run_seconds",
                    "server" => label.clone(),
                    "message" => name,
                ),
            });
            messages.push(message.clone());
            Some(message)
        }
    }

    /// One request's measures.
    pub(crate) struct RequestMeter<'a> {
        meters: &'a Meters,
        message: Option<Arc<Message>>,
        sent: Instant,
        started: Option<Instant>,
    }

    impl<'a> RequestMeter<'a> {
        pub(crate) fn new(meters: &'a Meters, message: &'static str, sent: Option<Sent>) -> Self {
            RequestMeter {
                meters,
                message: meters.message(message),
                sent: sent.map_or_else(Instant::now, |sent| sent.0),
                started: None,
            }
        }

        /// The handler starts now: the queue wait is over, and the mailbox
        /// is as deep as it is.
        pub(crate) fn start(&mut self) {
            let now = Instant::now();
            if let Some(message) = &self.message {
                message
                    .queue_wait
                    .record(now.saturating_duration_since(self.sent).as_secs_f64());
            }
            if let Some(server) = self.meters.server.get() {
                server.depth.set((server.queued)() as f64);
            }
            self.started = Some(now);
        }

        pub(crate) fn finish(self, outcome: Outcome) {
            let Some(message) = &self.message else {
                return;
            };
            if let Some(started) = self.started {
                message.run.record(started.elapsed().as_secs_f64());
            }
            message.calls[outcome.index()].increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    use std::marker::PhantomData;

    use super::Outcome;

    /// Nothing: no metrics without the `metrics` feature.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Sent;

    impl Sent {
        #[inline(always)]
        pub(crate) fn now() -> Self {
            Sent
        }
    }

    /// Nothing: no metrics without the `metrics` feature.
    pub(crate) struct Meters;

    impl Meters {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Meters
        }

        #[inline(always)]
        pub(crate) fn restarting(&self) {}

        #[inline(always)]
        pub(crate) fn panicked(&self) {}

        #[inline(always)]
        pub(crate) fn stopped(&self) {}
    }

    /// Nothing: no metrics without the `metrics` feature.
    pub(crate) struct RequestMeter<'a>(PhantomData<&'a Meters>);

    impl<'a> RequestMeter<'a> {
        #[inline(always)]
        pub(crate) fn new(_: &'a Meters, _: &'static str, _: Option<Sent>) -> Self {
            RequestMeter(PhantomData)
        }

        #[inline(always)]
        pub(crate) fn start(&mut self) {}

        #[inline(always)]
        pub(crate) fn finish(self, _: Outcome) {}
    }
}
