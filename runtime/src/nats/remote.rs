//! Calling: a server that another process offers, through a handle of its
//! own type ([`Remote`]) whose requests a forwarder task sends over NATS.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::wire::{self, Decode};
use super::{DEFAULT_IN_FLIGHT, DEFAULT_TIMEOUT, RemoteServer, has_room};
use crate::control::{Control, DRAIN, Ending, STOP_NOW};
use crate::error::CallError;
use crate::mailbox::{Mailbox, mailbox};
use crate::reply::{Reply, ReplySlot};
use crate::server::Handle;

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
            name: self.name,
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
            let room = has_room(&mut in_flight, capacity, cx);
            control.register(cx.waker());
            let signals = control.signals();
            if signals & STOP_NOW != 0 {
                return Poll::Ready(Next::StopNow);
            }
            if !room {
                // Woken when one of them finishes.
                return Poll::Pending;
            }
            match mailbox.poll_recv(cx) {
                Poll::Ready(Some(request)) => Poll::Ready(Next::Request(request)),
                Poll::Ready(None) => Poll::Ready(Next::Ended),
                Poll::Pending if signals & DRAIN != 0 => Poll::Ready(Next::Ended),
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
    }
}

struct LinkShared {
    client: async_nats::Client,
    /// The service's name.
    name: String,
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
                request = request.headers(wire::request_headers(own, self.level));
            }
            let subject = wire::subject(&self.shared.name, message);
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
            let subject = wire::subject(&self.shared.name, message);
            let headers = wire::request_headers(None, self.level);
            let _ = self
                .shared
                .client
                .publish_with_headers(subject, headers, payload)
                .await;
        })
    }
}

/// Answers `reply` from a NATS answer: a service error, or the value.
fn deliver<T: Send + 'static>(answer: async_nats::Message, reply: Reply<T>, decode: Decode<T>) {
    let mut reply = reply;
    if let Some(code) = wire::header(&answer, wire::ERROR_CODE_HEADER) {
        let status = wire::header(&answer, wire::ERROR_HEADER).unwrap_or_default();
        let code = code.parse().unwrap_or(0);
        reply.fail(wire::call_error(code, status));
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

