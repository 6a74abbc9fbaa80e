//! What every handle can do besides calling: stop the server, watch it, and
//! downgrade to a handle that does not keep it alive.

use std::fmt;
use std::sync::Arc;
use std::task::Poll;

use crate::control::{Control, Then};
use crate::error::{Down, StopReason};
use crate::id::ServerId;
use crate::mailbox::Senders;
use crate::scope;
use crate::server::{Context, Handle, Server, WeakHandle};

impl<S: Server> Handle<S> {
    pub(crate) fn new(senders: Senders<S::Request>, control: Arc<Control>) -> Self {
        control.handle_made();
        Handle { senders, control }
    }

    /// Stops the server and waits until it has stopped.
    ///
    /// From the moment `stop` is called, new calls get
    /// [`CallError::Closed`](crate::CallError::Closed), on every lane, and
    /// so do the server's own follow-ups; requests queued before it are
    /// still served. Then `#[on_stop]` runs, and this returns. Stopping a
    /// server that has already stopped returns at once. To let the server
    /// finish what it keeps sending itself, [`drain`](Self::drain) instead.
    ///
    /// From inside one of the server's own handlers, `stop` cannot wait for
    /// itself: the server stops as soon as the current handler returns, and
    /// requests still queued get `Closed`.
    pub async fn stop(&self) {
        if scope::serving() == Some(self.control.id()) {
            self.control.request_stop_now(StopReason::Stopped);
            // Wakes the other replicas of a pool, and refuses new calls.
            self.senders.close();
            return;
        }
        self.control.request_stop();
        self.senders.close();
        self.control.closed_reason().await;
    }

    /// Stops the server gracefully and waits until it has stopped: calls
    /// from outside are refused from now on
    /// ([`CallError::Closed`](crate::CallError::Closed)), while everything
    /// already queued is served, and so is everything the server's own code
    /// sends itself meanwhile (the next page of a paginated fetch); once
    /// the mailbox is empty, `#[on_stop]` runs and this returns.
    ///
    /// | | queued requests | the server's own follow-ups | new outside calls |
    /// | --- | --- | --- | --- |
    /// | [`stop`](Self::stop) | served | refused | refused |
    /// | `drain` | served | served | refused |
    /// | every handle dropped | served | served | (none can be made) |
    ///
    /// OTP's `shutdown` stops a process after at most a timeout, dropping
    /// its queue; `drain` never drops accepted work. Bound it with
    /// `tokio::time::timeout(d, handle.drain())` and fall back to `stop`.
    ///
    /// From the server's own code, `drain` starts the drain and returns at
    /// once (it cannot wait for itself).
    pub async fn drain(&self) {
        self.control.drain(StopReason::Drained);
        if scope::serving() != Some(self.control.id()) {
            self.control.closed_reason().await;
        }
    }

    /// `true` once the server refuses new requests (it has stopped, or is
    /// stopping or draining).
    pub fn is_closed(&self) -> bool {
        self.senders.is_closed() || self.control.refuses_outside()
    }

    /// Waits until the server has stopped, and tells why.
    ///
    /// (Like tokio's `Sender::closed`, which resolves once the receiver is
    /// gone, plus the reason.) This does not stop the server: it returns
    /// when something else does (every other handle dropped,
    /// [`stop`](Self::stop), [`drain`](Self::drain), a terminal message, a
    /// panic, a failed `#[on_start]`, a linked server).
    ///
    /// # Panics
    ///
    /// When awaited from the server's own code, which would wait for itself
    /// forever: the panic is that handler's, and its caller gets
    /// [`CallError::Panicked`](crate::CallError::Panicked) saying so.
    pub async fn closed(&self) -> StopReason {
        assert!(
            scope::serving() != Some(self.control.id()),
            "a server awaited its own `closed()`, which would never resolve: \
             call `stop()` instead, or await `closed()` from another task"
        );
        self.control.closed_reason().await
    }

    /// The server's id: unique in the process, the same across its
    /// restarts; see [`ServerId`].
    pub fn id(&self) -> ServerId {
        self.control.id()
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.control.name()
    }

    /// Requests waiting in the mailbox (both lanes), not counting the one
    /// being served. (Named for what it counts: tokio's `len` on a receiver
    /// would read as the handle's length.)
    pub fn queued(&self) -> usize {
        self.senders.len()
    }

