//! What the serve path reports, and to whom: the one place the serve loop,
//! the caller-served path and the builder call to be seen. Beneath it,
//! `trace` (the `tracing` feature) and the server's `Stats` with the
//! `inventory` table (the `inventory` feature).
//!
//! Without the `inventory` feature, [`Request`] is the request's trace
//! alone and the hooks only trace, so the call sites carry no `cfg` and
//! compile to what they were before this module.

use std::sync::Arc;

use crate::control::Control;
use crate::error::{PanicMessage, StopReason};
use crate::mailbox::Senders;
use crate::trace;

pub(crate) use crate::trace::Outcome;

#[cfg(feature = "inventory")]
pub(crate) use on::Request;

#[cfg(not(feature = "inventory"))]
pub(crate) use off::Request;

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
    #[cfg(not(feature = "inventory"))]
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
    #[cfg(feature = "inventory")]
    crate::inventory::remove(control);
}

/// A handler panicked.
#[inline]
pub(crate) fn panicked<S>(control: &Control, panic: &PanicMessage) {
    trace::panicked::<S>(control, panic);
}

/// The state is replaced by a fresh one after `reason`.
#[inline]
pub(crate) fn restarting<S>(control: &Control, reason: &StopReason) {
    control.stats().restarting();
    trace::restarting::<S>(control, reason);
}

#[cfg(feature = "inventory")]
mod on {
    use std::future::Future;

    use crate::control::Control;
    use crate::stats::Stats;
    use crate::trace::{Outcome, RequestTrace, Sent};

    /// One request as it is seen: its trace, and the server's figures.
    pub(crate) struct Request<'a> {
        trace: RequestTrace,
        stats: &'a Stats,
        began: bool,
    }

    impl<'a> Request<'a> {
        /// A request of `message` to server `S`, sent as `sent` (`None`
        /// for a cast).
        #[inline]
        pub(crate) fn new<S>(
            control: &'a Control,
            message: &'static str,
            sent: Option<Sent>,
        ) -> Self {
            Request {
                trace: RequestTrace::new::<S>(control, message, sent),
                stats: control.stats(),
                began: false,
            }
        }

        /// The handler starts now.
        #[inline]
        pub(crate) fn start(&mut self) {
            self.began = true;
            self.stats.serving();
            self.trace.start();
        }

        /// `future` as the request's code.
        #[inline]
        pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
            self.trace.instrument(future)
        }

        /// The request ended with `outcome`.
        #[inline]
        pub(crate) fn finish(self, outcome: Outcome) {
            if self.began {
                self.stats.served();
            }
            self.trace.finish(outcome);
        }
    }
}

#[cfg(not(feature = "inventory"))]
mod off {
    use std::future::Future;
    use std::marker::PhantomData;

    use crate::control::Control;
    use crate::trace::{Outcome, RequestTrace, Sent};

    /// One request as it is seen: its trace alone.
    pub(crate) struct Request<'a>(RequestTrace, PhantomData<&'a Control>);

    impl<'a> Request<'a> {
        #[inline(always)]
        pub(crate) fn new<S>(
            control: &'a Control,
            message: &'static str,
            sent: Option<Sent>,
        ) -> Self {
            Request(RequestTrace::new::<S>(control, message, sent), PhantomData)
        }

        #[inline(always)]
        pub(crate) fn start(&mut self) {
            self.0.start();
        }

        #[inline(always)]
        pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
            self.0.instrument(future)
        }

        #[inline(always)]
        pub(crate) fn finish(self, outcome: Outcome) {
            self.0.finish(outcome);
        }
    }
}
