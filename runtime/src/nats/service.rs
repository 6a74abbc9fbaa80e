//! Serving: a running server offered as a NATS service ([`Service`]), a
//! task per service that takes requests from one endpoint per message and
//! answers them through the server's local handle.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::oneshot;

use super::refusal::{Joined, Joining, Wanted};
use super::wire::{self, Answering, Decode, Encode, Response};
use super::{DEFAULT_CONCURRENCY, RemoteServer, has_room, round_trip};
use crate::call::Call;
use crate::error::CallError;
use crate::message::Message;
use crate::server::{Handle, WeakHandle};
use crate::trace;

/// Requests taken from one subject at a time before the others'.
const BATCH: usize = 32;

/// The queue group of every endpoint: every process serving a name takes
/// a share of its requests.
const QUEUE_GROUP: &str = "q";

/// The verbs of the NATS services protocol, each answered by async-nats on
/// `$SRV.<verb>`, `$SRV.<verb>.<name>` and `$SRV.<verb>.<name>.<id>`.
const VERBS: [&str; 3] = ["PING", "INFO", "STATS"];

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
    /// Returns once the NATS server has the subscriptions (see [joining
    /// and leaving](super#joining-and-leaving)). On a client from
    /// [`connect`](super::connect), a subscription it refuses is an
    /// error: the user may not subscribe to one of the subjects
    /// (`<name>.<method>` in the queue group `q`, `$SRV.>` for the
    /// services protocol, `_INBOX.>`). One it refuses later ends the
    /// service, and [`Serving::ended`] says why.
    ///
    /// # Errors
    ///
    /// When NATS refuses the service: an invalid name or version, the
    /// connection is closed, or (on a client from
    /// [`connect`](super::connect)) a subscription is refused, named in
    /// the error.
    pub async fn serve<S: RemoteServer>(
        self,
        handle: &impl AsRef<Handle<S>>,
    ) -> Result<Serving, async_nats::Error> {
        wire::check_name(&self.name)?;
        let messages = S::messages();
        let subjects: Vec<String> = messages
            .iter()
            .map(|message| wire::subject(&self.name, message))
            .collect();
        // Watched before subscribing, so that no refusal comes unseen.
        let mut wanted: Vec<Wanted> = subjects
            .iter()
            .map(|subject| Wanted::exact(subject.as_str(), Some(QUEUE_GROUP)))
            .collect();
        for verb in VERBS {
            wanted.push(Wanted::exact(format!("$SRV.{verb}"), None));
            wanted.push(Wanted::exact(format!("$SRV.{verb}.{}", self.name), None));
            wanted.push(Wanted::Under(format!("$SRV.{verb}.{}", self.name)));
        }
        let joining = Joining::new(&self.client, wanted);
        let mut builder = self.client.service_builder().queue_group(QUEUE_GROUP);
        if let Some(description) = &self.description {
            builder = builder.description(description);
        }
        let service = builder.start(&self.name, &self.version).await?;
        let group = service.group(&self.name);
        let mut endpoints = Vec::with_capacity(messages.len());
        let joined = async {
            for message in &messages {
                let endpoint = group
                    .endpoint_builder()
                    .name(*message)
                    .add(*message)
                    .await?;
                endpoints.push(endpoint);
            }
            // Serving from the moment this returns: the NATS server has
            // the subscriptions, so a request from anywhere reaches them.
            joining.joined().await
        }
        .await;
        let joined = match joined {
            Ok(joined) => joined,
            Err(not_joined) => {
                // Nothing of it is left to take a request: the endpoints
                // the NATS server did accept have left when this returns
                // (if a round trip can still say so).
                for endpoint in &mut endpoints {
                    let _ = endpoint.stop().await;
                }
                if not_joined.echoes {
                    let _ = round_trip(&self.client).await;
                }
                let _ = service.stop().await;
                return Err(not_joined.error);
            }
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run_service(
            self.client.clone(),
            service,
            endpoints,
            messages,
            handle.as_ref().downgrade(),
            Until { stopped, joined },
            self.concurrency,
        ));
        Ok(Serving {
            stop: Some(stop),
            task: Some(task),
            refused: None,
            subjects,
        })
    }
}

