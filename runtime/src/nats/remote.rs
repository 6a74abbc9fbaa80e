//! Calling: a server that another process offers, through a handle of its
//! own type ([`Remote`]) whose requests a forwarder task sends over NATS.
//!
//! The forwarder never waits on the network itself: every request it takes
//! becomes a future in flight, bounded by a deadline (the call's own, or
//! the remote default), so that neither a lost connection nor a full send
//! buffer holds what is behind it. Order is kept by tickets: a one-way
//! message is sent once every one-way message taken before it has been
//! sent or given up, and a call once every one-way message taken before
//! it has (a caller's casts, then its call: read your writes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_nats::{HeaderMap, RequestErrorKind, StatusCode};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::wire::{self, Decode};
use super::{DEFAULT_IN_FLIGHT, DEFAULT_TIMEOUT, RemoteServer, has_room};
use crate::control::{Control, Ending};
use crate::error::CallError;
use crate::mailbox::{Mailbox, mailbox};
use crate::message::Message;
use crate::reply::{Reply, ReplySlot};
use crate::server::Handle;
use crate::trace;

/// A request on its way out. Generated code only.
#[doc(hidden)]
pub struct Forwarded {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// A one-way message being sent: counted apart from the calls, so
    /// that one-way messages that cannot be sent never take the room of a
    /// call.
    one_way: bool,
}

impl Forwarded {
    fn call(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Forwarded {
            future: Box::pin(future),
            one_way: false,
        }
    }

    fn one_way(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Forwarded {
            future: Box::pin(future),
            one_way: true,
        }
    }

    fn nothing() -> Self {
        Self::call(async {})
    }
}

impl fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarded")
            .field("one_way", &self.one_way)
            .finish_non_exhaustive()
    }
}

/// Calls a server that another process offers as a NATS service: a handle
/// of the server's own type whose calls travel over NATS.
///
/// ```no_run
/// # use patchboard::server;
/// # #[derive(Default)] struct Account { balance: u64 }
/// # #[server(remote)]
/// # impl Account { fn deposit(&mut self, amount: u64) -> u64 { self.balance += amount; self.balance } }
/// # use patchboard_runtime::nats::async_nats;
/// # async fn run(client: async_nats::Client) -> Result<(), patchboard::CallError> {
/// use std::time::Duration;
/// use patchboard_runtime::nats::Remote; // `patchboard::nats::Remote`
///
/// let account: AccountHandle = Remote::new(&client, "bank")
///     .timeout(Duration::from_secs(2))
///     .handle::<Account>();
/// let balance = account.deposit(5).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Remote {
    client: async_nats::Client,
    name: String,
    timeout: Duration,
    capacity: usize,
    confirm: bool,
}

impl Remote {
    /// The server offered as `name` (see [`Service::new`]), through
    /// `client`.
    ///
    /// The name is checked as [`Service::serve`] checks it: a name NATS
    /// cannot carry (anything but letters, digits, `-` and `_`) is never
    /// sent, and every call through the handle fails at once with
    /// [`CallError::Transport`](crate::CallError::Transport) saying so.
    ///
    /// [`Service::new`]: super::Service::new
    /// [`Service::serve`]: super::Service::serve
    pub fn new(client: &async_nats::Client, name: impl Into<String>) -> Self {
        Remote {
            client: client.clone(),
            name: name.into(),
            timeout: DEFAULT_TIMEOUT,
            capacity: DEFAULT_IN_FLIGHT,
            confirm: false,
        }
    }

