//! Servers across processes and machines, over NATS (the `nats` feature).
//!
//! A server written once runs in-process; with `#[server(remote)]` the same
//! server can also be offered as a NATS service ([`Service`]) and called
//! from any process that can reach the NATS system ([`Remote`]), through
//! the very handle type it has locally: calling code does not change.
//!
//! # Subjects
//!
//! A server offered under the name `bank` answers each message on
//! `bank.<method>` (`bank.deposit`), in the queue group `q`: every process
//! serving `bank` takes a share of the requests, wherever it runs. NATS's
//! own `$SRV.PING|INFO|STATS.bank` subjects describe the service to the
//! `nats micro` tooling. Operators grant per-service permissions on
//! `bank.>` (and `_INBOX.>` for callers' answers).
//!
//! # Who may call
//!
//! Bring your own configured [`async_nats::Client`]: credentials, nkeys and
//! TLS are NATS's, and patchboard adds no security of its own.
//!
//! # What a remote handle is
//!
//! [`Remote::handle`] returns the server's ordinary handle, backed by a
//! local forwarder instead of the server: every [`Call`] option means what
//! it means locally, as far as it can across a network:
//!
//! | option | remote meaning |
//! | --- | --- |
//! | `.await` | request/reply, with the remote's default timeout ([`Remote::timeout`]) as the deadline |
//! | `.timeout(d)`, `#[timeout]` | the request's deadline; the remote server skips the request if it cannot start it in time |
//! | `.priority(level)`, `#[priority]` | the level in the remote server's mailbox |
//! | `.no_wait()`, `#[cast]` | published without waiting for an answer |
//! | `.try_now()` | `Full` at once when [`Remote::capacity`] calls are already in flight |
//! | `stop()`, `drain()`, `closed()` | this process's forwarder, not the remote server |
//!
//! Errors only a network has: [`CallError::NoResponders`] at once when
//! nothing serves the subject, [`CallError::Transport`] when the request or
//! its answer is refused or lost on the way (too large for the NATS
//! server's `max_payload`, undecodable, the connection gone). A NATS server
//! reports a permission violation to the connection, not to the request:
//! such a call fails with [`CallError::Timeout`] at its deadline.
//!
//! [`Call`]: crate::Call

mod wire;

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::service::ServiceExt;
use async_nats::{HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::call::Call;
use crate::control::{Control, Ending};
use crate::error::CallError;
use crate::mailbox::{Mailbox, mailbox};
use crate::message::Message;
use crate::reply::{Reply, ReplySlot};
use crate::server::{Handle, Server, WeakHandle};
use crate::subscription::{Subscription, subscription};

pub use wire::VERSION;

/// The NATS client this module is built on, for a client of the same
/// version: `patchboard::nats::async_nats::connect(..)`.
pub use async_nats;

/// The remote's default deadline for a call without a timeout of its own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls a remote handle has in flight at once, by default: a network
/// round trip is long, so many more than a local mailbox holds.
pub const DEFAULT_IN_FLIGHT: usize = 256;

/// Requests a serving process works on at once, by default.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Requests taken from one subject at a time before the others'.
const BATCH: usize = 32;

/// Header: the call's remaining time, in milliseconds.
const TIMEOUT_HEADER: &str = "Patchboard-Timeout-Ms";
/// Header: the call's priority level.
const PRIORITY_HEADER: &str = "Patchboard-Priority";
/// Header of the NATS services protocol: the error's code.
const ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";
/// Header of the NATS services protocol: the error's text.
const ERROR_HEADER: &str = "Nats-Service-Error";

/// A server that can cross the wire: implemented by `#[server(remote)]`.
/// Not for hand-written impls: its methods may change in any release.
pub trait RemoteServer: Server<Request: Send> {
    /// The messages, as named on the subjects (`deposit`).
    #[doc(hidden)]
    fn messages() -> Vec<&'static str>;

    /// Sends `request` to the remote server through `link`.
    #[doc(hidden)]
    fn forward(request: Self::Request, link: Link) -> Forwarded;

    /// Serves one request that arrived on the subject of `message`.
    #[doc(hidden)]
    fn answer(handle: &Handle<Self>, message: &str, incoming: Incoming) -> Answering;
}

/// A request on its way out. Generated code only.
#[doc(hidden)]
pub struct Forwarded {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Published in the forwarder's own order (a one-way message: its
    /// future ends once it is published), instead of in a task of its own.
    in_order: bool,
}

impl Forwarded {
    fn in_order(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Forwarded {
            future: Box::pin(future),
            in_order: true,
        }
    }

    fn waiting(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Forwarded {
            future: Box::pin(future),
            in_order: false,
        }
    }

    fn nothing() -> Self {
        Self::in_order(async {})
    }
}

impl fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarded")
            .field("in_order", &self.in_order)
            .finish()
    }
}

