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
//! `nats micro` tooling. Operators grant per-service permissions: a
//! serving user subscribes to `bank.>` (in the queue group `q`), `$SRV.>`
//! and `_INBOX.>`; a calling user publishes to `bank.>` and subscribes to
//! `_INBOX.>` for the answers.
//!
//! # Who may call
//!
//! Bring your own configured [`async_nats::Client`]: credentials, nkeys and
//! TLS are NATS's, and patchboard adds no security of its own. Connect it
//! through [`connect`] (any `ConnectOptions`) to have the subscriptions
//! the NATS server refuses reported: see [joining and
//! leaving](#joining-and-leaving).
//!
//! # What a remote handle is
//!
//! [`Remote::handle`] returns the server's ordinary handle, backed by a
//! local forwarder instead of the server: every [`Call`] option means what
//! it means locally, as far as it can across a network:
//!
//! | option | remote meaning |
//! | --- | --- |
//! | `.await` | request/reply, with the remote's default timeout ([`Remote::timeout`]) as the deadline, in this process only: the remote server is not told of it |
//! | `.timeout(d)`, `#[timeout]` | the request's deadline; the remote server skips the request if it cannot start it in time |
//! | `.priority(level)`, `#[priority]` | the level in the remote server's mailbox |
//! | `.no_wait()`, `#[cast]` | published without waiting for an answer, in order; see [delivery](#delivery) |
//! | `.try_now()` | `Full` at once when [`Remote::capacity`] requests are already in flight and as many queued |
//! | `stop()`, `drain()`, `closed()` | this process's forwarder, not the remote server |
//!
//! Every call ends by its deadline, whatever the connection and its
//! buffers are doing (NATS unreachable, async-nats' send buffer full): the
//! forwarder never waits on the network itself, every request is a future
//! with a deadline. A remote handle whose runtime has shut down answers
//! [`CallError::Closed`](crate::CallError::Closed) at once, as a local one does.
//!
//! Errors only a network has: [`CallError::NoResponders`](crate::CallError::NoResponders) at once when
//! nothing serves the subject, [`CallError::Transport`](crate::CallError::Transport) when the request or
//! its answer is refused or lost on the way (over the NATS server's
//! `max_payload`, counted as NATS counts it, headers included; undecodable;
//! the connection gone; a service name NATS cannot carry, checked before
//! anything is sent). Error text (a panic message, `StartFailed`'s reason)
//! travels whole in the answer's payload, whatever its bytes and length,
//! with a one-line summary in the `Nats-Service-Error` header for the NATS
//! tooling. A NATS server reports a permission violation to the
//! connection, not to the request: a call it refuses fails with
//! [`CallError::Timeout`](crate::CallError::Timeout) at its deadline. A subscription it refuses (a
//! user without subscribe permission) is an error from [`Service::serve`]
//! or [`subscribe`] on a client from [`connect`], naming the subject; on
//! another client they return `Ok`, and calls to such a service fail
//! with `NoResponders`.
//!
//! # Delivery
//!
//! NATS core delivers each message at most once, and so does this module;
//! nothing is stored or sent again.
//!
//! - **A call** is answered exactly once: with the server's answer, or an
//!   error. A call that failed with `Timeout` may still have run, once (it
//!   had started when its deadline passed, or its answer was lost); a call
//!   that failed with `NoResponders` or `Transport` before it was sent did
//!   not run. A call with a timeout of its own whose deadline passed
//!   before the remote server could start it is skipped; one with only
//!   the remote default is not (the server is not told of it).
//! - **A one-way message** (`#[cast]`, `.no_wait()`) returns `Ok` once the
//!   remote handle has it, before it is sent: sent while nobody serves, it
//!   is lost; if it cannot be sent by the remote default deadline, it is
//!   dropped. [`confirm`] reports such failures, and with
//!   [`Remote::confirm_casts`] it also waits until the serving process has
//!   taken each message into the server's mailbox (or reports
//!   [`CallError::NoResponders`](crate::CallError::NoResponders)).
//! - **Order**: one handle's one-way messages are sent in the order given
//!   (one that fails leaves a gap, never a swap), and a call is sent after
//!   every one-way message given before it; a serving process enqueues
//!   them in that order, so a call sees every one-way message sent before
//!   it on the same handle (read your writes), however many. Across
//!   processes of one name (a pool across machines), each message goes to
//!   one of them: order holds per serving process.
//!
//! # Joining and leaving
//!
//! [`Service::serve`], [`Serving::stop`] and [`subscribe`] return once the
//! NATS server the client is connected to has seen the subscription come or
//! go (a round trip, not just a flush). In a NATS cluster that is all they
//! can confirm: the other nodes learn of it over the cluster's routes a
//! moment later (typically milliseconds). So a caller connected to the same
//! node is served from the moment `serve` returns, and finds another
//! process or `NoResponders` from the moment `stop` returns; a caller
//! connected to another node may, for that moment, still see
//! `NoResponders` after `serve`, see `Timeout` after `stop` (its request
//! was routed to the process that left), and a value published on another
//! node right after `subscribe` may be lost.
//!
//! **A refused subscription** is an error from the call that asked for
//! it, on a client from [`connect`]: the NATS server answers one it
//! refuses with a line of its own (`-ERR 'Permissions Violation for
//! Subscription to ...'`), and nothing else. async-nats hands that line
//! only to the connection's event callback, on an events task of its own
//! ([nats.rs#1284](https://github.com/nats-io/nats.rs/issues/1284)):
//! [`connect`] installs patchboard's, which tells each `serve` or
//! `subscribe` on that connection of a refusal of one of its subjects
//! (registered before it subscribes). By the time the round trip has come
//! back, the line is queued for the events task; `serve` and `subscribe`
//! then give that task up to 20 ms to hand it over (a wait only a call
//! that was not refused pays out in full). What remains:
//!
//! - The events task is a task like any other: on a multi-threaded
//!   runtime whose every worker is busy, or whose worker thread the
//!   operating system does not run, for those 20 ms, a refusal is seen
//!   after `serve` or `subscribe` returned `Ok`. It is not lost: it ends
//!   the service ([`Serving::ended`] says why) or the subscription (its
//!   `recv` returns `None`), as a subscription refused later does (a
//!   permission withdrawn by a configuration reload, or on reconnecting).
//!   On a `current_thread` runtime the events task, woken first, runs
//!   before the call resumes.
//! - async-nats drops events that find 128 others waiting for its events
//!   task: a refusal lost that way is not seen at all.
//! - A refusal names a subject (and queue group), not a subscription: on
//!   one connection, it is told to every `serve` and `subscribe` watching
//!   that subject, as the NATS server would refuse any of them. Other
//!   connections, even of the same process and user, are not told.
//! - Without the round trip's echo (the user may not subscribe to
//!   `_INBOX.>`), `serve` fails at once but cannot confirm that the
//!   endpoints the NATS server accepted have left when it returns.
//!
//! [`Call`]: crate::Call
//! [`CallError::Closed`]: crate::CallError::Closed
//! [`CallError::NoResponders`]: crate::CallError::NoResponders
//! [`CallError::Timeout`]: crate::CallError::Timeout
//! [`CallError::Transport`]: crate::CallError::Transport
//!
//! # Where the code is
//!
//! As async-nats splits `service/`: `wire` holds the bytes on the subjects
//! (payloads, headers, subjects, error codes), `service` serves (a task per
//! [`Service`]), `remote` calls (a forwarder per [`Remote`] handle),
//! `pubsub` carries subscriptions ([`publish`], [`subscribe`]), and
//! `refusal`, below `service` and `pubsub`, watches what the NATS server
//! refuses on a connection from [`connect`]. This file keeps what they
//! share: the trait generated code implements, the defaults, the round
//! trip that confirms a subscription, and the in-flight limit.