    /// The deadline of calls without a timeout of their own (default
    /// [`DEFAULT_TIMEOUT`]): a remote call always has one. It bounds the
    /// call here, in the calling process; the remote server is not told
    /// of it, and may still run a call after its caller was told
    /// [`CallError::Timeout`]. Only a call's own timeout (`.timeout(d)`,
    /// `#[timeout]`, `#[server(timeout = ..)]`) travels with it, as the
    /// deadline by which the remote server skips it: a header on every
    /// request costs about a third of the throughput of many concurrent
    /// calls (BENCHMARKS.md). It also bounds how long a one-way message
    /// may take to be sent.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Calls in flight at once from this handle and its clones (default
    /// [`DEFAULT_IN_FLIGHT`]), and as many again queued behind them;
    /// further calls wait for room, or fail with `Full` under `try_now`.
    /// One-way messages have as much room again of their own: when it is
    /// full, further requests wait while the connection is up (the
    /// one-way messages are leaving), and while it is not, a one-way
    /// message beyond it is dropped and reported to [`confirm`] as
    /// [`CallError::Full`](crate::CallError::Full), so that calls keep moving.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, crate::MAX_CAPACITY);
        self
    }

    /// Has the serving process confirm every one-way message (`#[cast]`,
    /// `.no_wait()`) once it is in the server's mailbox, so that
    /// [`confirm`] can tell that they were taken: a message nobody served
    /// fails with [`CallError::NoResponders`](crate::CallError::NoResponders), one whose confirmation did
    /// not come within the remote default with [`CallError::Timeout`](crate::CallError::Timeout).
    /// Costs a subscription and an answer per message; order is kept.
    pub fn confirm_casts(mut self) -> Self {
        self.confirm = true;
        self
    }

    /// The handle. Its forwarder runs on the current tokio runtime until
    /// every clone of the handle is dropped (or it is stopped, or the
    /// runtime shuts down: calls then fail with [`CallError::Closed`](crate::CallError::Closed)).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn handle<S: RemoteServer>(self) -> S::Handle {
        let (senders, mailbox) = mailbox(self.capacity, S::OPTIONS.priority_levels, 1);
        let control = Control::new(Some(Arc::from(self.name.as_str())), 1);
        let handle = Handle::new(senders, control.clone());
        let link = Arc::new(LinkShared {
            client: self.client,
            invalid: wire::check_name(&self.name).err(),
            name: self.name,
            timeout: self.timeout,
            confirm: self.confirm,
            sending: Tickets::default(),
            settling: Tickets::default(),
            failed: Mutex::new(None),
            emptied: AtomicU64::new(0),
            received: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            progress: Notify::new(),
        });
        register(&control, &link);
        tokio::spawn(run_forwarder::<S>(mailbox, control, link, self.capacity));
        S::Handle::from(handle)
    }
}