/// Encodes a value for the wire. Generated code only.
#[doc(hidden)]
pub type Encode<T> = fn(&T) -> Result<Bytes, String>;

/// Decodes a value from the wire. Generated code only.
#[doc(hidden)]
pub type Decode<T> = fn(&[u8]) -> Result<T, String>;

/// Picks the wire functions of a type: serde's if it implements serde's
/// traits ([`ViaSerde`], found first by method resolution), else stand-ins
/// ([`NotWire`]) that are never run, because the `Wire` check that
/// generated code makes on every type has then already failed the build.
/// This keeps a type that cannot cross the wire at one error, on the
/// type. Generated code only.
#[doc(hidden)]
pub struct WireTag<T>(std::marker::PhantomData<fn() -> T>);

impl<T> WireTag<T> {
    /// The tag of `T`.
    pub fn new() -> Self {
        WireTag(std::marker::PhantomData)
    }
}

impl<T> Default for WireTag<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for WireTag<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireTag")
    }
}

/// [`WireTag`]'s serde functions. Generated code only.
#[doc(hidden)]
pub trait ViaSerde<T> {
    /// Encodes with serde.
    fn encoder(&self) -> Encode<T>;
    /// Decodes with serde.
    fn decoder(&self) -> Decode<T>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for WireTag<T> {
    fn encoder(&self) -> Encode<T> {
        |value| wire::encode(value)
    }
    fn decoder(&self) -> Decode<T> {
        |bytes| wire::decode(bytes)
    }
}

/// [`WireTag`]'s stand-ins. Generated code only.
#[doc(hidden)]
pub trait NotWire<T> {
    /// Never run.
    fn encoder(&self) -> Encode<T>;
    /// Never run.
    fn decoder(&self) -> Decode<T>;
}

impl<T> NotWire<T> for &WireTag<T> {
    fn encoder(&self) -> Encode<T> {
        |_| Err("this type does not implement serde's `Serialize`".to_owned())
    }
    fn decoder(&self) -> Decode<T> {
        |_| Err("this type does not implement serde's `Deserialize`".to_owned())
    }
}

/// A request being answered. Generated code only.
#[doc(hidden)]
pub type Answering = Pin<Box<dyn Future<Output = Response> + Send>>;

// ---------------------------------------------------------------- serving

/// Offers a running server (plain or pool) as a NATS service.
///
/// ```no_run
/// # use patchboard::server;
/// # #[derive(Default)] struct Account { balance: u64 }
/// # #[server(remote)]
/// # impl Account { fn deposit(&mut self, amount: u64) -> u64 { self.balance += amount; self.balance } }
/// # use patchboard_runtime::nats::async_nats;
/// # async fn run(client: async_nats::Client) -> Result<(), async_nats::Error> {
/// use patchboard::Server;
/// use patchboard_runtime::nats::Service; // `patchboard::nats::Service`
///
/// let account = Account::default().spawn();
/// let serving = Service::new(&client, "bank").serve(&account).await?;
/// // ... `bank.deposit` is answered by `account` until:
/// serving.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Service {
    client: async_nats::Client,
    name: String,
    version: String,
    description: Option<String>,
    concurrency: usize,
}