    /// A handle that does not keep the server alive: for a server that
    /// needs to reach itself later (a task it spawned reporting back), or
    /// for observers that should not prevent shutdown.
    pub fn downgrade(&self) -> WeakHandle<S> {
        WeakHandle {
            senders: self.senders.downgrade(),
            control: self.control.clone(),
        }
    }

    /// This server watches `other` (OTP's monitor): once `other` stops,
    /// for any reason, this server's `#[on_down]` hook runs in its serial
    /// loop with a [`Down`] saying which server and why. At once if `other`
    /// has stopped already. A server without the hook is not affected.
    ///
    /// ```
    /// use patchboard::{server, Down, Server};
    ///
    /// struct Worker;
    /// #[server]
    /// impl Worker {
    ///     fn work(&self) {}
    /// }
    ///
    /// #[derive(Default)]
    /// struct Supervisor { seen: Vec<String> }
    /// #[server]
    /// impl Supervisor {
    ///     #[on_down]
    ///     fn down(&mut self, down: Down) { self.seen.push(down.to_string()); }
    ///
    ///     fn seen(&self) -> Vec<String> { self.seen.clone() }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let worker = patchboard::Builder::new(Worker).name("worker").spawn();
    /// let supervisor = Supervisor::default().spawn();
    /// supervisor.monitor(&worker);
    /// worker.stop().await;
    /// assert_eq!(supervisor.seen().await.unwrap(), ["server `worker` (stopped by a handle)"]);
    /// # }
    /// ```
    pub fn monitor<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other
            .as_ref()
            .control
            .watched_by(&self.control, Then::Notify);
    }

    /// Like [`monitor`](Self::monitor), then this server
    /// [drains](Self::drain) once `other` has stopped: the pipeline order,
    /// where a stage finishes after the stage that feeds it, with no
    /// end-of-input marker. Its stop reason is then
    /// [`StopReason::Drained`].
    pub fn drain_after<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other
            .as_ref()
            .control
            .watched_by(&self.control, Then::Drain);
    }

    /// Like [`monitor`](Self::monitor), then this server stops (after the
    /// handler it is running) once `other` has stopped, for any reason: an
    /// OTP link in one direction (call it both ways for both), or a
    /// `one_for_all` group. Its queued callers get
    /// [`CallError::Closed`](crate::CallError::Closed); its stop reason is
    /// [`StopReason::StoppedWith`].
    pub fn stop_with<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other.as_ref().control.watched_by(&self.control, Then::Stop);
    }
}

impl<S: Server> AsRef<Handle<S>> for Handle<S> {
    fn as_ref(&self) -> &Handle<S> {
        self
    }
}

impl<S: Server> Drop for Handle<S> {
    fn drop(&mut self) {
        self.control.handle_dropped();
    }
}

impl Down {
    /// `true` if the stopped server is the one `handle` reaches.
    pub fn is<W: Server>(&self, handle: &impl AsRef<Handle<W>>) -> bool {
        self.id == handle.as_ref().control.id()
    }
}

impl<S: Server> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle::new(self.senders.clone(), self.control.clone())
    }
}

impl<S: Server> fmt::Debug for Handle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("server", &std::any::type_name::<S>())
            .field("id", &self.id())
            .field("name", &self.name())
            .field("closed", &self.is_closed())
            .field("queued", &self.queued())
            .finish()
    }
}

impl<S: Server> WeakHandle<S> {
    /// The server's id, whether it still runs or not; see [`ServerId`].
    pub fn id(&self) -> ServerId {
        self.control.id()
    }

    /// A full handle, or `None` once the server refuses new requests: it
    /// has stopped, or is stopping or draining (every full handle gone
    /// starts a drain). From the server's own code it works while the
    /// server drains, so a handler can still send itself follow-ups.
    pub fn upgrade(&self) -> Option<S::Handle> {
        if self.control.refuses_outside() && scope::serving() != Some(self.control.id()) {
            return None;
        }
        let senders = self.senders.upgrade()?;
        Some(S::Handle::from(Handle::new(senders, self.control.clone())))
    }
}

impl<S: Server> Clone for WeakHandle<S> {
    fn clone(&self) -> Self {
        WeakHandle {
            senders: self.senders.clone(),
            control: self.control.clone(),
        }
    }
}

impl<S: Server> fmt::Debug for WeakHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHandle")
            .field("server", &std::any::type_name::<S>())
            .field("id", &self.id())
            .field("name", &self.control.name())
            .finish()
    }
}