/// Waits until every one-way message that `handle`, a [`Remote`] handle,
/// had been given before this call has been sent, and, with
/// [`Remote::confirm_casts`], taken into the remote server's mailbox.
///
/// Returns the first failure since the previous `confirm` (of this
/// handle and its clones): a message that could not be sent by the remote
/// default deadline ([`CallError::Timeout`](crate::CallError::Timeout): NATS unreachable, the send
/// buffer full), that was dropped at once because the connection was down
/// and [`Remote::capacity`] one-way messages were already waiting
/// ([`CallError::Full`](crate::CallError::Full)), that is over the NATS server's `max_payload` or
/// could not be encoded ([`CallError::Transport`](crate::CallError::Transport)), or, with
/// `confirm_casts`, that nobody served ([`CallError::NoResponders`](crate::CallError::NoResponders)). `Ok` for a local
/// handle, whose casts are taken when their `.await` returns; `Closed`
/// for a handle whose forwarder has stopped.
///
/// ```no_run
/// # use patchboard::server;
/// # #[derive(Default)] struct Log { lines: Vec<String> }
/// # #[server(remote)]
/// # impl Log { #[cast] fn write(&mut self, line: String) { self.lines.push(line) } }
/// # use patchboard_runtime::nats::async_nats;
/// # async fn run(client: async_nats::Client) -> Result<(), patchboard::CallError> {
/// use patchboard_runtime::nats::{Remote, confirm}; // `patchboard::nats::..`
///
/// let log: LogHandle = Remote::new(&client, "log").confirm_casts().handle::<Log>();
/// log.write("started".into()).await?;
/// confirm(&log).await?; // in the remote server's mailbox, or an error
/// # Ok(()) }
/// ```
pub async fn confirm<S: RemoteServer>(handle: &impl AsRef<Handle<S>>) -> Result<(), CallError> {
    let handle = handle.as_ref();
    if handle.is_closed() {
        return Err(CallError::Closed);
    }
    let Some(link) = registered(&handle.control) else {
        return Ok(());
    };
    // Every request out of the mailbox by now has been forwarded (its
    // tickets issued) once `taken` reaches `received`; every one still in
    // it, once the forwarder has found it empty since (which it does only
    // after forwarding what it received), or, with one lane (first in,
    // first out), once as many more have been forwarded.
    let emptied = link.emptied.load(Ordering::Acquire);
    let queued = handle.queued() as u64;
    let received = link.received.load(Ordering::Acquire);
    let one_lane = S::OPTIONS.priority_levels == 0;
    loop {
        let progress = link.progress.notified();
        let mut progress = std::pin::pin!(progress);
        progress.as_mut().enable();
        let taken = link.taken.load(Ordering::Acquire);
        let drained = queued == 0
            || link.emptied.load(Ordering::Acquire) > emptied
            || (one_lane && taken >= received + queued);
        if taken >= received && drained {
            break;
        }
        if handle.is_closed() {
            return Err(CallError::Closed);
        }
        progress.await;
    }
    link.settling.settled_below(link.settling.mark()).await;
    match link.failed.lock().expect("never poisoned").take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The links of the remote handles alive, by their control's address:
/// how [`confirm`] finds a handle's forwarder.
static LINKS: Mutex<Option<HashMap<usize, Weak<LinkShared>>>> = Mutex::new(None);

fn register(control: &Arc<Control>, link: &Arc<LinkShared>) {
    let mut links = LINKS.lock().expect("never poisoned");
    let links = links.get_or_insert_with(HashMap::new);
    links.retain(|_, link| link.strong_count() > 0);
    links.insert(Arc::as_ptr(control) as usize, Arc::downgrade(link));
}

fn registered(control: &Arc<Control>) -> Option<Arc<LinkShared>> {
    let links = LINKS.lock().expect("never poisoned");
    links
        .as_ref()?
        .get(&(Arc::as_ptr(control) as usize))?
        .upgrade()
}

fn unregister(control: &Arc<Control>) {
    if let Some(links) = LINKS.lock().expect("never poisoned").as_mut() {
        links.remove(&(Arc::as_ptr(control) as usize));
    }
}

/// Moves requests from the handle's mailbox onto NATS, each a future in
/// flight polled by this task, until the mailbox closes or the forwarder
/// is stopped.
async fn run_forwarder<S: RemoteServer>(
    mailbox: Mailbox<S::Request>,
    control: Arc<Control>,
    link: Arc<LinkShared>,
    capacity: usize,
) {
    /// What the forwarder takes next (the serve loop's own `Next` has a
    /// tick and signals besides).
    enum Forward<R> {
        Request(R),
        StopNow,
        Ended,
    }
    // Closes the mailbox and ends the handle however this task ends: also
    // when it is dropped by its runtime shutting down, so that callers
    // get `Closed` at once instead of waiting for an answer.
    let mut end = ForwarderEnd {
        mailbox,
        control,
        link,
    };
    // The calls waiting for their answers, and the one-way messages being
    // sent, polled by this task (a task each would cost a spawn each).
    let mut in_flight = FuturesUnordered::new();
    let mut sending = FuturesUnordered::new();
    loop {
        let next = std::future::poll_fn(|cx| {
            // One-way messages have a room of their own, so that those
            // that cannot be sent never take a call's. While connected, a
            // full room holds the mailbox (the one-way messages are
            // leaving, only slower than they come); while not, a one-way
            // message beyond it is dropped, and calls keep moving.
            let one_way_room = has_room(&mut sending, capacity, cx)
                || end.link.client.connection_state() != async_nats::connection::State::Connected;
            let room = has_room(&mut in_flight, capacity, cx) && one_way_room;
            end.control.register(cx.waker());
            let signals = end.control.signals();
            if signals.stops_now() {
                return Poll::Ready(Forward::StopNow);
            }
            if !room {
                // Woken when one of them finishes.
                return Poll::Pending;
            }
            match end.mailbox.poll_recv(cx) {
                Poll::Ready(Some(request)) => {
                    end.link.received.fetch_add(1, Ordering::AcqRel);
                    Poll::Ready(Forward::Request(request))
                }
                Poll::Ready(None) => Poll::Ready(Forward::Ended),
                Poll::Pending => {
                    end.link.emptied.fetch_add(1, Ordering::AcqRel);
                    end.link.progress.notify_waiters();
                    if signals.draining() {
                        Poll::Ready(Forward::Ended)
                    } else {
                        Poll::Pending
                    }
                }
            }
        })
        .await;
        match next {
            Forward::Request(request) => {
                let level = end.mailbox.last_level();
                let forwarded = S::forward(
                    request,
                    Link {
                        shared: end.link.clone(),
                        level,
                    },
                );
                end.link.taken.fetch_add(1, Ordering::AcqRel);
                end.link.progress.notify_waiters();
                if !forwarded.one_way {
                    in_flight.push(forwarded.future);
                } else if sending.len() < capacity {
                    sending.push(forwarded.future);
                } else {
                    // `capacity` one-way messages wait to be sent already,
                    // and the connection is gone: dropped, and told to
                    // `confirm` (before its tickets are done, which is
                    // what `confirm` waits for).
                    end.link.failed(CallError::Full);
                    drop(forwarded);
                }
            }
            Forward::StopNow => {
                end.mailbox.close_and_drain(&CallError::Closed);
                break;
            }
            Forward::Ended => break,
        }
    }
    end.mailbox.close_and_drain(&CallError::Closed);
    // Requests already taken still end, each by its deadline.
    // (Together: a call may wait for a one-way message's turn.)
    tokio::join!(async { while in_flight.next().await.is_some() {} }, async {
        while sending.next().await.is_some() {}
    },);
}

/// The end of a forwarder, on every path out of it.
struct ForwarderEnd<R: Message> {
    mailbox: Mailbox<R>,
    control: Arc<Control>,
    link: Arc<LinkShared>,
}

impl<R: Message> Drop for ForwarderEnd<R> {
    fn drop(&mut self) {
        self.mailbox.close_and_drain(&CallError::Closed);
        unregister(&self.control);
        self.link.progress.notify_waiters();
        if let Some(reason) = self.control.replica_ended(Ending::Drained) {
            self.control.finish(reason);
            self.control.announce();
        }
    }
}

struct LinkShared {
    client: async_nats::Client,
    /// The service's name.
    name: String,
    /// Why the name cannot be used, if it cannot.
    invalid: Option<String>,
    timeout: Duration,
    /// One-way messages are sent as requests, answered once taken.
    confirm: bool,
    /// The one-way messages not yet sent (or given up): a one-way message
    /// or a call goes once those taken before it have.
    sending: Tickets,
    /// The one-way messages not yet settled: sent, and with `confirm`
    /// answered, or failed.
    settling: Tickets,
    /// The first one-way message that failed since [`confirm`] last
    /// looked.
    failed: Mutex<Option<CallError>>,
    /// How many times the forwarder has found the mailbox empty.
    emptied: AtomicU64,
    /// How many requests the forwarder has received from the mailbox.
    received: AtomicU64,
    /// How many of them it has forwarded (their tickets issued).
    taken: AtomicU64,
    /// Woken as `emptied` and `taken` grow.
    progress: Notify,
}

impl LinkShared {
    fn failed(&self, error: CallError) {
        let mut failed = self.failed.lock().expect("never poisoned");
        if failed.is_none() {
            *failed = Some(error);
        }
    }

    /// `now + timeout`, or a far future for a timeout too long to add.
    fn deadline(&self, timeout: Duration) -> Instant {
        let now = Instant::now();
        now.checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
    }

    /// `Transport` for a message over the NATS server's `max_payload`,
    /// counted as NATS counts it: headers and payload (NATS would answer
    /// it by closing the connection).
    fn fits(&self, headers: &HeaderMap, payload: &Bytes) -> Result<(), CallError> {
        let size = wire::headers_len(headers) + payload.len();
        // Every NATS server takes 1 KiB; only a larger message is checked.
        if size <= 1024 {
            return Ok(());
        }
        let limit = self.client.server_info().max_payload;
        if size > limit {
            return Err(CallError::Transport(
                format!(
                    "the request is {size} bytes with its headers, over the NATS server's \
                     max_payload of {limit}"
                )
                .into(),
            ));
        }
        Ok(())
    }
}

/// Where a forwarded request goes. Generated code only.
#[doc(hidden)]
pub struct Link {
    shared: Arc<LinkShared>,
    level: u8,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.shared.name)
            .field("level", &self.level)
            .finish()
    }
}