impl Service {
    /// A service named `name` (letters, digits, `-` and `_`), version
    /// `0.1.0`, on `client`.
    pub fn new(client: &async_nats::Client, name: impl Into<String>) -> Self {
        Service {
            client: client.clone(),
            name: name.into(),
            version: "0.1.0".to_owned(),
            description: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// The version reported by `$SRV.INFO` (semver, e.g. `1.2.0`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The description reported by `$SRV.INFO`.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// At most `requests` requests of this process at once (waiting for
    /// the server's mailbox or being served; default
    /// [`DEFAULT_CONCURRENCY`]); NATS holds the rest.
    pub fn concurrency(mut self, requests: usize) -> Self {
        self.concurrency = requests.max(1);
        self
    }

    /// Starts answering the server's subjects (`<name>.<method>`), in the
    /// queue group shared by every process that serves the same name.
    ///
    /// The service ends, and this process leaves the group, when the
    /// returned [`Serving`] is stopped or dropped, or when the server
    /// stops (or starts draining); the server itself keeps serving local
    /// callers until then, and is not kept alive by the service.
    ///
    /// # Errors
    ///
    /// When NATS refuses the service: an invalid name or version, or the
    /// connection is closed.
    pub async fn serve<S: RemoteServer>(
        self,
        handle: &impl AsRef<Handle<S>>,
    ) -> Result<Serving, async_nats::Error> {
        let mut builder = self.client.service_builder();
        if let Some(description) = &self.description {
            builder = builder.description(description);
        }
        let service = builder.start(&self.name, &self.version).await?;
        let group = service.group(&self.name);
        let messages = S::messages();
        let mut endpoints = Vec::with_capacity(messages.len());
        let mut subjects = Vec::with_capacity(messages.len());
        for message in &messages {
            let endpoint = group
                .endpoint_builder()
                .name(*message)
                .add(*message)
                .await?;
            subjects.push(format!("{}.{message}", self.name));
            endpoints.push(endpoint);
        }
        // Serving from the moment this returns: the NATS server has the
        // subscriptions, so a request from anywhere reaches them.
        round_trip(&self.client).await?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run_service(
            self.client.clone(),
            service,
            endpoints,
            messages,
            handle.as_ref().downgrade(),
            stopped,
            self.concurrency,
        ));
        Ok(Serving {
            stop: Some(stop),
            task: Some(task),
            subjects,
        })
    }
}

/// A server offered as a NATS service; see [`Service::serve`]. Dropping it
/// stops the service (without waiting); [`stop`](Self::stop) waits.
#[must_use = "dropping `Serving` stops the service at once"]
pub struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    subjects: Vec<String>,
}

