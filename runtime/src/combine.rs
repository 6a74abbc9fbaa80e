//! The patterns the essays ask for, over calls and streams of any server:
//! the first answer among replicas, a bounded parallel map, and fan-in.
//!
//! Each keeps its in-flight futures in a `Vec` and polls every one of them
//! when any wakes it: meant for the tens of parallel calls these patterns
//! use (replicas, a worker pool's size), not for thousands at once.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::error::CallError;

/// The first response among redundant calls: resolves to the first `Ok`,
/// or, if every call fails or `deadline` passes first, to every call's
/// error in the order the calls were given (a call still waiting at the
/// deadline counts as [`CallError::Timeout`], turned into `E`).
///
/// The other calls are dropped as soon as there is an answer, so their
/// callers have given up: a request still queued is skipped, and a
/// `#[cancellable]` handler stops at its next await (the losers' next
/// callers wait for nothing). Calls are anything awaitable that resolves
/// to `Result<T, E>`: a `Call` (`E` is `CallError`), an owned call, or a
/// flattened one (`E` is the handler's own error).
///
/// ```
/// use std::time::Duration;
/// use patchboard::{first_ok, server, CallError, Server};
///
/// struct Replica { latency: Duration }
///
/// #[server]
/// impl Replica {
///     #[cancellable]
///     async fn search(&self, query: String) -> String {
///         tokio::time::sleep(self.latency).await;
///         format!("results for {query}")
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let replicas = [300, 20, 900].map(|ms| Replica { latency: Duration::from_millis(ms) }.spawn());
///     let calls = replicas.iter().map(|replica| replica.search("gophers".to_owned()));
///     let answer = first_ok(calls, Duration::from_millis(400)).await;
///     assert_eq!(answer, Ok("results for gophers".to_owned()));
///
///     let calls = replicas.iter().map(|replica| replica.search("rust".to_owned()));
///     let too_soon = first_ok(calls, Duration::from_millis(5)).await;
///     assert_eq!(too_soon, Err(vec![CallError::Timeout; 3]));
/// }
/// ```
pub async fn first_ok<I, T, E>(calls: I, deadline: Duration) -> Result<T, Vec<E>>
where
    I: IntoIterator,
    I::Item: IntoFuture<Output = Result<T, E>>,
    E: From<CallError>,
{
    let mut pending: Vec<_> = calls
        .into_iter()
        .map(|call| Some(Box::pin(call.into_future())))
        .collect();
    let mut errors: Vec<Option<E>> = pending.iter().map(|_| None).collect();
    let mut left = pending.len();
    let race = std::future::poll_fn(|cx| {
        for (slot, error) in pending.iter_mut().zip(errors.iter_mut()) {
            let Some(call) = slot else { continue };
            if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                *slot = None;
                left -= 1;
                match outcome {
                    Ok(value) => return Poll::Ready(Some(value)),
                    Err(failed) => *error = Some(failed),
                }
            }
        }
        if left == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    });
    // Past the deadline there is no winner.
    let winner: Option<T> = tokio::time::timeout(deadline, race)
        .await
        .unwrap_or_default();
    // The losers are dropped here, before the caller sees the answer.
    drop(pending);
    match winner {
        Some(value) => Ok(value),
        None => Err(errors
            .into_iter()
            .map(|error| error.unwrap_or_else(|| E::from(CallError::Timeout)))
            .collect()),
    }
}

/// Runs `call` over every input with at most `limit` calls in flight
/// (raised to at least one): fan-out with bounded parallelism, over a pool
/// or over several handles that the closure chooses between.
///
/// Read the results as they complete with [`next`](BoundedMap::next) (or
/// as a `futures_core::Stream`), each with the index of its input, or all
/// of them in input order with [`collect`](BoundedMap::collect). A call
/// that fails is an `Err` in its own slot: nothing is lost and nothing
/// stops the others.
///
/// ```
/// use patchboard::{bounded_map, server, Builder, CallError};
///
/// #[derive(Clone)]
/// struct Resolver;
///
/// #[server]
/// impl Resolver {
///     async fn resolve(&self, id: u32) -> Result<String, String> {
///         if id % 7 == 0 { Err(format!("no such city: {id}")) } else { Ok(format!("city {id}")) }
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let pool = Builder::new(Resolver).pool(5).spawn();
///     let results = bounded_map(1..=20, 5, |id| pool.resolve(id)).collect().await;
///     assert_eq!(results.len(), 20);
///     assert_eq!(results[0], Ok(Ok("city 1".to_owned())));
///     assert_eq!(results[6], Ok(Err("no such city: 7".to_owned())));
/// }
/// ```
///
/// Each slot is what the call resolves to: here
/// `Result<Result<String, String>, CallError>`; with
/// [`flatten`](crate::Call::flatten) (for an error type that is
/// `From<CallError>`), one `Result`.
pub fn bounded_map<I, F, C>(inputs: I, limit: usize, call: F) -> BoundedMap<I::IntoIter, F, C>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> C,
    C: IntoFuture,
{
    BoundedMap {
        inputs: inputs.into_iter(),
        call,
        limit: limit.max(1),
        started: 0,
        in_flight: Vec::new(),
    }
}