impl Link {
    /// A request that waits for its answer (unless sent with `no_wait`):
    /// `payload` is its encoded arguments, `decode` reads its answer.
    pub fn call<T: Send + 'static>(
        self,
        message: &'static str,
        payload: Result<Bytes, String>,
        mut reply: Reply<T>,
        decode: Decode<T>,
    ) -> Forwarded {
        if let Some(why) = &self.shared.invalid {
            reply.fail(CallError::Transport(why.as_str().into()));
            return Forwarded::nothing();
        }
        let payload = match payload {
            Ok(payload) => payload,
            Err(why) => {
                reply.fail(CallError::Transport(
                    format!("the request could not be encoded: {why}").into(),
                ));
                return Forwarded::nothing();
            }
        };
        if reply.is_detached() {
            drop(reply);
            return self.cast_payload(message, payload);
        }
        // The call's own deadline, which the remote server is told, or
        // the remote default, which bounds the call here only.
        let own = reply.deadline.is_some();
        let deadline = reply
            .deadline
            .unwrap_or_else(|| self.shared.deadline(self.shared.timeout));
        // The caller's trace and span, for the remote request's span.
        let traceparent = trace::traceparent(&reply.sent().trace);
        // Sent after the one-way messages taken before it.
        let after = self.shared.sending.mark();
        let Link { shared, level } = self;
        Forwarded::call(async move {
            let mut reply = Answer(Some(reply));
            let sent = tokio::time::timeout_at(deadline, async {
                shared.sending.sent_below(after).await;
                let reply = reply.0.as_mut().expect("answered once");
                if reply.is_closed() {
                    return None; // The caller gave up while it queued.
                }
                let left = deadline.saturating_duration_since(Instant::now());
                let mut headers = wire::request_headers(own.then_some(left), level);
                if let Some(traceparent) = &traceparent {
                    headers.insert(trace::TRACEPARENT_HEADER, traceparent.as_str());
                }
                if let Err(error) = shared.fits(&headers, &payload) {
                    return Some(Err(error));
                }
                let mut request = async_nats::Request::new()
                    .payload(payload)
                    .timeout(Some(left));
                if !headers.is_empty() {
                    request = request.headers(headers);
                }
                let subject = wire::subject(&shared.name, message);
                let answer = tokio::select! {
                    answer = shared.client.send_request(subject, request) => answer,
                    () = reply.closed() => return None,
                };
                Some(answer.map_err(|error| match error.kind() {
                    RequestErrorKind::NoResponders => CallError::NoResponders,
                    RequestErrorKind::TimedOut => CallError::Timeout,
                    RequestErrorKind::Other => CallError::Transport(error.to_string().into()),
                }))
            })
            .await;
            let reply = reply.0.take().expect("answered once");
            match sent {
                Err(_) => reply_fail(reply, CallError::Timeout),
                Ok(None) => {}
                Ok(Some(Ok(answer))) => deliver(answer, reply, decode),
                Ok(Some(Err(error))) => reply_fail(reply, error),
            }
        })
    }

    /// A one-way message (`#[cast]`) of encoded arguments.
    pub fn cast(self, message: &'static str, payload: Result<Bytes, String>) -> Forwarded {
        match payload {
            Ok(payload) => self.cast_payload(message, payload),
            Err(why) => {
                self.shared.failed(CallError::Transport(
                    format!("a one-way message could not be encoded: {why}").into(),
                ));
                Forwarded::nothing()
            }
        }
    }

    fn cast_payload(self, message: &'static str, payload: Bytes) -> Forwarded {
        if let Some(why) = &self.shared.invalid {
            self.shared
                .failed(CallError::Transport(why.as_str().into()));
            return Forwarded::nothing();
        }
        let Link { shared, level } = self;
        let sending = Ticket::issue(&shared, |shared| &shared.sending);
        let settling = Ticket::issue(&shared, |shared| &shared.settling);
        let deadline = shared.deadline(shared.timeout);
        Forwarded::one_way(async move {
            let outcome = tokio::time::timeout_at(deadline, async {
                let subject = wire::subject(&shared.name, message);
                let mut headers = wire::request_headers(None, level);
                // With `confirm`: a request, whose answer says it was taken.
                let mut answer = None;
                if shared.confirm {
                    headers.insert(wire::ONE_WAY_HEADER, "1");
                    let inbox = shared.client.new_inbox();
                    let subscribed = shared.client.subscribe(inbox.clone()).await;
                    let subscribed =
                        subscribed.map_err(|e| CallError::Transport(e.to_string().into()))?;
                    answer = Some((inbox, subscribed));
                }
                shared.sending.sent_below(sending.ticket).await;
                shared.fits(&headers, &payload)?;
                let published = match &answer {
                    Some((inbox, _)) => {
                        shared
                            .client
                            .publish_with_reply_and_headers(
                                subject,
                                inbox.clone(),
                                headers,
                                payload,
                            )
                            .await
                    }
                    None => {
                        shared
                            .client
                            .publish_with_headers(subject, headers, payload)
                            .await
                    }
                };
                published.map_err(|error| CallError::Transport(error.to_string().into()))?;
                drop(sending); // The next one may go.
                let Some((_, mut subscribed)) = answer else {
                    return Ok(());
                };
                match subscribed.next().await {
                    Some(message) if message.status == Some(StatusCode::NO_RESPONDERS) => {
                        Err(CallError::NoResponders)
                    }
                    Some(message) => match wire::header(&message, wire::ERROR_CODE_HEADER) {
                        Some(code) => Err(wire::call_error(
                            code.parse().unwrap_or(0),
                            &wire::error_text(&message),
                        )),
                        None => Ok(()),
                    },
                    None => Err(CallError::Transport("the connection closed".into())),
                }
            })
            .await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(error)) => shared.failed(error),
                Err(_) => shared.failed(CallError::Timeout),
            }
            drop(settling);
        })
    }
}