impl<S: Server> Context<S> {
    pub(crate) fn new(senders: Senders<S::Request>, control: Arc<Control>) -> Self {
        Context { senders, control }
    }

    /// A handle to this very server, or `None` once it has stopped taking
    /// requests. It works while the server drains (the server's own
    /// follow-ups are still served then). Kept in the state, it keeps the
    /// server alive; keep [`weak`](Self::weak) there instead.
    ///
    /// Calls through it that wait for a reply get
    /// [`CallError::SelfCall`](crate::CallError::SelfCall) from the
    /// server's own code (they would wait for themselves); send follow-ups
    /// with `#[cast]` methods or [`no_wait`](crate::Call::no_wait), or
    /// from a task the handler spawns.
    pub fn handle(&self) -> Option<S::Handle> {
        if self.senders.is_closed() {
            return None;
        }
        let handle = Handle::new(self.senders.clone(), self.control.clone());
        Some(S::Handle::from(handle))
    }

    /// A handle to this server that does not keep it alive.
    pub fn weak(&self) -> WeakHandle<S> {
        WeakHandle {
            senders: self.senders.downgrade(),
            control: self.control.clone(),
        }
    }

    /// This server's id; see [`ServerId`].
    pub fn id(&self) -> ServerId {
        self.control.id()
    }

    /// The name given with [`Builder::name`](crate::Builder::name), if any.
    pub fn name(&self) -> Option<&str> {
        self.control.name()
    }

    /// Stops this server once the current handler (or hook, or timer)
    /// returns: from synchronous code too, with no `.await`. Requests still
    /// queued get [`CallError::Closed`](crate::CallError::Closed), then
    /// `#[on_stop]` runs; the stop reason is [`StopReason::Stopped`]. The
    /// same as awaiting [`Handle::stop`] from the server's own code.
    ///
    /// ```
    /// use patchboard::{server, Builder, CallError, Context, StopReason};
    ///
    /// struct Countdown(u32);
    ///
    /// #[server]
    /// impl Countdown {
    ///     fn tick(&mut self, ctx: &Context<Self>) -> u32 {
    ///         self.0 -= 1;
    ///         if self.0 == 0 {
    ///             ctx.stop();
    ///         }
    ///         self.0
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (countdown, exit) = Builder::new(Countdown(2)).spawn_with_exit();
    /// assert_eq!(countdown.tick().await, Ok(1));
    /// assert_eq!(countdown.tick().await, Ok(0));
    /// assert_eq!(countdown.tick().await, Err(CallError::Closed));
    /// assert_eq!(exit.await.reason, StopReason::Stopped);
    /// # }
    /// ```
    pub fn stop(&self) {
        self.control.request_stop_now(StopReason::Stopped);
        // Wakes the other replicas of a pool, and refuses new calls.
        self.senders.close();
    }