mod wire;

mod refusal;

mod service;

mod remote;

mod pubsub;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::server::{Handle, Server};

pub use pubsub::{publish, subscribe};
pub use refusal::{connect, connect_with};
pub use remote::{Forwarded, Link, Remote, confirm};
pub use service::{Incoming, Service, Serving};
pub use wire::{Answering, Decode, Encode, NotWire, Response, VERSION, ViaSerde, WireTag};

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

/// Polls the work in flight of a task (the service's answers, the
/// forwarder's calls: polled by the task that started them, as a task
/// each would cost a spawn per request), finishing what is done, and tells
/// whether there is room for one more under `limit`. When there is not,
/// the task is woken as one of them finishes.
fn has_room<F: Future<Output = ()>>(
    in_flight: &mut FuturesUnordered<F>,
    limit: usize,
    cx: &mut Context<'_>,
) -> bool {
    while let Poll::Ready(Some(())) = in_flight.poll_next_unpin(cx) {}
    in_flight.len() < limit
}

/// Returns once the NATS server has processed everything this connection
/// sent before: a message to ourselves comes back only after it. Bounded
/// by the client's request timeout, so a lost connection cannot hold it.
async fn round_trip(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    round_trip_via(client, client.new_inbox()).await
}

/// [`round_trip`] through `inbox`, a subject of the client's own.
async fn round_trip_via(
    client: &async_nats::Client,
    inbox: String,
) -> Result<(), async_nats::Error> {
    let mut echo = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, Bytes::new()).await?;
    client.flush().await?;
    let limit = client.timeout().unwrap_or(DEFAULT_TIMEOUT);
    tokio::time::timeout(limit, echo.next()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_counted_after_what_has_finished() {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut in_flight = FuturesUnordered::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        in_flight.push(futures_util::future::Either::Left(async {
            let _ = rx.await;
        }));
        in_flight.push(futures_util::future::Either::Right(std::future::ready(())));
        // The ready one finishes while room is counted: one left, of two.
        assert!(has_room(&mut in_flight, 2, &mut cx));
        assert_eq!(in_flight.len(), 1);
        assert!(!has_room(&mut in_flight, 1, &mut cx));
        tx.send(()).unwrap();
        assert!(has_room(&mut in_flight, 1, &mut cx));
        assert!(in_flight.is_empty());
    }
}