/// A call's reply while its request is on the way: answered `Closed` if
/// the request is dropped unanswered (its forwarder's runtime shutting
/// down), instead of `NoReply`.
struct Answer<T: Send + 'static>(Option<Reply<T>>);

impl<T: Send + 'static> Drop for Answer<T> {
    fn drop(&mut self) {
        if let Some(reply) = self.0.take() {
            reply_fail(reply, CallError::Closed);
        }
    }
}

fn reply_fail<T: Send + 'static>(mut reply: Reply<T>, error: CallError) {
    reply.fail(error);
}

/// Answers `reply` from a NATS answer: a service error, or the value.
fn deliver<T: Send + 'static>(answer: async_nats::Message, reply: Reply<T>, decode: Decode<T>) {
    let mut reply = reply;
    if let Some(code) = wire::header(&answer, wire::ERROR_CODE_HEADER) {
        let code = code.parse().unwrap_or(0);
        reply.fail(wire::call_error(code, &wire::error_text(&answer)));
        return;
    }
    match decode(&answer.payload) {
        Ok(value) => {
            let _ = reply.send(value);
        }
        Err(why) => reply.fail(CallError::Transport(
            format!("the answer could not be decoded: {why}").into(),
        )),
    }
}

/// Tickets handed out in order, and a wait until every ticket below a
/// mark is done: how one-way messages keep their order without the
/// forwarder waiting on any of them.
#[derive(Default)]
struct Tickets {
    state: Mutex<TicketsState>,
}

