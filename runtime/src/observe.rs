//! What the serve path reports, and to whom: the one place the serve loop,
//! the caller-served path and the builder call to be seen. Beneath it,
//! `trace` (the `tracing` feature), the server's `Stats` with the
//! `inventory` table (the `inventory` feature) and its `Meters` (the
//! `metrics` feature).
//!
//! Each part is zero-sized and empty without its feature, so the call sites
//! carry no `cfg`, and with no feature on [`Request`] is what the request's
//! trace alone was before this module.

use std::future::Future;
use std::sync::Arc;

use crate::control::Control;
use crate::error::{PanicMessage, StopReason};
use crate::mailbox::Senders;
use crate::trace;

pub(crate) use crate::trace::Outcome;

use crate::meter::RequestMeter;
use crate::sent::Sent;
use crate::stats::Serving;
use crate::trace::RequestTrace;

/// One request as it is seen: its span, the server's figures, its
/// metrics.
pub(crate) struct Request<'a> {
    trace: RequestTrace,
    serving: Serving<'a>,
    meter: RequestMeter<'a>,
}

impl<'a> Request<'a> {
    /// A request of `message` to server `S`, sent as `sent` (`None` for a
    /// cast).
    #[inline(always)]
    pub(crate) fn new<S>(control: &'a Control, message: &'static str, sent: Option<Sent>) -> Self {
        let (trace, meter) = match sent {
            Some(Sent { trace, meter }) => (Some(trace), Some(meter)),
            None => (None, None),
        };
        Request {
            trace: RequestTrace::new::<S>(control, message, trace),
            serving: control.stats().request(),
            meter: RequestMeter::new(control.meters(), message, meter),
        }
    }

    /// The handler starts now.
    #[inline(always)]
    pub(crate) fn start(&mut self) {
        self.serving.start();
        self.meter.start();
        self.trace.start();
    }

    /// `future` as the request's code.
    #[inline(always)]
    pub(crate) fn instrument<F: Future>(
        &self,
        future: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        self.trace.instrument(future)
    }

    /// The request ended with `outcome`.
    #[inline(always)]
    pub(crate) fn finish(self, outcome: Outcome) {
        self.serving.finish();
        self.meter.finish(outcome);
        self.trace.finish(outcome);
    }
}

/// Server `S` has been built, its tasks are about to be spawned: it is
/// listed in the inventory from now until [`stopped`].
#[inline]
#[allow(clippy::extra_unused_type_parameters)] // used with the feature
pub(crate) fn spawned<S, R: Send + 'static>(control: &Arc<Control>, senders: &Senders<R>) {
    #[cfg(feature = "inventory")]
    crate::inventory::add(
        control,
        std::any::type_name::<S>(),
        Arc::new(senders.depths()),
    );
    #[cfg(feature = "metrics")]
    {
        let depths = senders.depths();
        let label = match control.shared_name() {
            Some(name) => metrics::SharedString::from(name),
            None => metrics::SharedString::from(std::any::type_name::<S>()),
        };
        control
            .meters()
            .spawned(label, Box::new(move || depths.total()));
    }
    #[cfg(not(any(feature = "inventory", feature = "metrics")))]
    let _ = (control, senders);
}

/// `#[on_start]` has returned: the server serves.
#[inline]
pub(crate) fn started<S>(control: &Control) {
    control.stats().started();
    trace::started::<S>(control);
}

/// The server's end is complete but for waking those who wait for it: it
/// leaves the inventory, so that whoever sees it ended no longer finds it
/// listed.
#[inline]
pub(crate) fn stopped<S>(control: &Control) {
    if let Some(reason) = control.reason() {
        trace::stopped::<S>(control, reason);
    }
    control.meters().stopped();
    #[cfg(feature = "inventory")]
    crate::inventory::remove(control);
}

