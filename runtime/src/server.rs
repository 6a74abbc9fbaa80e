//! What a server is: the `Server` trait that `#[server]` implements, its
//! per-server settings, and `Handle`, the runtime half of every generated
//! handle. The handle's behaviour lives one layer up, in `handle.rs`; its
//! definition is here because the trait names it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::control::Control;
use crate::mailbox::{DEFAULT_CAPACITY, Senders};
use crate::message::{Dispatched, Message};

/// What a server does when one of its handlers panics.
///
/// The call that panicked always gets
/// [`CallError::Panicked`](crate::CallError::Panicked) with the panic
/// message. Set per server with `#[server(on_panic = "continue")]` or per
/// spawn with [`Builder::on_panic`](crate::Builder::on_panic).
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

/// Per-server settings chosen by `#[server(..)]`. Not a public API.
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
/// [`Builder`](crate::Builder) to configure a server before spawning it.
pub trait Server: Sized + Send + 'static {
    /// The generated request enum (`AccountRequest`).
    type Request: Message;
    /// The generated client handle (`AccountHandle`).
    type Handle: From<Handle<Self>>;

    #[doc(hidden)]
    const OPTIONS: Options = Options::DEFAULT;

    /// Starts the server on the current tokio runtime with the default
    /// settings and returns its handle. Same as
    /// `Builder::new(self).spawn()`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    fn spawn(self) -> Self::Handle;

    /// Serves one request against the state, or hands a terminal one back.
    #[doc(hidden)]
    fn dispatch(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Dispatched<Self::Request>> + Send;

    /// Serves a terminal request (a method taking `self`), as handed back
    /// by `dispatch`.
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
}

/// The runtime half of every generated handle: the mailbox senders and the
/// server's shared control state. (Like `tokio::runtime::Handle`, a cheap
/// reference to something running elsewhere; user code names the generated
/// handle, e.g. `AccountHandle`, rather than this.)
///
/// A generated handle (e.g. `AccountHandle`) wraps a `Handle<Account>` and
/// offers its methods under the same names. Cloning is cheap (reference
/// counts); the server stops once every clone is dropped and the mailbox has
/// run empty.
pub struct Handle<S: Server> {
    pub(crate) senders: Senders<S::Request>,
    pub(crate) control: Arc<Control>,
}
