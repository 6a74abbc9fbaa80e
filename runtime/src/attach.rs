//! Streams in: any `Stream` attached to a server, each item sent as a
//! message to one of its methods, in order, waiting for room in the
//! mailbox (never dropping, unless the call says `try_now`).
//!
//! One task of the runtime's per attached stream, bound to the server's
//! `Control` like a delayed message (`later.rs`): aborted when the server
//! ends, with the stream inside it. The serve loop knows nothing of it.

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures_core::Stream;
use tokio::task::{AbortHandle, JoinHandle};

use crate::call::Call;
use crate::control::{Control, Ends};
use crate::error::CallError;
use crate::mailbox::Senders;
use crate::server::{Context, Handle, Server};

/// A stream attached to a server with [`attach`] or [`Context::attach`]:
/// [`detach`](Self::detach) stops feeding it. Dropping it leaves the
/// stream attached (it ends with the stream, or with the server).
pub struct Attached {
    link: Arc<Link>,
    control: Arc<Control>,
    task: JoinHandle<()>,
}

/// What the feeding task, its [`Attached`] and the server's `Control`
/// share.
struct Link {
    /// Detached, or the server ended: no more items are taken.
    done: AtomicBool,
    /// Items sent into the mailbox so far.
    sent: AtomicU64,
    /// Items dropped because the mailbox was full (calls made `try_now`).
    dropped: AtomicU64,
    abort: std::sync::OnceLock<AbortHandle>,
}

impl Link {
    fn stop(&self) -> bool {
        let was = self.done.swap(true, Ordering::AcqRel);
        if let Some(abort) = self.abort.get() {
            abort.abort();
        }
        !was
    }
}

/// Marks the feeding done when its task ends, on every path.
struct Done<'a>(&'a Link);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
    }
}

impl Ends for Link {
    /// The server has ended: the stream is dropped with its task.
    fn end(&self) {
        self.stop();
    }
}

/// Attaches `stream` to the server of `handle`: each item becomes the
/// message `each` makes of it, sent in the stream's order (actix's
/// `add_stream`, kameo's `attach_stream`). The same as
/// [`Context::attach`], from outside the server.
///
/// ```
/// use patchboard::{attach, server, Server};
///
/// #[derive(Default)]
/// struct Sum { total: u64 }
///
/// #[server]
/// impl Sum {
///     #[cast]
///     fn add(&mut self, n: u64) { self.total += n; }
///     fn total(&self) -> u64 { self.total }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sum = Sum::default().spawn();
/// let (tx, rx) = tokio::sync::mpsc::channel(4);
/// // A `Stream` of the channel's values (any `Stream` will do).
/// let values = futures_stream(rx);
/// let attached = attach(&sum, values, |me, n| me.add(n));
/// for n in 1..=100 {
///     tx.send(n).await.unwrap();
/// }
/// drop(tx); // the stream ends
/// assert_eq!(attached.finished().await, 100);
/// // Every item is in the mailbox, before this call.
/// assert_eq!(sum.total().await, Ok(5050));
/// # }
/// # fn futures_stream<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
/// #     struct S<T>(tokio::sync::mpsc::Receiver<T>);
/// #     impl<T> futures_core::Stream for S<T> {
/// #         type Item = T;
/// #         fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
/// #             self.0.poll_recv(cx)
/// #         }
/// #     }
/// #     S(rx)
/// # }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime, like `tokio::spawn`.
pub fn attach<S, St, F, T>(handle: &impl AsRef<Handle<S>>, stream: St, each: F) -> Attached
where
    S: Server,
    St: Stream + Send + 'static,
    St::Item: Send,
    F: for<'h> FnMut(&'h S::Handle, St::Item) -> Call<'h, S::Request, T> + Send + 'static,
    T: 'static,
{
    let handle = handle.as_ref();
    feed::<S, _, _, _, _, ()>(
        handle.senders.clone(),
        handle.control.clone(),
        stream,
        each,
        None::<End<S>>,
    )
}