#[derive(Default)]
struct TicketsState {
    next: u64,
    outstanding: BTreeSet<u64>,
    /// Tasks waiting until no ticket below their mark is outstanding.
    waiters: BTreeMap<u64, Vec<Waker>>,
}

impl TicketsState {
    /// The lowest ticket still outstanding (or the next one).
    fn low(&self) -> u64 {
        self.outstanding.first().copied().unwrap_or(self.next)
    }
}

impl Tickets {
    /// A new ticket, outstanding until [`done`](Self::done).
    fn issue(&self) -> u64 {
        let mut state = self.state.lock().expect("never poisoned");
        let ticket = state.next;
        state.next += 1;
        state.outstanding.insert(ticket);
        ticket
    }

    /// The mark of everything issued so far.
    fn mark(&self) -> u64 {
        self.state.lock().expect("never poisoned").next
    }

    /// `ticket` is done: wakes whoever now has nothing outstanding below
    /// their mark.
    fn done(&self, ticket: u64) {
        let ready = {
            let mut state = self.state.lock().expect("never poisoned");
            state.outstanding.remove(&ticket);
            let low = state.low();
            let later = state.waiters.split_off(&(low + 1));
            std::mem::replace(&mut state.waiters, later)
        };
        for waker in ready.into_values().flatten() {
            waker.wake();
        }
    }