impl Serving {
    /// The subjects answered, one per message (`bank.deposit`).
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// Stops answering and waits until the NATS server has seen this
    /// process leave: a request sent after `stop` returns goes to another
    /// process serving the same name, or fails at once with
    /// [`CallError::NoResponders`]. Requests that had arrived are answered
    /// first. (One that NATS routed here in the instant between leaving
    /// and the NATS server hearing of it is dropped by the client, and ends
    /// at its caller's deadline with [`CallError::Timeout`].)
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the service has ended on its own: its server stopped.
    pub async fn ended(&mut self) {
        if let Some(task) = &mut self.task {
            let _ = task.await;
            self.task = None;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("subjects", &self.subjects)
            .finish()
    }
}

/// Takes requests from every endpoint until told to stop or the server
/// ends, answering at most `concurrency` calls at once.
///
/// Order: each message has a subject (a subscription) of its own, so the
/// order between subjects is lost on arrival. What is kept is the order
/// the connection delivered them in: by the time a call is in its
/// endpoint, every one-way message sent before it on the same connection
/// is in its own. A call is therefore held for one more pass over every
/// endpoint, and the one-way messages that pass takes are enqueued before
/// it: a caller's casts are served before its next call (read your
/// writes across subjects).
async fn run_service<S: RemoteServer>(
    client: async_nats::Client,
    service: async_nats::service::Service,
    mut endpoints: Vec<async_nats::service::endpoint::Endpoint>,
    messages: Vec<&'static str>,
    server: WeakHandle<S>,
    mut stop: oneshot::Receiver<()>,
    concurrency: usize,
) {
    let control = server.control.clone();
    let mut finished = pin!(control.finished());
    finished.as_mut().enable();
    let mut next_first = 0;
    let mut batch = Vec::new();
    // Calls taken in the last pass, answered after the next one.
    let mut held = Vec::new();
    // The requests being answered, polled by this task.
    let mut in_flight = FuturesUnordered::new();
    let handle = || {
        server
            .senders
            .upgrade()
            .map(|senders| Handle::<S>::new(senders, control.clone()))
    };
    loop {
        if control.reason().is_some() || control.refuses_outside() {
            break;
        }
        let next = std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(())) = in_flight.poll_next_unpin(cx) {}
            if Pin::new(&mut stop).poll(cx).is_ready() || finished.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if in_flight.len() >= concurrency {
                // Woken when one of them finishes; NATS holds the rest.
                return Poll::Pending;
            }
            // Everything that has arrived, a bounded batch per message,
            // round robin so that a busy message does not starve the
            // others.
            let count = endpoints.len();
            for offset in 0..count {
                let at = (next_first + offset) % count;
                for _ in 0..BATCH {
                    match Pin::new(&mut endpoints[at]).poll_next(cx) {
                        Poll::Ready(Some(request)) => batch.push((at, request)),
                        Poll::Ready(None) => return Poll::Ready(None),
                        Poll::Pending => break,
                    }
                }
            }
            next_first = (next_first + 1) % count.max(1);
            if batch.is_empty() && held.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(Some(()))
            }
        })
        .await;
        if next.is_none() {
            break;
        }
        let previous = std::mem::take(&mut held);
        sort_in(&mut batch, &mut held, &messages, &handle).await;
        // The calls of the pass before: every one-way message sent
        // before them has now been enqueued.
        for (at, request) in previous {
            in_flight.push(respond(handle(), messages[at], request));
        }
    }
    // Leave the group, and wait until the NATS server has seen it: from
    // then on a request goes to another process of the group, or finds
    // no responders.
    for endpoint in &mut endpoints {
        let _ = endpoint.stop().await;
    }
    let _ = round_trip(&client).await;
    // What had arrived by then is answered, one-way messages first.
    for (at, endpoint) in endpoints.iter_mut().enumerate() {
        while let Some(request) = endpoint.next().await {
            batch.push((at, request));
        }
    }
    sort_in(&mut batch, &mut held, &messages, &handle).await;
    for (at, request) in held.drain(..) {
        in_flight.push(respond(handle(), messages[at], request));
    }
    while in_flight.next().await.is_some() {}
    let _ = service.stop().await;
}