/// [`attach`], then the message `end` makes once the stream has ended by
/// itself and every item is in the mailbox (not when detached, nor when
/// the server ends first). The same as [`Context::attach_with_end`], from
/// outside the server.
///
/// # Panics
///
/// Outside a tokio runtime, like `tokio::spawn`.
pub fn attach_with_end<S, St, F, T, E, U>(
    handle: &impl AsRef<Handle<S>>,
    stream: St,
    each: F,
    end: E,
) -> Attached
where
    S: Server,
    St: Stream + Send + 'static,
    St::Item: Send,
    F: for<'h> FnMut(&'h S::Handle, St::Item) -> Call<'h, S::Request, T> + Send + 'static,
    T: 'static,
    E: for<'h> FnOnce(&'h S::Handle) -> Call<'h, S::Request, U> + Send + 'static,
    U: 'static,
{
    let handle = handle.as_ref();
    feed::<S, _, _, _, _, _>(
        handle.senders.clone(),
        handle.control.clone(),
        stream,
        each,
        Some(end),
    )
}

/// The type of "no end message".
type End<S> = for<'h> fn(&'h <S as Server>::Handle) -> Call<'h, <S as Server>::Request, ()>;

/// Spawns the task that feeds `stream` to the server of `senders` and
/// `control`, bound to that server.
fn feed<S, St, F, T, E, U>(
    senders: Senders<S::Request>,
    control: Arc<Control>,
    stream: St,
    mut each: F,
    end: Option<E>,
) -> Attached
where
    S: Server,
    St: Stream + Send + 'static,
    St::Item: Send,
    F: for<'h> FnMut(&'h S::Handle, St::Item) -> Call<'h, S::Request, T> + Send + 'static,
    T: 'static,
    E: for<'h> FnOnce(&'h S::Handle) -> Call<'h, S::Request, U> + Send + 'static,
    U: 'static,
{
    let link = Arc::new(Link {
        done: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        abort: std::sync::OnceLock::new(),
    });
    let task = {
        let link = link.clone();
        let control = control.clone();
        async move {
            // However the feeding ends (the stream ended, an item refused,
            // detached, aborted with the server), it is not attached any
            // more.
            let _done = Done(&link);
            let mut stream = pin!(stream);
            // The server's own handle, made for each message and dropped
            // once it is sent: it does not keep the server alive between
            // items.
            let handle = || S::Handle::from(Handle::new(senders.clone(), control.clone()));
            while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                if link.done.load(Ordering::Acquire) {
                    return;
                }
                // One-way: the handler runs, its reply is dropped; waits
                // for room (backpressure), unless the call says `try_now`.
                // The handle `each` is given is gone by then: it counts
                // only while the message is made.
                let message = each(&handle(), item).no_wait().keep(&control);
                match message.send(&senders, &control).await {
                    Ok(()) => link.sent.fetch_add(1, Ordering::Relaxed),
                    Err(CallError::Full) => link.dropped.fetch_add(1, Ordering::Relaxed),
                    // Closed, draining, or refused: the server will take no
                    // more.
                    Err(_) => return,
                };
                // A stream that is always ready into a server that keeps
                // up must still let its thread's other tasks run.
                tokio::task::consume_budget().await;
            }
            if let Some(end) = end
                && !link.done.load(Ordering::Acquire)
            {
                let message = end(&handle()).no_wait().keep(&control);
                let _ = message.send(&senders, &control).await;
            }
        }
    };
    let join = tokio::spawn(task);
    let _ = link.abort.set(join.abort_handle());
    if link.done.load(Ordering::Acquire) {
        join.abort();
    }
    control.bind(Arc::downgrade(&link) as Weak<dyn Ends>);
    Attached {
        link,
        control,
        task: join,
    }
}

impl Attached {
    /// Stops feeding the stream, which is dropped: no item is taken from
    /// it from now on (one already taken may still be sent). Items already
    /// in the mailbox are served. `true` if it was still attached.
    pub fn detach(self) -> bool {
        self.link.stop()
    }

    /// Waits until the stream is no longer fed: it has ended and every
    /// item is in the mailbox (and the end message, if any), or it was
    /// detached, or the server ended or refused an item. Returns the items
    /// sent.
    pub async fn finished(self) -> u64 {
        // Aborted (detached, or the server ended) or done: either way
        // nothing more is sent.
        let Attached { link, task, .. } = self;
        let _ = task.await;
        link.sent.load(Ordering::Relaxed)
    }

    /// `false` once the stream has ended, been detached, or its server has
    /// ended.
    pub fn is_attached(&self) -> bool {
        !self.link.done.load(Ordering::Acquire) && self.control.reason().is_none()
    }

