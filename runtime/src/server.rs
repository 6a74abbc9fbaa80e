//! The `Server` trait that `#[server]` implements.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::__private::Message;
use crate::builder::Builder;
use crate::handle::Handle;

/// What a server does when one of its handlers panics.
///
/// The call that panicked always gets
/// [`CallError::Panicked`](crate::CallError::Panicked) with the panic
/// message. Set per server with `#[server(on_panic = "continue")]` or per
/// spawn with [`Builder::on_panic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PanicPolicy {
    /// Stop the server (the default): its state may be half-updated.
    /// `#[on_stop]` runs and every queued caller gets
    /// [`CallError::Closed`](crate::CallError::Closed).
    #[default]
    Stop,
    /// Keep serving with the state as the panic left it.
    Continue,
}

/// The mailbox capacity when neither `#[server(capacity = N)]` nor
/// [`Builder::capacity`] says otherwise.
pub const DEFAULT_CAPACITY: usize = 16;

/// Per-server settings chosen by `#[server(..)]`. Generated code only.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub capacity: usize,
    pub on_panic: PanicPolicy,
    pub priority_lane: bool,
}

impl Options {
    /// What a server gets when `#[server]` has no options.
    pub const DEFAULT: Options = Options {
        capacity: DEFAULT_CAPACITY,
        on_panic: PanicPolicy::Stop,
        priority_lane: false,
    };
}

/// A typed message server: implemented by `#[server]` for the type of the
/// annotated `impl` block; you do not implement it by hand.
///
/// The trait's one user-facing method is [`spawn`](Self::spawn); use
/// [`Builder`] to configure a server before spawning it.
pub trait Server: Sized + Send + 'static {
    /// The generated request enum (`AccountRequest`).
    type Request: Message;
    /// The generated client handle (`AccountHandle`).
    type Handle: From<Handle<Self>>;

    #[doc(hidden)]
    const OPTIONS: Options = Options::DEFAULT;

    /// Serves one request against the state.
    #[doc(hidden)]
    fn dispatch(&mut self, request: Self::Request) -> impl Future<Output = ()> + Send;

    /// Serves a terminal request (a method taking `self`).
    #[doc(hidden)]
    fn consume(self, request: Self::Request) -> impl Future<Output = ()> + Send {
        drop(request);
        async {}
    }

    /// `#[on_start]`, with its error formatted for callers.
    #[doc(hidden)]
    fn on_start(&mut self) -> impl Future<Output = Result<(), Arc<str>>> + Send {
        async { Ok(()) }
    }

    /// `#[on_stop]`.
    #[doc(hidden)]
    fn on_stop(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The periods of the `#[every]` timers, evaluated once after start.
    #[doc(hidden)]
    fn periods(&self) -> Vec<Duration> {
        Vec::new()
    }

    /// Runs `#[every]` timer number `timer`.
    #[doc(hidden)]
    fn tick(&mut self, timer: usize) -> impl Future<Output = ()> + Send {
        let _ = timer;
        async {}
    }

    /// Starts the server on the current tokio runtime with the default
    /// settings and returns its handle. Same as
    /// `Builder::new(self).spawn()`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    fn spawn(self) -> Self::Handle {
        Builder::new(self).spawn()
    }
}
