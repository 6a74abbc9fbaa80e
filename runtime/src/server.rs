//! What a server is: the `Server` trait that `#[server]` implements, its
//! per-server settings, and `Handle`, the runtime half of every generated
//! handle. The handle's behaviour lives one layer up, in `handle.rs`; its
//! definition is here because the trait names it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::control::Control;
use crate::error::Down;
use crate::mailbox::{DEFAULT_CAPACITY, Senders, WeakSenders};
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
    /// Priority levels above the normal lane: the highest `#[priority(N)]`.
    pub priority_levels: u8,
}

impl Options {
    /// What a server gets when `#[server]` has no options.
    pub const DEFAULT: Options = Options {
        capacity: DEFAULT_CAPACITY,
        on_panic: PanicPolicy::Stop,
        priority_levels: 0,
    };
}

/// A typed message server: implemented by `#[server]` for the type of the
/// annotated `impl` block; you do not implement it by hand.
///
/// The trait's one user-facing method is [`spawn`](Self::spawn); use
/// [`Builder`](crate::Builder) to configure a server before spawning it.
pub trait Server: Sized + 'static {
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
        context: &Context<Self>,
    ) -> impl Future<Output = Dispatched<Self::Request>>;

    /// Serves a terminal request (a method taking `self`), as handed back
    /// by `dispatch`.
    #[doc(hidden)]
    fn consume(self, request: Self::Request, context: &Context<Self>) -> impl Future<Output = ()> {
        let _ = context;
        drop(request);
        async {}
    }

    /// `#[on_start]`, with its error formatted for callers.
    #[doc(hidden)]
    fn on_start(&mut self, context: &Context<Self>) -> impl Future<Output = Result<(), Arc<str>>> {
        let _ = context;
        async { Ok(()) }
    }

    /// `#[on_down]`: a watched server stopped.
    #[doc(hidden)]
    fn on_down(&mut self, down: Down, context: &Context<Self>) -> impl Future<Output = ()> {
        let _ = (down, context);
        async {}
    }

    /// `#[on_stop]`.
    #[doc(hidden)]
    fn on_stop(&mut self, context: &Context<Self>) -> impl Future<Output = ()> {
        let _ = context;
        async {}
    }

    /// The periods of the `#[every]` timers (`None`: off), evaluated after
    /// start and again on [`Context::reschedule`].
    #[doc(hidden)]
    fn periods(&self) -> Vec<Option<Duration>> {
        Vec::new()
    }

    /// Runs `#[every]` timer number `timer`.
    #[doc(hidden)]
    fn tick(&mut self, timer: usize, context: &Context<Self>) -> impl Future<Output = ()> {
        let _ = (timer, context);
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
///
/// **Handles kept in servers' states can form a cycle**: a server holding a
/// handle to itself, or two servers holding handles to each other, keep
/// each other alive after every outside handle is gone, and never stop.
/// Keep a [`WeakHandle`] ([`downgrade`](Self::downgrade),
/// [`Context::weak`]) on the side that points back, and
/// [`upgrade`](WeakHandle::upgrade) it when needed.
pub struct Handle<S: Server> {
    pub(crate) senders: Senders<S::Request>,
    pub(crate) control: Arc<Control>,
}

/// A handle that does not keep its server alive; see
/// [`Handle::downgrade`].
pub struct WeakHandle<S: Server> {
    pub(crate) senders: WeakSenders<S::Request>,
    pub(crate) control: Arc<Control>,
}

/// What a handler, hook or timer knows of its own server, and a handler of
/// the call it serves: ask for it with a `ctx: &Context<Self>` argument (any
/// name), and the macro passes it in. Methods that do not ask pay nothing.
///
/// - its own server: [`handle`](Self::handle), [`weak`](Self::weak),
///   [`id`](Self::id), [`name`](Self::name), [`queued`](Self::queued),
///   [`stop`](Self::stop);
/// - the call being served: [`is_cancelled`](Self::is_cancelled),
///   [`cancelled`](Self::cancelled);
/// - other servers: [`monitor`](Self::monitor),
///   [`drain_after`](Self::drain_after), [`stop_with`](Self::stop_with);
/// - time and streams, owned by the server and ended with it:
///   [`after`](Self::after) (a one-shot timer), [`interval`](Self::interval),
///   [`reschedule`](Self::reschedule) (`#[every]` periods changed),
///   [`pipe`](Self::pipe) (a future's result as a message),
///   [`attach`](Self::attach) (a stream's items as messages).
///
/// It reaches the server the code runs in — the whole pool, for a replica;
/// the same server across restarts — with no set-up after `spawn()`:
///
/// ```
/// use patchboard::{server, Builder, Context};
///
/// #[derive(Default)]
/// struct Pager { pages: Vec<u32> }
///
/// #[server]
/// impl Pager {
///     /// Fetches `page`, then asks its own server for the next one.
///     async fn fetch(&mut self, page: u32, ctx: &Context<Self>) {
///         self.pages.push(page);
///         if page < 3 && let Some(me) = ctx.handle() {
///             let _ = me.fetch(page + 1).no_wait().await;
///         }
///     }
/// }
///
/// # #[tokio::main]
/// # async fn main() {
/// let (pager, exit) = Builder::new(Pager::default()).spawn_with_exit();
/// pager.fetch(1).await.unwrap();
/// // Every handle gone: the server serves its own follow-ups, then stops.
/// drop(pager);
/// assert_eq!(exit.await.state.unwrap().pages, [1, 2, 3]);
/// # }
/// ```
///
/// (An argument rather than an accessor valid while serving: it is visible
/// in the signature, checked by the compiler, and costs nothing where it is
/// not asked for, as the design asks of context.)
pub struct Context<S: Server> {
    /// The serve loop's own senders: they keep the mailbox open for the
    /// server's own follow-ups while it drains, and are not counted as a
    /// handle.
    pub(crate) senders: Senders<S::Request>,
    pub(crate) control: Arc<Control>,
}