/// A server offered as a NATS service; see [`Service::serve`]. Dropping it
/// stops the service (without waiting); [`stop`](Self::stop) waits.
#[must_use = "dropping `Serving` stops the service at once"]
pub struct Serving {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Ended>>,
    /// Why NATS refused one of its subscriptions, once the task has ended
    /// for that reason.
    refused: Option<String>,
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
    /// [`CallError::NoResponders`](crate::CallError::NoResponders). Requests that had arrived are answered
    /// first. (One that NATS routed here in the instant between leaving
    /// and the NATS server hearing of it is dropped by the client, and ends
    /// at its caller's deadline with [`CallError::Timeout`](crate::CallError::Timeout).)
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the service has ended on its own, and says why: `Ok`
    /// when its server stopped (or started draining); an error naming the
    /// subject when the NATS server refused one of its subscriptions after
    /// [`Service::serve`] returned (a permission withdrawn by a
    /// configuration reload, or on reconnecting; or a refusal that reached
    /// patchboard only after `serve` returned, see
    /// [`connect`](super::connect)). Seen only on a client from
    /// [`connect`](super::connect): on another, such a service goes on
    /// without those requests. The service has left NATS by then, and its
    /// server goes on serving local callers. Asked again, it says the same.
    ///
    /// # Errors
    ///
    /// The NATS server refused one of the service's subscriptions.
    pub async fn ended(&mut self) -> Result<(), async_nats::Error> {
        if let Some(task) = &mut self.task {
            if let Ok(Ended::Refused(reason)) = task.await {
                self.refused = Some(reason);
            }
            self.task = None;
        }
        match &self.refused {
            Some(reason) => Err(reason.clone().into()),
            None => Ok(()),
        }
    }
}