/// Enqueues the one-way messages of `batch` at once, in order, as a local
/// caller's casts are; moves its calls to `held`.
async fn sort_in<S: RemoteServer>(
    batch: &mut Vec<(usize, async_nats::service::Request)>,
    held: &mut Vec<(usize, async_nats::service::Request)>,
    messages: &[&'static str],
    handle: &impl Fn() -> Option<Handle<S>>,
) {
    for (at, request) in batch.drain(..) {
        if request.message.reply.is_none() {
            respond(handle(), messages[at], request).await;
        } else {
            held.push((at, request));
        }
    }
}

/// Returns once the NATS server has processed everything this connection
/// sent before: a message to ourselves comes back only after it. Bounded
/// by the client's request timeout, so a lost connection cannot hold it.
async fn round_trip(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    client.flush().await?;
    let limit = client.timeout().unwrap_or(DEFAULT_TIMEOUT);
    tokio::time::timeout(limit, echo.next()).await?;
    Ok(())
}

/// Answers one request: decodes it, calls the server, encodes the answer.
async fn respond<S: RemoteServer>(
    handle: Option<Handle<S>>,
    message: &'static str,
    request: async_nats::service::Request,
) {
    let incoming = Incoming::new(&request.message);
    let waits = incoming.waits;
    let response = match handle {
        Some(handle) => S::answer(&handle, message, incoming).await,
        None => Response::error(&CallError::Closed),
    };
    if !waits {
        return;
    }
    let answer = match response {
        Response::Value(bytes) => Ok(bytes),
        Response::Error(code, status) => Err(async_nats::service::error::Error { status, code }),
        Response::None => return,
    };
    // A caller that has gone (or a connection that dropped) is not an
    // error of the server's; an answer over NATS's size limit is one the
    // caller must hear of.
    if let Err(error) = request.respond(answer).await
        && error.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded
    {
        let error = async_nats::service::error::Error {
            status: format!("the answer is too large for NATS: {error}"),
            code: wire::code::TOO_LARGE,
        };
        let _ = request.respond(Err(error)).await;
    }
}

/// A request that arrived on a subject: its payload and its options.
/// Generated code only.
#[doc(hidden)]
#[derive(Debug)]
pub struct Incoming {
    payload: Bytes,
    level: Option<u8>,
    timeout: Option<Duration>,
    /// The caller waits for the answer (the request has a reply subject).
    waits: bool,
}

impl Incoming {
    fn new(message: &async_nats::Message) -> Self {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        Incoming {
            payload: message.payload.clone(),
            level: header(PRIORITY_HEADER).and_then(|level| level.parse().ok()),
            timeout: header(TIMEOUT_HEADER)
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis),
            waits: message.reply.is_some(),
        }
    }

    /// The request's arguments, or the error answer saying why they are
    /// not readable.
    pub fn decode<A>(&self, decode: Decode<A>) -> Result<A, Response> {
        decode(&self.payload).map_err(|why| Response::Error(wire::code::BAD_REQUEST, why))
    }

    /// Makes `call` with the request's options and encodes its answer.
    pub async fn finish<R: Message, T: 'static>(
        self,
        call: Call<'_, R, T>,
        encode: Encode<T>,
    ) -> Response {
        let mut call = call;
        if let Some(level) = self.level {
            call = call.priority(level);
        }
        if let Some(timeout) = self.timeout {
            call = call.timeout(timeout);
        }
        if !self.waits {
            let _ = call.no_wait().await;
            return Response::None;
        }
        match call.await {
            Ok(value) => match encode(&value) {
                Ok(bytes) => Response::Value(bytes),
                Err(why) => Response::Error(wire::code::BAD_ANSWER, why),
            },
            Err(error) => Response::error(&error),
        }
    }

    /// The answer to a message this server does not have (a peer of a
    /// newer version called it).
    pub fn unknown(self, message: &str) -> Answering {
        let why = format!("the remote server has no message `{message}`");
        Box::pin(async move { Response::Error(wire::code::UNKNOWN_MESSAGE, why) })
    }
}

/// The answer to a remote request. Generated code only.
#[doc(hidden)]
#[derive(Debug)]
pub enum Response {
    /// The encoded answer.
    Value(Bytes),
    /// A service error: code and text.
    Error(usize, String),
    /// No answer: the caller does not wait.
    None,
}

impl Response {
    fn error(error: &CallError) -> Self {
        let (code, status) = wire::error_code(error);
        Response::Error(code, status)
    }
}

// ---------------------------------------------------------------- calling

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
}

impl Remote {
    /// The server offered as `name` (see [`Service::new`]), through
    /// `client`.
    pub fn new(client: &async_nats::Client, name: impl Into<String>) -> Self {
        Remote {
            client: client.clone(),
            name: name.into(),
            timeout: DEFAULT_TIMEOUT,
            capacity: DEFAULT_IN_FLIGHT,
        }
    }

    /// The deadline of calls without a timeout of their own (default
    /// [`DEFAULT_TIMEOUT`]): a remote call always has one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Calls in flight at once from this handle and its clones (default
    /// [`DEFAULT_IN_FLIGHT`]), and as many again queued behind them;
    /// further calls wait for room, or fail with `Full` under `try_now`.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, crate::MAX_CAPACITY);
        self
    }

    /// The handle. Its forwarder runs on the current tokio runtime until
    /// every clone of the handle is dropped (or it is stopped).
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
            prefix: format!("{}.", self.name),
            timeout: self.timeout,
        });
        tokio::spawn(run_forwarder::<S>(mailbox, control, link, self.capacity));
        S::Handle::from(handle)
    }
}