    fn poll_below(&self, mark: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().expect("never poisoned");
        if state.low() >= mark {
            return Poll::Ready(());
        }
        let wakers = state.waiters.entry(mark).or_default();
        if !wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits until no ticket below `mark` is outstanding (sent, for the
    /// sending tickets).
    async fn sent_below(&self, mark: u64) {
        std::future::poll_fn(|cx| self.poll_below(mark, cx)).await;
    }

    /// The same wait, for the settling tickets.
    async fn settled_below(&self, mark: u64) {
        self.sent_below(mark).await;
    }
}

/// An outstanding ticket of `tickets`, done when dropped (sent, given up,
/// or its future dropped).
struct Ticket {
    shared: Arc<LinkShared>,
    which: fn(&LinkShared) -> &Tickets,
    ticket: u64,
}

impl Ticket {
    fn issue(shared: &Arc<LinkShared>, which: fn(&LinkShared) -> &Tickets) -> Self {
        Ticket {
            shared: shared.clone(),
            which,
            ticket: which(shared).issue(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        (self.which)(&self.shared).done(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(tickets: &Tickets, mark: u64) -> bool {
        let waker = futures_util::task::noop_waker();
        tickets
            .poll_below(mark, &mut Context::from_waker(&waker))
            .is_ready()
    }

    #[test]
    fn a_ticket_waits_for_every_earlier_one_done_or_given_up() {
        let tickets = Tickets::default();
        let (a, b, c) = (tickets.issue(), tickets.issue(), tickets.issue());
        assert!(poll(&tickets, a), "the first goes at once");
        assert!(!poll(&tickets, b));
        // The third given up before the second: the second still waits for
        // the first, and what comes after waits for the second.
        tickets.done(c);
        assert!(!poll(&tickets, b));
        let mark = tickets.mark();
        tickets.done(a);
        assert!(poll(&tickets, b));
        assert!(!poll(&tickets, mark));
        tickets.done(b);
        assert!(poll(&tickets, mark));
        assert!(tickets.state.lock().unwrap().waiters.is_empty());
    }

    #[test]
    fn waiting_tasks_are_woken_once_their_turn_comes() {
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let tickets = Tickets::default();
        let (a, b) = (tickets.issue(), tickets.issue());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(tickets.poll_below(b, &mut cx).is_pending());
        assert!(tickets.poll_below(b, &mut cx).is_pending(), "polled twice");
        tickets.done(b);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "not its turn yet");
        tickets.done(a);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
    }
}