/// A handler panicked.
#[inline]
pub(crate) fn panicked<S>(control: &Control, panic: &PanicMessage) {
    control.meters().panicked();
    trace::panicked::<S>(control, panic);
}

/// A call to `control`'s server from server `from`'s code was refused: it
/// would have waited in a cycle (`SelfCall`, `Deadlock`). Counted for the
/// inventory and the observer page.
#[inline]
pub(crate) fn refused_cycle(control: &Control, from: crate::id::ServerId) {
    control.stats().refused_cycle(from);
}

/// The state is replaced by a fresh one after `reason`.
#[inline]
pub(crate) fn restarting<S>(control: &Control, reason: &StopReason) {
    control.stats().restarting();
    control.meters().restarting();
    trace::restarting::<S>(control, reason);
}

/// The server whose tasks are being spawned on this thread, for their
/// names in tokio-console: set by the builder around its spawns, read where
/// the tasks are spawned (generated code, which knows the server's type but
/// not its name, calls `serve::spawn_send`).
#[cfg(all(tokio_unstable, feature = "tokio-console"))]
mod console {
    use std::cell::RefCell;
    use std::future::Future;

    use crate::control::Control;

    thread_local! {
        static NAMING: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Tasks spawned on this thread until it is dropped are named after
    /// `control`'s server.
    pub(crate) struct Naming(());

    impl Naming {
        pub(crate) fn set<S>(control: &Control) -> Self {
            let server = control.name().map_or_else(
                || {
                    let path = std::any::type_name::<S>();
                    path.rsplit("::").next().unwrap_or(path).to_owned()
                },
                str::to_owned,
            );
            let name = format!("patchboard {server} {}", control.id());
            NAMING.with(|naming| *naming.borrow_mut() = Some(name));
            Naming(())
        }
    }

    impl Drop for Naming {
        fn drop(&mut self) {
            NAMING.with(|naming| naming.borrow_mut().take());
        }
    }

    /// `tokio::spawn`, naming the task after the server being spawned.
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        NAMING.with(|naming| {
            let naming = naming.borrow();
            let builder = tokio::task::Builder::new();
            let builder = match naming.as_deref() {
                Some(name) => builder.name(name),
                None => builder,
            };
            // Never fails today (tokio's docs); a failure would be the
            // runtime's, as `tokio::spawn`'s panic is.
            builder.spawn(task).expect("tokio spawns a task");
        });
    }

    /// `tokio::task::spawn_local`, naming the task likewise.
    pub(crate) fn spawn_local<F: Future<Output = ()> + 'static>(task: F) {
        NAMING.with(|naming| {
            let naming = naming.borrow();
            let builder = tokio::task::Builder::new();
            let builder = match naming.as_deref() {
                Some(name) => builder.name(name),
                None => builder,
            };
            builder.spawn_local(task).expect("tokio spawns a task");
        });
    }
}

#[cfg(all(tokio_unstable, feature = "tokio-console"))]
pub(crate) use console::{Naming, spawn, spawn_local};

/// Nothing: tasks are named only with `tokio_unstable` and the
/// `tokio-console` feature.
#[cfg(not(all(tokio_unstable, feature = "tokio-console")))]
pub(crate) struct Naming(());

#[cfg(not(all(tokio_unstable, feature = "tokio-console")))]
impl Naming {
    #[inline(always)]
    #[allow(clippy::extra_unused_type_parameters)] // the same signature as with the flag
    pub(crate) fn set<S>(_: &Control) -> Self {
        Naming(())
    }
}

/// `tokio::spawn`.
#[cfg(not(all(tokio_unstable, feature = "tokio-console")))]
#[inline(always)]
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
    tokio::spawn(task);
}

/// `tokio::task::spawn_local`.
#[cfg(not(all(tokio_unstable, feature = "tokio-console")))]
#[inline(always)]
pub(crate) fn spawn_local<F: Future<Output = ()> + 'static>(task: F) {
    tokio::task::spawn_local(task);
}