    /// Items sent into the mailbox so far.
    pub fn sent(&self) -> u64 {
        self.link.sent.load(Ordering::Relaxed)
    }

    /// Items dropped because the mailbox was full, for calls made
    /// [`try_now`](Call::try_now) (drop-when-full instead of waiting).
    pub fn dropped(&self) -> u64 {
        self.link.dropped.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("server", &self.control.id())
            .field("attached", &self.is_attached())
            .field("sent", &self.sent())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<S: Server> Context<S> {
    /// Attaches `stream` to this server: each item becomes the message
    /// `each` makes of it (`|me, item| me.method(item)`), sent in the
    /// stream's order, one way (the handler runs; a call's reply is
    /// dropped), by a task of the runtime's (actix's `add_stream`, kameo's
    /// `attach_stream`).
    ///
    /// - **Backpressure:** an item waits for room in the mailbox, so the
    ///   stream never has more queued than the mailbox holds, and a fast
    ///   stream waits instead of dropping; other callers keep their turn
    ///   for room. Make the call `try_now` (`|me, x| me.m(x).try_now()`)
    ///   to drop an item that finds the mailbox full instead
    ///   ([`Attached::dropped`] counts them).
    /// - **Owned by the server:** detached and dropped when the server
    ///   ends, or when it drains (it refuses outside messages then). It
    ///   does not keep the server alive.
    /// - A [`Subscription`](crate::Subscription) is a stream: attached to
    ///   another server's method, it is an output port (see the README).
    ///
    /// [`attach_with_end`](Self::attach_with_end) also sends a message when
    /// the stream ends. A panic of `each` (or of the stream) ends the
    /// feeding there, with no end message; the panic hook prints it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a server's code always runs in one).
    pub fn attach<St, F, T>(&self, stream: St, each: F) -> Attached
    where
        St: Stream + Send + 'static,
        St::Item: Send,
        F: for<'h> FnMut(&'h S::Handle, St::Item) -> Call<'h, S::Request, T> + Send + 'static,
        T: 'static,
    {
        feed::<S, _, _, _, _, ()>(
            self.senders.clone(),
            self.control.clone(),
            stream,
            each,
            None::<End<S>>,
        )
    }

    /// [`attach`](Self::attach), then the message `end` makes once the
    /// stream has ended by itself, after every item (not when detached,
    /// nor when the server ends first): the hook for the stream's end.
    ///
    /// ```
    /// use patchboard::{server, Builder, Context};
    ///
    /// #[derive(Default)]
    /// struct Lines { lines: Vec<String> }
    ///
    /// #[server]
    /// impl Lines {
    ///     #[on_start]
    ///     fn start(&mut self, ctx: &Context<Self>) {
    ///         let input = Iter(["one", "two", "three"].map(String::from).into_iter());
    ///         ctx.attach_with_end(input, |me, line| me.line(line), |me| me.done());
    ///     }
    ///
    ///     #[cast]
    ///     fn line(&mut self, line: String) { self.lines.push(line); }
    ///
    ///     #[cast]
    ///     fn done(&mut self, ctx: &Context<Self>) { ctx.stop(); }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (_lines, exit) = Builder::new(Lines::default()).spawn_with_exit();
    /// assert_eq!(exit.await.state.unwrap().lines, ["one", "two", "three"]);
    /// # }
    /// # /// A `Stream` of an iterator's items.
    /// # struct Iter<I>(I);
    /// # impl<I: Iterator + Unpin> futures_core::Stream for Iter<I> {
    /// #     type Item = I::Item;
    /// #     fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<I::Item>> {
    /// #         std::task::Poll::Ready(self.0.next())
    /// #     }
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (a server's code always runs in one).
    pub fn attach_with_end<St, F, T, E, U>(&self, stream: St, each: F, end: E) -> Attached
    where
        St: Stream + Send + 'static,
        St::Item: Send,
        F: for<'h> FnMut(&'h S::Handle, St::Item) -> Call<'h, S::Request, T> + Send + 'static,
        T: 'static,
        E: for<'h> FnOnce(&'h S::Handle) -> Call<'h, S::Request, U> + Send + 'static,
        U: 'static,
    {
        feed::<S, _, _, _, _, _>(
            self.senders.clone(),
            self.control.clone(),
            stream,
            each,
            Some(end),
        )
    }
}