/// Moves requests from the handle's mailbox onto NATS, each in a task of
/// its own, until the mailbox closes or the forwarder is stopped.
async fn run_forwarder<S: RemoteServer>(
    mut mailbox: Mailbox<S::Request>,
    control: Arc<Control>,
    link: Arc<LinkShared>,
    capacity: usize,
) {
    enum Next<R> {
        Request(R),
        StopNow,
        Ended,
    }
    // The calls waiting for their answers, polled by this task (a task
    // each would cost a spawn per call).
    let mut in_flight = FuturesUnordered::new();
    loop {
        let next = std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(())) = in_flight.poll_next_unpin(cx) {}
            control.register(cx.waker());
            let signals = control.signals();
            if signals.stops_now() {
                return Poll::Ready(Next::StopNow);
            }
            if in_flight.len() >= capacity {
                // Woken when one of them finishes.
                return Poll::Pending;
            }
            match mailbox.poll_recv(cx) {
                Poll::Ready(Some(request)) => Poll::Ready(Next::Request(request)),
                Poll::Ready(None) => Poll::Ready(Next::Ended),
                Poll::Pending if signals.draining() => Poll::Ready(Next::Ended),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match next {
            Next::Request(request) => {
                let level = mailbox.last_level();
                let forwarded = S::forward(
                    request,
                    Link {
                        shared: link.clone(),
                        level,
                    },
                );
                // One-way messages keep their order (a caller's casts
                // arrive as sent); a call waits for its answer among the
                // others.
                if forwarded.in_order {
                    forwarded.future.await;
                } else {
                    in_flight.push(forwarded.future);
                }
            }
            Next::StopNow => {
                mailbox.close_and_drain(&CallError::Closed);
                break;
            }
            Next::Ended => break,
        }
    }
    mailbox.close_and_drain(&CallError::Closed);
    // Calls already sent still get their answers.
    while in_flight.next().await.is_some() {}
    if let Some(reason) = control.replica_ended(Ending::Drained) {
        control.finish(reason);
        control.announce();
    }
}

struct LinkShared {
    client: async_nats::Client,
    /// `<name>.`
    prefix: String,
    timeout: Duration,
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
            .field("prefix", &self.shared.prefix)
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
        let payload = match payload {
            Ok(payload) => payload,
            Err(why) => {
                reply.fail(CallError::Transport(
                    format!("the request could not be encoded: {why}").into(),
                ));
                return Forwarded::nothing();
            }
        };
        if let Err(error) = self.fits(&payload) {
            reply.fail(error);
            return Forwarded::nothing();
        }
        if reply.is_detached() {
            drop(reply);
            return self.cast_payload(message, payload);
        }
        Forwarded::waiting(async move {
            if reply.is_closed() {
                return; // The caller gave up while the request queued here.
            }
            // The call's own deadline travels with it, so that the remote
            // server skips it if it cannot start in time; without one, the
            // remote's default bounds the wait here.
            let own = reply
                .deadline
                .map(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()));
            let mut request = async_nats::Request::new()
                .payload(payload)
                .timeout(Some(own.unwrap_or(self.shared.timeout)));
            if own.is_some() || self.level > 0 {
                request = request.headers(self.headers(own));
            }
            let subject = format!("{}{message}", self.shared.prefix);
            let sent = self.shared.client.send_request(subject, request);
            let result = tokio::select! {
                result = sent => result,
                () = reply.closed() => return,
            };
            match result {
                Ok(answer) => deliver(answer, reply, decode),
                Err(error) => reply.fail(match error.kind() {
                    RequestErrorKind::NoResponders => CallError::NoResponders,
                    RequestErrorKind::TimedOut => CallError::Timeout,
                    RequestErrorKind::Other => CallError::Transport(error.to_string().into()),
                }),
            }
        })
    }

    /// A one-way message (`#[cast]`) of encoded arguments.
    pub fn cast(self, message: &'static str, payload: Result<Bytes, String>) -> Forwarded {
        match payload {
            Ok(payload) => self.cast_payload(message, payload),
            // Nobody waits to be told; the message is lost, as a cast to
            // a stopped server is.
            Err(_) => Forwarded::nothing(),
        }
    }

    /// `Transport` for a payload over the NATS server's `max_payload`
    /// (which NATS would answer by closing the connection).
    fn fits(&self, payload: &Bytes) -> Result<(), CallError> {
        // Every NATS server takes 1 KiB; only a larger payload is checked.
        if payload.len() <= 1024 {
            return Ok(());
        }
        let limit = self.shared.client.server_info().max_payload;
        if payload.len() > limit {
            return Err(CallError::Transport(
                format!(
                    "the request is {} bytes, over the NATS server's max_payload of {limit}",
                    payload.len()
                )
                .into(),
            ));
        }
        Ok(())
    }

    fn cast_payload(self, message: &'static str, payload: Bytes) -> Forwarded {
        Forwarded::in_order(async move {
            let subject = format!("{}{message}", self.shared.prefix);
            let headers = self.headers(None);
            let _ = self
                .shared
                .client
                .publish_with_headers(subject, headers, payload)
                .await;
        })
    }

    fn headers(&self, timeout: Option<Duration>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(timeout) = timeout {
            headers.insert(TIMEOUT_HEADER, timeout.as_millis().to_string().as_str());
        }
        if self.level > 0 {
            headers.insert(PRIORITY_HEADER, self.level.to_string().as_str());
        }
        headers
    }
}