    /// Evaluates this server's `#[every(EXPR)]` periods again once the
    /// current handler (hook, timer) has returned, before the next request
    /// or tick: a period that changed takes effect from the next tick.
    /// `EXPR` may be a `Duration` or an `Option<Duration>`, whose `None`
    /// turns the timer off until it is `Some` again.
    ///
    /// A changed period counts from the timer's last run (or from when it
    /// was turned on; at once if that time has passed): changed in the
    /// timer itself, it is the backoff; changed by another message, the
    /// reconfigured interval. A period turned on runs one period from the
    /// reschedule. Timers whose period did not change keep their schedule.
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, Context, Server};
    ///
    /// struct Poller { every: Option<Duration>, polls: Vec<u64>, start: tokio::time::Instant }
    ///
    /// #[server]
    /// impl Poller {
    ///     #[every(self.every)]
    ///     fn poll(&mut self, ctx: &Context<Self>) {
    ///         self.polls.push(self.start.elapsed().as_secs());
    ///         // Backoff: twice as long each time.
    ///         self.every = self.every.map(|every| every * 2);
    ///         ctx.reschedule();
    ///     }
    ///
    ///     /// `None` pauses the poller; `Some` restarts it.
    ///     fn set_every(&mut self, every: Option<Duration>, ctx: &Context<Self>) {
    ///         self.every = every;
    ///         ctx.reschedule();
    ///     }
    ///
    ///     fn polls(&self) -> Vec<u64> { self.polls.clone() }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let poller = Poller { every: Some(Duration::from_secs(1)), polls: vec![], start }.spawn();
    /// tokio::time::sleep(Duration::from_millis(7_500)).await;
    /// assert_eq!(poller.polls().await.unwrap(), [1, 3, 7]);
    /// poller.set_every(None).await.unwrap();
    /// tokio::time::sleep(Duration::from_secs(100)).await;
    /// assert_eq!(poller.polls().await.unwrap(), [1, 3, 7], "paused");
    /// poller.set_every(Some(Duration::from_secs(5))).await.unwrap();
    /// tokio::time::sleep(Duration::from_secs(6)).await;
    /// assert_eq!(poller.polls().await.unwrap(), [1, 3, 7, 112]);
    /// # }
    /// ```
    ///
    /// Without `#[every]`, this does nothing. In a pool, each replica has
    /// its own timers, and the periods evaluated again are those of the
    /// replica whose loop sees the request first, which need not be the
    /// one that asked: give pooled servers fixed periods.
    pub fn reschedule(&self) {
        self.control.reschedule();
    }

    /// Requests waiting in the mailbox, besides the one being served.
    pub fn queued(&self) -> usize {
        self.senders.len()
    }

    /// `true` once the caller of the call being served has given up: it
    /// timed out or dropped its call. A handler can stop early then; its
    /// answer would be dropped anyway.
    ///
    /// Always `false` outside a message method that takes the context (in
    /// hooks, timers, tasks the handler spawned), for `#[cast]` messages
    /// and [`no_wait`](crate::Call::no_wait) calls (their callers do not
    /// wait), and in methods taking a [`Reply`](crate::Reply): ask the
    /// reply there ([`Reply::is_closed`](crate::Reply::is_closed),
    /// [`Reply::closed`](crate::Reply::closed)).
    pub fn is_cancelled(&self) -> bool {
        scope::call_gone()
    }

    /// Resolves once the caller of the call being served has given up (see
    /// [`is_cancelled`](Self::is_cancelled); never where that is always
    /// `false`). `tokio::select!` it against slow work to stop early:
    ///
    /// ```
    /// use std::time::Duration;
    /// use patchboard::{server, CallError, Context, Server};
    ///
    /// struct Search { abandoned: u32 }
    ///
    /// #[server]
    /// impl Search {
    ///     async fn slow(&mut self, ctx: &Context<Self>) -> Option<u32> {
    ///         tokio::select! {
    ///             _ = tokio::time::sleep(Duration::from_secs(60)) => Some(42),
    ///             _ = ctx.cancelled() => { self.abandoned += 1; None }
    ///         }
    ///     }
    ///     fn abandoned(&self) -> u32 { self.abandoned }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let search = Search { abandoned: 0 }.spawn();
    /// let late = search.slow().timeout(Duration::from_millis(10)).await;
    /// assert_eq!(late, Err(CallError::Timeout));
    /// // The handler stopped when its caller gave up, not 60 s later.
    /// assert_eq!(search.abandoned().timeout(Duration::from_millis(1)).await, Ok(1));
    /// # }
    /// ```
    ///
    /// To drop the handler at its next await instead, without writing the
    /// `select!`, mark the message `#[cancellable]`.
    pub async fn cancelled(&self) {
        std::future::poll_fn(|_| {
            if scope::call_gone() {
                Poll::Ready(())
            } else {
                // Pending; the handler's wrapper wakes it when the caller
                // gives up. Outside a call, nobody can: pending for ever.
                scope::watch_call();
                Poll::Pending
            }
        })
        .await;
    }

    /// This server watches `other`; see [`Handle::monitor`].
    pub fn monitor<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other
            .as_ref()
            .control
            .watched_by(&self.control, Then::Notify);
    }

    /// This server drains once `other` has stopped; see
    /// [`Handle::drain_after`].
    pub fn drain_after<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other
            .as_ref()
            .control
            .watched_by(&self.control, Then::Drain);
    }

    /// This server stops once `other` has stopped; see
    /// [`Handle::stop_with`].
    pub fn stop_with<W: Server>(&self, other: &impl AsRef<Handle<W>>) {
        other.as_ref().control.watched_by(&self.control, Then::Stop);
    }
}

impl<S: Server> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("server", &std::any::type_name::<S>())
            .field("name", &self.name())
            .finish()
    }
}