/// Why a service's task ended.
#[derive(Debug)]
enum Ended {
    /// Told to stop, or its server ended (or drains).
    Stopped,
    /// The NATS server refused one of its subscriptions: why.
    Refused(String),
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

/// Takes requests from every endpoint until told to stop, the server
/// ends, or the NATS server refuses one of the subscriptions, answering at
/// most `concurrency` calls at once.
///
/// Order: each message has a subject (a subscription) of its own, so the
/// order between subjects is lost on arrival. What is kept is the order
/// the connection delivered them in: by the time a call is in its
/// endpoint, every one-way message sent before it on the same connection
/// is in its own. A call is therefore held until every endpoint has been
/// found empty after it was taken ([`Passes`]), and the one-way messages
/// taken meanwhile are enqueued before it: a caller's casts, however
/// many, are served before its next call (read your writes across
/// subjects). A one-way message marked to be confirmed is answered once
/// enqueued.
async fn run_service<S: RemoteServer>(
    client: async_nats::Client,
    service: async_nats::service::Service,
    mut endpoints: Vec<async_nats::service::endpoint::Endpoint>,
    messages: Vec<&'static str>,
    server: WeakHandle<S>,
    until: Until,
    concurrency: usize,
) -> Ended {
    let Until {
        mut stopped,
        joined,
    } = until;
    let control = server.control.clone();
    let mut finished = pin!(control.finished());
    finished.as_mut().enable();
    let mut refused = pin!(joined.refused());
    let mut ended = Ended::Stopped;
    let mut next_first = 0;
    let mut batch = Vec::new();
    // Calls taken, each with the pass that took it, answered once every
    // endpoint has been seen empty after that pass.
    let mut held = VecDeque::new();
    let mut passes = Passes::new(endpoints.len());
    // The requests being answered, polled by this task.
    let mut in_flight = FuturesUnordered::new();
    let answers = Answers {
        client: &client,
        messages: &messages,
        handle: || {
            server
                .senders
                .upgrade()
                .map(|senders| Handle::<S>::new(senders, control.clone()))
        },
    };
    loop {
        if control.reason().is_some() || control.refuses_outside() {
            break;
        }
        let next = std::future::poll_fn(|cx| {
            let room = has_room(&mut in_flight, concurrency, cx);
            if let Poll::Ready(reason) = refused.as_mut().poll(cx) {
                ended = Ended::Refused(reason);
                return Poll::Ready(None);
            }
            if Pin::new(&mut stopped).poll(cx).is_ready() || finished.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if !room {
                // Woken when one of them finishes; NATS holds the rest.
                return Poll::Pending;
            }
            // Everything that has arrived, a bounded batch per message,
            // round robin so that a busy message does not starve the
            // others.
            passes.begin();
            let count = endpoints.len();
            for offset in 0..count {
                let at = (next_first + offset) % count;
                let mut taken = 0;
                loop {
                    if taken == BATCH {
                        break;
                    }
                    // Outside tokio's budget: a receiver out of budget
                    // answers `Pending` with messages waiting, which would
                    // pass for an endpoint found empty.
                    let endpoint = &mut endpoints[at];
                    let mut next = tokio::task::unconstrained(std::future::poll_fn(|cx| {
                        Pin::new(&mut *endpoint).poll_next(cx)
                    }));
                    match Pin::new(&mut next).poll(cx) {
                        Poll::Ready(Some(request)) => {
                            batch.push((at, request));
                            taken += 1;
                        }
                        Poll::Ready(None) => return Poll::Ready(None),
                        Poll::Pending => {
                            passes.drained(at);
                            break;
                        }
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
        answers
            .sort_in(&mut batch, &mut held, passes.current())
            .await;
        // The calls every one-way message sent before which has now been
        // enqueued.
        while let Some((taken, ..)) = held.front() {
            if !passes.all_drained_after(*taken) {
                break;
            }
            let (_, at, request) = held.pop_front().expect("a front");
            in_flight.push(answers.respond(at, request));
        }
        // The endpoints are read outside the budget: give way here when
        // it is spent, so that a flood does not hold this worker.
        tokio::task::consume_budget().await;
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
    answers
        .sort_in(&mut batch, &mut held, passes.current())
        .await;
    for (_, at, request) in held.drain(..) {
        in_flight.push(answers.respond(at, request));
    }
    while in_flight.next().await.is_some() {}
    let _ = service.stop().await;
    ended
}

/// What ends a service besides its server: its [`Serving`] stopped or
/// dropped, or the NATS server refusing one of its subscriptions.
struct Until {
    stopped: oneshot::Receiver<()>,
    joined: Joined,
}

/// What answering a request needs: the connection, the messages by
/// endpoint, and the server's handle (if it still has one).
struct Answers<'a, H> {
    client: &'a async_nats::Client,
    messages: &'a [&'static str],
    handle: H,
}

impl<S: RemoteServer, H: Fn() -> Option<Handle<S>>> Answers<'_, H> {
    /// Answers the request that arrived on endpoint `at`.
    fn respond(
        &self,
        at: usize,
        request: async_nats::service::Request,
    ) -> impl Future<Output = ()> + use<S, H> {
        respond(
            self.client.clone(),
            (self.handle)(),
            self.messages[at],
            request,
        )
    }

    /// Enqueues the one-way messages of `batch` at once, in order, as a
    /// local caller's casts are; moves its calls to `held`, as taken by
    /// pass `pass`.
    async fn sort_in(
        &self,
        batch: &mut Vec<(usize, async_nats::service::Request)>,
        held: &mut VecDeque<(u64, usize, async_nats::service::Request)>,
        pass: u64,
    ) {
        for (at, request) in batch.drain(..) {
            if wire::is_one_way(&request.message) {
                self.respond(at, request).await;
            } else {
                held.push_back((pass, at, request));
            }
        }
    }
}

/// When a held call may be answered: the passes over the endpoints, and
/// for each endpoint the last pass that found it empty.
///
/// By the time a call is in its endpoint, every one-way message sent
/// before it on the same connection is in its own endpoint (the client
/// delivers a connection's messages in order). An endpoint seen empty in
/// a later pass than the one that took the call has therefore given up
/// all of those: once every endpoint has, they are all enqueued, however
/// many there were (a pass takes at most [`BATCH`] of each).
#[derive(Debug)]
struct Passes {
    pass: u64,
    drained: Vec<u64>,
}

impl Passes {
    fn new(endpoints: usize) -> Self {
        Passes {
            pass: 0,
            drained: vec![0; endpoints],
        }
    }

    /// A new pass over the endpoints begins.
    fn begin(&mut self) {
        self.pass += 1;
    }

    fn current(&self) -> u64 {
        self.pass
    }

    /// The endpoint `at` had nothing more in this pass.
    fn drained(&mut self, at: usize) {
        self.drained[at] = self.pass;
    }

    /// Every endpoint has been found empty in a pass after `taken`.
    fn all_drained_after(&self, taken: u64) -> bool {
        self.drained.iter().all(|&pass| pass > taken)
    }
}

/// Answers one request: decodes it, calls the server, encodes the answer.
async fn respond<S: RemoteServer>(
    client: async_nats::Client,
    handle: Option<Handle<S>>,
    message: &'static str,
    request: async_nats::service::Request,
) {
    let incoming = Incoming::new(&request.message);
    let answers = incoming.waits || incoming.acks;
    let traceparent = wire::header(&request.message, trace::TRACEPARENT_HEADER);
    let response = match handle {
        Some(handle) => {
            trace::answering(message, traceparent, S::answer(&handle, message, incoming)).await
        }
        None => Response::error(&CallError::Closed),
    };
    if !answers {
        return;
    }
    let answer = match response {
        Response::Value(bytes) => bytes,
        // A one-way message taken: said with an empty answer.
        Response::None => Bytes::new(),
        Response::Error(code, text) => return answer_error(&client, &request, code, &text).await,
    };
    // A caller that has gone (or a connection that dropped) is not an
    // error of the server's; an answer over NATS's size limit is one the
    // caller must hear of.
    if let Err(error) = request.respond(Ok(answer)).await
        && error.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded
    {
        let text = format!("the answer is too large for NATS: {error}");
        answer_error(&client, &request, wire::code::TOO_LARGE, &text).await;
    }
}

/// Answers `request` with a service error: its code, and its text whole
/// in the payload (see [`wire::error_message`]).
async fn answer_error(
    client: &async_nats::Client,
    request: &async_nats::service::Request,
    code: usize,
    text: &str,
) {
    let Some(reply) = request.message.reply.clone() else {
        return;
    };
    let limit = client.server_info().max_payload;
    let (headers, payload) = wire::error_message(code, text, limit);
    let _ = client.publish_with_headers(reply, headers, payload).await;
    // `$SRV.STATS` counts an endpoint's errors only through async-nats'
    // `respond`, which sends the text in a header and no payload: it
    // sends its own copy, with the header-safe summary only, after ours.
    // The caller takes the first answer on its inbox and drops the copy.
    let status = wire::summary(text);
    let _ = request
        .respond(Err(async_nats::service::error::Error { status, code }))
        .await;
}

/// A request that arrived on a subject: its payload and its options.
/// Generated code only.
#[doc(hidden)]
#[derive(Debug)]
pub struct Incoming {
    payload: Bytes,
    level: Option<u8>,
    timeout: Option<Duration>,
    /// The caller waits for the answer (the request has a reply subject
    /// and is not one-way).
    waits: bool,
    /// A one-way message whose sender waits to hear it was taken (a
    /// confirmed cast).
    acks: bool,
}

impl Incoming {
    fn new(message: &async_nats::Message) -> Self {
        let (level, timeout) = wire::request_options(message);
        Incoming {
            payload: message.payload.clone(),
            level,
            timeout,
            waits: !wire::is_one_way(message),
            acks: message.reply.is_some() && wire::is_one_way(message),
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
            return match call.no_wait().await {
                Err(error) if self.acks => Response::error(&error),
                _ => Response::None,
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_call_waits_until_every_endpoint_has_been_empty_after_it() {
        let mut passes = Passes::new(3);
        passes.begin();
        // Pass 1 takes a call; endpoint 2 still has more (a full batch).
        passes.drained(0);
        passes.drained(1);
        let taken = passes.current();
        assert!(!passes.all_drained_after(taken));
        // Pass 2: endpoint 2 is still not empty.
        passes.begin();
        passes.drained(0);
        passes.drained(1);
        assert!(!passes.all_drained_after(taken));
        // Pass 3: it is, and so are the others.
        passes.begin();
        for at in 0..3 {
            passes.drained(at);
        }
        assert!(passes.all_drained_after(taken));
        // A call taken in pass 3 waits for pass 4.
        assert!(!passes.all_drained_after(passes.current()));
    }
}