/// The results of [`bounded_map`], as they complete.
#[must_use = "a bounded map does nothing until you read its results"]
pub struct BoundedMap<I, F, C: IntoFuture> {
    inputs: I,
    call: F,
    limit: usize,
    /// Inputs taken so far: the index of the next one.
    started: usize,
    in_flight: Vec<(usize, Pin<Box<C::IntoFuture>>)>,
}

impl<I, F, C> BoundedMap<I, F, C>
where
    I: Iterator,
    F: FnMut(I::Item) -> C,
    C: IntoFuture,
{
    /// The next result to complete, with the index of its input; `None`
    /// once every input's call has completed.
    pub async fn next(&mut self) -> Option<(usize, C::Output)> {
        std::future::poll_fn(|cx| self.poll_result(cx)).await
    }

    /// Every result, in the order of the inputs.
    pub async fn collect(mut self) -> Vec<C::Output> {
        let mut slots: Vec<Option<C::Output>> = Vec::new();
        while let Some((index, output)) = self.next().await {
            if slots.len() <= index {
                slots.resize_with(index + 1, || None);
            }
            slots[index] = Some(output);
        }
        slots
            .into_iter()
            .map(|slot| slot.expect("every input's call completed"))
            .collect()
    }

    fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, C::Output)>> {
        while self.in_flight.len() < self.limit {
            let Some(input) = self.inputs.next() else {
                break;
            };
            let call = (self.call)(input).into_future();
            self.in_flight.push((self.started, Box::pin(call)));
            self.started += 1;
        }
        for at in 0..self.in_flight.len() {
            let (index, call) = &mut self.in_flight[at];
            if let Poll::Ready(output) = call.as_mut().poll(cx) {
                let index = *index;
                // Order among the in-flight calls does not matter.
                // The next input starts when the next result is asked for.
                drop(self.in_flight.swap_remove(at));
                return Poll::Ready(Some((index, output)));
            }
        }
        if self.in_flight.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<I, F, C> Stream for BoundedMap<I, F, C>
where
    I: Iterator + Unpin,
    F: FnMut(I::Item) -> C + Unpin,
    C: IntoFuture,
{
    type Item = (usize, C::Output);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_result(cx)
    }
}

impl<I, F, C: IntoFuture> fmt::Debug for BoundedMap<I, F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedMap")
            .field("limit", &self.limit)
            .field("started", &self.started)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

/// Fan-in: one stream of the items of every stream given (typically
/// [`Subscription`](crate::Subscription)s of several servers), in the order
/// they arrive, taking from each in turn when several have items ready. It
/// ends once every stream has ended.
///
/// ```
/// use patchboard::{merge, server, subscription, Server, Subscriber, Subscription};
///
/// #[derive(Default)]
/// struct Sensor { subscribers: Vec<Subscriber<u32>> }
///
/// #[server]
/// impl Sensor {
///     fn subscribe(&mut self) -> Subscription<u32> {
///         let (subscriber, subscription) = subscription(8);
///         self.subscribers.push(subscriber);
///         subscription
///     }
///
///     fn publish(&mut self, reading: u32) {
///         self.subscribers.retain(|s| s.send(reading).is_connected());
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let sensors = [Sensor::default().spawn(), Sensor::default().spawn()];
///     let mut readings = Vec::new();
///     for sensor in &sensors {
///         readings.push(sensor.subscribe().await.unwrap());
///     }
///     let mut all = merge(readings);
///     sensors[0].publish(1).await.unwrap();
///     sensors[1].publish(2).await.unwrap();
///     for sensor in &sensors {
///         sensor.stop().await; // its subscription ends with it
///     }
///     let mut seen = Vec::new();
///     while let Some(reading) = all.next().await {
///         seen.push(reading);
///     }
///     seen.sort();
///     assert_eq!(seen, [1, 2]);
/// }
/// ```
pub fn merge<S>(streams: impl IntoIterator<Item = S>) -> Merge<S>
where
    S: Stream + Unpin,
{
    Merge {
        streams: streams.into_iter().map(Some).collect(),
        start: 0,
    }
}

/// The stream of [`merge`].
#[must_use = "streams do nothing unless polled"]
pub struct Merge<S> {
    /// `None` once that stream has ended.
    streams: Vec<Option<S>>,
    /// Where the next poll starts, so that no stream is always first.
    start: usize,
}

impl<S: Stream + Unpin> Merge<S> {
    /// The next item from any of the streams; `None` once all have ended.
    pub async fn next(&mut self) -> Option<S::Item> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let count = self.streams.len();
        for turn in 0..count {
            let at = (self.start + turn) % count;
            let Some(stream) = &mut self.streams[at] else {
                continue;
            };
            match Pin::new(stream).poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    self.start = (at + 1) % count;
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => self.streams[at] = None,
                Poll::Pending => {}
            }
        }
        if self.streams.iter().all(Option::is_none) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<S: Stream + Unpin> Stream for Merge<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.poll_item(cx)
    }
}

impl<S> fmt::Debug for Merge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merge")
            .field("streams", &self.streams.len())
            .field(
                "ended",
                &self.streams.iter().filter(|s| s.is_none()).count(),
            )
            .finish()
    }
}