/// Answers `reply` from a NATS answer: a service error, or the value.
fn deliver<T: Send + 'static>(answer: async_nats::Message, reply: Reply<T>, decode: Decode<T>) {
    let mut reply = reply;
    let header = |name: &str| {
        answer
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    if let Some(code) = header(ERROR_CODE_HEADER) {
        let status = header(ERROR_HEADER).unwrap_or_default();
        let code = code.parse().unwrap_or(0);
        reply.fail(wire::call_error(code, &status));
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

// ---------------------------------------------------------- subscriptions

/// Publishes every value of `subscription` to `subject` until it ends:
/// how a server's [`Subscriber`](crate::Subscriber) reaches other
/// processes. Publishing never waits for remote subscribers (NATS drops
/// values for a subscriber too slow to take them).
pub fn publish<T>(
    client: &async_nats::Client,
    subject: impl Into<String>,
    mut subscription: Subscription<T>,
) -> tokio::task::JoinHandle<()>
where
    T: Serialize + Send + 'static,
{
    let client = client.clone();
    let subject: async_nats::Subject = subject.into().into();
    tokio::spawn(async move {
        while let Some(value) = subscription.recv().await {
            if let Ok(payload) = wire::encode(&value) {
                let _ = client.publish(subject.clone(), payload).await;
            }
        }
    })
}

/// A typed [`Subscription`] of what is published to `subject` (by
/// [`publish`]), buffering up to `capacity` values: values that arrive
/// while it is full, or that do not decode as a `T`, are dropped and
/// counted in [`Subscription::missed`]. Dropping it unsubscribes.
///
/// Returns once the NATS server has the subscription: a value published
/// after that, from any connection, reaches it.
///
/// # Errors
///
/// When NATS refuses the subscription (the connection is closed), or does
/// not confirm it within the client's request timeout.
pub async fn subscribe<T>(
    client: &async_nats::Client,
    subject: impl Into<String>,
    capacity: usize,
) -> Result<Subscription<T>, async_nats::Error>
where
    T: DeserializeOwned + Send + 'static,
{
    let mut incoming = client.subscribe(subject.into()).await?;
    round_trip(client).await?;
    let (subscriber, subscription) = subscription(capacity);
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)) => message,
                () = subscriber.closed() => break,
            };
            let Some(message) = message else { break };
            let delivery = match wire::decode::<T>(&message.payload) {
                Ok(value) => subscriber.send(value),
                Err(_) => subscriber.count_missed(),
            };
            if !delivery.is_connected() {
                break;
            }
        }
        let _ = incoming.unsubscribe().await;
    });
    Ok(subscription)
}
