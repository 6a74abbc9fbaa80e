//! The server's mailbox: a bounded normal lane, one more lane per priority
//! level the server declares, and the order in which the serve loop takes
//! from them.
//!
//! A lane is the purpose-built single-consumer [`Queue`] for a server with
//! one serve loop, and an async-channel (many consumers) for a pool, whose
//! replicas share the lanes. Closing is how a server stops taking requests:
//! both close atomically with respect to sends, so once a lane is closed no
//! request can arrive, while everything already queued can still be
//! received. `stop()` closes every lane and lets the loop serve what was
//! queued; the loop's end closes them and answers what is left with an
//! error.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::CallError;
use crate::message::{Inline, Message};
use crate::queue::{self, Queue};
pub(crate) use crate::queue::{TryRecvError, TrySendError, Unsent};

/// The mailbox capacity when neither `#[server(capacity = N)]` nor
/// [`Builder::capacity`](crate::Builder::capacity) says otherwise.
pub const DEFAULT_CAPACITY: usize = 16;

/// The largest mailbox capacity (per lane); larger ones are lowered to it.
/// A pool's mailbox allocates its slots up front (a single server's as it
/// fills), so this bounds what one setting can allocate (about the
/// request's size per slot).
pub const MAX_CAPACITY: usize = 1 << 20;

/// The starvation bound of priority levels: while requests of a level wait,
/// at most this many requests of higher levels are served before the
/// oldest of them.
pub const PRIORITY_BURST: usize = 32;

/// The highest priority level (`#[priority(7)]`); level 0 is a message
/// without `#[priority]`.
pub const MAX_PRIORITY: u8 = 7;

/// The sending side, held by every handle.
pub(crate) struct Senders<R> {
    normal: Sender<R>,
    /// Levels 1, 2, ..: empty (no allocation) for a server without
    /// `#[priority]`.
    higher: Vec<Sender<R>>,
    /// The way to the server's state for a call served on its caller's
    /// task (`inline.rs`).
    pub(crate) inline: Option<Inline<R>>,
}

/// The sending side without keeping the server alive.
pub(crate) struct WeakSenders<R> {
    normal: WeakSender<R>,
    higher: Vec<WeakSender<R>>,
    inline: Option<Inline<R>>,
}

/// The depth of each lane, normal first, for the inventory.
#[cfg(any(feature = "inventory", feature = "metrics"))]
pub(crate) struct Depths<R>(Vec<WeakSender<R>>);

#[cfg(any(feature = "inventory", feature = "metrics"))]
impl<R> Depths<R> {
    /// Requests waiting in each lane now: the normal lane, then priority
    /// levels 1, 2, ...
    #[cfg(feature = "inventory")]
    pub(crate) fn read(&self) -> Vec<usize> {
        self.0.iter().map(WeakSender::len).collect()
    }

    /// Requests waiting in every lane now.
    #[cfg(feature = "metrics")]
    pub(crate) fn total(&self) -> usize {
        self.0.iter().map(WeakSender::len).sum()
    }
}

#[cfg(any(feature = "inventory", feature = "metrics"))]
impl<R> WeakSender<R> {
    fn len(&self) -> usize {
        match self {
            WeakSender::One(queue) => queue.len(),
            WeakSender::Many(tx) => tx.upgrade().map_or(0, |tx| tx.len()),
        }
    }
}

/// The receiving side, held by the serve loop (one per replica in a pool).
pub(crate) struct Mailbox<R> {
    normal: Lane<R>,
    higher: Vec<Lane<R>>,
    /// For each level below the highest: requests of higher levels served
    /// while it waited, since it was last served. Shared by the replicas of
    /// a pool, so that the bound holds per server, whatever the number of
    /// replicas. (Locked only by servers with priority levels, for a few
    /// instructions of ours.)
    /// `None` (no allocation) for a server without priority levels.
    passed: Option<Arc<Mutex<Vec<usize>>>>,
    /// The level of the request received last (for a remote server's
    /// forwarder, which passes it on).
    last: u8,
}

struct Lane<R> {
    rx: Receiver<R>,
    /// The lane reported closed and empty; it is not polled again.
    done: bool,
}

/// The sending end of one lane.
pub(crate) enum Sender<R> {
    One(Arc<Queue<R>>),
    Many(async_channel::Sender<R>),
}

/// A lane's sending end that does not count as a sender.
pub(crate) enum WeakSender<R> {
    /// The queue has no count of senders: a server with one loop ends by
    /// its own decision (its context holds a sender while it runs).
    One(Arc<Queue<R>>),
    Many(async_channel::WeakSender<R>),
}

/// The receiving end of one lane.
enum Receiver<R> {
    One(Arc<Queue<R>>),
    /// Pinned in a box: polled as a stream while waiting on several lanes.
    Many(Pin<Box<async_channel::Receiver<R>>>),
}

pin_project_lite::pin_project! {
    /// A send waiting for room in a lane: `Err(request)` if the lane is
    /// closed first.
    #[project = SendProjection]
    pub(crate) enum Send<'a, R> {
        One { #[pin] send: queue::Send<'a, R> },
        Many { #[pin] send: async_channel::Send<'a, R> },
    }
}

impl<R> Sender<R> {
    pub(crate) fn try_send(&self, request: R) -> Result<(), TrySendError<R>> {
        match self {
            Sender::One(queue) => queue.try_send(request),
            Sender::Many(tx) => tx.try_send(request).map_err(|error| match error {
                async_channel::TrySendError::Full(request) => TrySendError::Full(request),
                async_channel::TrySendError::Closed(request) => TrySendError::Closed(request),
            }),
        }
    }

    /// Waits for room, then enqueues `request`; with `returns`, a lane with
    /// one loop may hand it back instead ([`queue::Queue::send_or_return`]).
    pub(crate) fn send(&self, request: R, returns: bool) -> Send<'_, R> {
        match self {
            Sender::One(queue) if returns => Send::One {
                send: queue.send_or_return(request),
            },
            Sender::One(queue) => Send::One {
                send: queue.send(request),
            },
            Sender::Many(tx) => Send::Many {
                send: tx.send(request),
            },
        }
    }

    fn close(&self) {
        match self {
            Sender::One(queue) => queue.close(),
            Sender::Many(tx) => {
                tx.close();
            }
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Sender::One(queue) => queue.is_closed(),
            Sender::Many(tx) => tx.is_closed(),
        }
    }

    /// Open and empty (a pool's lanes never count as idle: its calls
    /// are not served on their callers' tasks).
    fn idle(&self) -> bool {
        match self {
            Sender::One(queue) => queue.idle(),
            Sender::Many(_) => false,
        }
    }

    fn len(&self) -> usize {
        match self {
            Sender::One(queue) => queue.len(),
            Sender::Many(tx) => tx.len(),
        }
    }

    fn downgrade(&self) -> WeakSender<R> {
        match self {
            Sender::One(queue) => WeakSender::One(queue.clone()),
            Sender::Many(tx) => WeakSender::Many(tx.downgrade()),
        }
    }
}

impl<R> Clone for Sender<R> {
    fn clone(&self) -> Self {
        match self {
            Sender::One(queue) => Sender::One(queue.clone()),
            Sender::Many(tx) => Sender::Many(tx.clone()),
        }
    }
}

impl<R> WeakSender<R> {
    fn upgrade(&self) -> Option<Sender<R>> {
        match self {
            WeakSender::One(queue) if queue.is_closed() => None,
            WeakSender::One(queue) => Some(Sender::One(queue.clone())),
            WeakSender::Many(tx) => tx.upgrade().map(Sender::Many),
        }
    }
}

impl<R> Clone for WeakSender<R> {
    fn clone(&self) -> Self {
        match self {
            WeakSender::One(queue) => WeakSender::One(queue.clone()),
            WeakSender::Many(tx) => WeakSender::Many(tx.clone()),
        }
    }
}

impl<R> Future for Send<'_, R> {
    type Output = Result<(), Unsent<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Unsent<R>>> {
        match self.project() {
            SendProjection::One { send } => send.poll(cx),
            SendProjection::Many { send } => send.poll(cx).map_err(|error| Unsent::Closed(error.0)),
        }
    }
}

impl<R> Receiver<R> {
    fn try_recv(&self) -> Result<R, TryRecvError> {
        match self {
            Receiver::One(queue) => queue.try_recv(),
            Receiver::Many(rx) => rx.try_recv().map_err(|error| match error {
                async_channel::TryRecvError::Empty => TryRecvError::Empty,
                async_channel::TryRecvError::Closed => TryRecvError::Closed,
            }),
        }
    }

    #[inline]
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<R>> {
        match self {
            Receiver::One(queue) => queue.poll_recv(cx),
            Receiver::Many(rx) => rx.as_mut().poll_next(cx),
        }
    }

    fn close(&self) {
        match self {
            Receiver::One(queue) => queue.close(),
            Receiver::Many(rx) => {
                rx.close();
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Receiver::One(queue) => queue.len() == 0,
            Receiver::Many(rx) => rx.is_empty(),
        }
    }

    /// Another consumer of the same lane, for another replica of a pool.
    fn replica(&self) -> Self {
        match self {
            Receiver::One(_) => unreachable!("only a pool's lanes have several consumers"),
            Receiver::Many(rx) => Receiver::Many(Box::pin((**rx).clone())),
        }
    }
}

/// A lane for `replicas` consumers: a queue for one, a channel for more.
fn lane<R>(capacity: usize, replicas: usize) -> (Sender<R>, Receiver<R>) {
    if replicas <= 1 {
        let queue = Arc::new(Queue::new(capacity));
        (Sender::One(queue.clone()), Receiver::One(queue))
    } else {
        let (tx, rx) = async_channel::bounded(capacity);
        (Sender::Many(tx), Receiver::Many(Box::pin(rx)))
    }
}

/// A bounded mailbox of `capacity` slots per lane, clamped to
/// `1..=MAX_CAPACITY`, with `levels` priority levels above the normal lane
/// (at most [`MAX_PRIORITY`]), for `replicas` serve loops.
pub(crate) fn mailbox<R>(capacity: usize, levels: u8, replicas: usize) -> (Senders<R>, Mailbox<R>) {
    let capacity = capacity.clamp(1, MAX_CAPACITY);
    let (normal_tx, normal_rx) = lane(capacity, replicas);
    let (higher_tx, higher_rx): (Vec<_>, Vec<_>) = (0..levels.min(MAX_PRIORITY))
        .map(|_| lane(capacity, replicas))
        .unzip();
    let senders = Senders {
        normal: normal_tx,
        higher: higher_tx,
        inline: None,
    };
    let mailbox = Mailbox {
        normal: Lane::new(normal_rx),
        passed: (!higher_rx.is_empty()).then(|| Arc::new(Mutex::new(vec![0; higher_rx.len()]))),
        last: 0,
        higher: higher_rx.into_iter().map(Lane::new).collect(),
    };
    (senders, mailbox)
}

impl<R> Senders<R> {
    /// The lane of priority `level`, lowered to the server's highest.
    pub(crate) fn lane(&self, level: u8) -> &Sender<R> {
        match usize::from(level).min(self.higher.len()) {
            0 => &self.normal,
            level => &self.higher[level - 1],
        }
    }

    /// Refuses new requests on every lane; queued ones can still be
    /// received.
    pub(crate) fn close(&self) {
        self.normal.close();
        for lane in &self.higher {
            lane.close();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.normal.is_closed()
    }

    /// Requests waiting in every lane.
    pub(crate) fn len(&self) -> usize {
        self.normal.len() + self.higher.iter().map(Sender::len).sum::<usize>()
    }

    /// Every lane open and empty: a call may be served on its caller's
    /// task without passing a request sent before it.
    pub(crate) fn idle(&self) -> bool {
        self.normal.idle() && self.higher.iter().all(Sender::idle)
    }

    /// A way to read the depth of each lane that keeps no lane open.
    #[cfg(any(feature = "inventory", feature = "metrics"))]
    pub(crate) fn depths(&self) -> Depths<R> {
        Depths(
            std::iter::once(&self.normal)
                .chain(&self.higher)
                .map(Sender::downgrade)
                .collect(),
        )
    }

    pub(crate) fn downgrade(&self) -> WeakSenders<R> {
        WeakSenders {
            normal: self.normal.downgrade(),
            higher: self.higher.iter().map(Sender::downgrade).collect(),
            inline: self.inline.clone(),
        }
    }
}

impl<R> Clone for Senders<R> {
    fn clone(&self) -> Self {
        Senders {
            normal: self.normal.clone(),
            higher: self.higher.clone(),
            inline: self.inline.clone(),
        }
    }
}

impl<R> WeakSenders<R> {
    /// Full senders, or `None` once the mailbox is closed or every full
    /// sender is gone.
    pub(crate) fn upgrade(&self) -> Option<Senders<R>> {
        let normal = self.normal.upgrade()?;
        let higher = self
            .higher
            .iter()
            .map(WeakSender::upgrade)
            .collect::<Option<_>>()?;
        Some(Senders {
            normal,
            higher,
            inline: self.inline.clone(),
        })
    }
}

impl<R> Clone for WeakSenders<R> {
    fn clone(&self) -> Self {
        WeakSenders {
            normal: self.normal.clone(),
            higher: self.higher.clone(),
            inline: self.inline.clone(),
        }
    }
}

/// Runs `f` on the counts of passed-over requests, under their lock (none
/// for a server without priority levels).
fn with_counts<T>(passed: &Option<Arc<Mutex<Vec<usize>>>>, f: impl FnOnce(&mut [usize]) -> T) -> T {
    match passed {
        // Never held across user code: a poisoned lock still holds counts.
        Some(passed) => f(&mut passed.lock().unwrap_or_else(PoisonError::into_inner)),
        None => f(&mut []),
    }
}

fn lane_of<'a, R>(
    normal: &'a mut Lane<R>,
    higher: &'a mut [Lane<R>],
    level: usize,
) -> &'a mut Lane<R> {
    match level {
        0 => normal,
        level => &mut higher[level - 1],
    }
}

/// A request of `level` was taken: the levels below it that are waiting
/// have been passed over once more.
fn served<R>(
    normal: &mut Lane<R>,
    higher: &mut [Lane<R>],
    passed: &mut [usize],
    last: &mut u8,
    level: usize,
) {
    *last = level as u8;
    if let Some(passed) = passed.get_mut(level) {
        *passed = 0;
    }
    for lower in 0..level.min(passed.len()) {
        let waiting = !lane_of(normal, higher, lower).rx.is_empty();
        passed[lower] = if waiting { passed[lower] + 1 } else { 0 };
    }
}

impl<R> Clone for Mailbox<R> {
    /// Another receiver of the same lanes, for another replica of a pool.
    ///
    /// # Panics
    ///
    /// For a mailbox made for one replica.
    fn clone(&self) -> Self {
        Mailbox {
            normal: Lane::new(self.normal.rx.replica()),
            higher: self
                .higher
                .iter()
                .map(|lane| Lane::new(lane.rx.replica()))
                .collect(),
            passed: self.passed.clone(),
            last: 0,
        }
    }
}

impl<R> Lane<R> {
    fn new(rx: Receiver<R>) -> Self {
        Lane { rx, done: false }
    }

    fn try_take(&mut self) -> Option<R> {
        if self.done {
            return None;
        }
        match self.rx.try_recv() {
            Ok(request) => Some(request),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => {
                self.done = true;
                None
            }
        }
    }
}

impl<R: Message> Mailbox<R> {
    /// The next request in serving order, or `None` once every lane is
    /// closed (by `stop()`, by the loop, or because every handle is gone)
    /// and empty.
    ///
    /// Cancel-safe: dropping the future loses nothing.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<R> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next request in serving order if one is there, `None` once
    /// every lane is closed and empty; else the task is woken when a
    /// request arrives.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<R>> {
        if self.higher.is_empty() {
            return self.poll_recv_one(cx);
        }
        if let Some(request) = self.try_recv() {
            return Poll::Ready(Some(request));
        }
        // Every lane is empty: wait for whichever fills first, highest
        // level first should several fill at once.
        for level in (0..=self.higher.len()).rev() {
            if self.lane(level).done {
                continue;
            }
            match self.lane(level).rx.poll_recv(cx) {
                Poll::Ready(Some(request)) => {
                    self.served(level);
                    return Poll::Ready(Some(request));
                }
                Poll::Ready(None) => self.lane(level).done = true,
                Poll::Pending => {}
            }
        }
        if self.normal.done && self.higher.iter().all(|lane| lane.done) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// The next request from the normal lane: all there is to receive from
    /// when the server has no priority levels (the common case), and the
    /// serve loop's fast path.
    #[inline]
    pub(crate) fn poll_recv_one(&mut self, cx: &mut Context<'_>) -> Poll<Option<R>> {
        if self.normal.done {
            return Poll::Ready(None);
        }
        let polled = self.normal.rx.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            self.normal.done = true;
        }
        polled
    }

    /// The priority level of the request received last (0 for a server
    /// without levels).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn last_level(&self) -> u8 {
        self.last
    }

    /// No priority levels: [`poll_recv_one`](Self::poll_recv_one)
    /// receives everything.
    pub(crate) fn has_one_lane(&self) -> bool {
        self.higher.is_empty()
    }

    /// This loop is its only consumer (not a pool's replica).
    pub(crate) fn has_one_consumer(&self) -> bool {
        matches!(self.normal.rx, Receiver::One(_))
    }

    fn lane(&mut self, level: usize) -> &mut Lane<R> {
        lane_of(&mut self.normal, &mut self.higher, level)
    }

    /// The next request if one is ready: from the highest level that has
    /// one, except that a level whose waiting requests have been passed
    /// over [`PRIORITY_BURST`] times goes first (the lowest such level).
    fn try_recv(&mut self) -> Option<R> {
        let Mailbox {
            normal,
            higher,
            passed,
            last,
        } = self;
        with_counts(passed, |passed| {
            let mut taken = None;
            for (level, count) in passed.iter_mut().enumerate() {
                if *count >= PRIORITY_BURST {
                    match lane_of(normal, higher, level).try_take() {
                        Some(request) => {
                            taken = Some((level, request));
                            break;
                        }
                        None => *count = 0,
                    }
                }
            }
            if taken.is_none() {
                taken = (0..=higher.len())
                    .rev()
                    .find_map(|level| Some((level, lane_of(normal, higher, level).try_take()?)));
            }
            let (level, request) = taken?;
            served(normal, higher, passed, last, level);
            Some(request)
        })
    }

    /// A request of `level` was taken while waiting on every lane.
    fn served(&mut self, level: usize) {
        let Mailbox {
            normal,
            higher,
            passed,
            last,
        } = self;
        with_counts(passed, |passed| served(normal, higher, passed, last, level));
    }

    /// Refuses new requests: senders fail at once from now on.
    pub(crate) fn close(&self) {
        self.normal.rx.close();
        for lane in &self.higher {
            lane.rx.close();
        }
    }

    /// Closes the mailbox and answers everything still queued with `error`.
    pub(crate) fn close_and_drain(&mut self, error: &CallError) {
        self.close();
        while let Some(mut request) = self.try_recv() {
            if let Some(reply) = request.reply_slot() {
                reply.fail(error.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplySlot;

    /// A request that is just a label.
    struct Label(&'static str);

    impl Message for Label {
        fn reply_slot(&mut self) -> Option<&mut dyn ReplySlot> {
            None
        }
    }

    fn label(request: Option<Label>) -> &'static str {
        request.map_or("none", |Label(text)| text)
    }

    #[test]
    fn priority_goes_first_but_never_more_than_a_burst_in_a_row() {
        let (senders, mut mailbox) = mailbox::<Label>(128, 1, 1);
        let (normal, priority) = (senders.lane(0), senders.lane(1));
        normal.try_send(Label("normal 1")).unwrap();
        normal.try_send(Label("normal 2")).unwrap();
        for _ in 0..PRIORITY_BURST + 2 {
            priority.try_send(Label("urgent")).unwrap();
        }
        let order: Vec<_> =
            std::iter::from_fn(|| mailbox.try_recv().map(|r| label(Some(r)))).collect();
        let mut expected = vec!["urgent"; PRIORITY_BURST];
        expected.push("normal 1");
        expected.extend(["urgent", "urgent"]);
        expected.push("normal 2");
        assert_eq!(order, expected);
    }

    /// `future`, failing the test instead of hanging it if it never ends.
    async fn within<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(std::time::Duration::from_secs(10), future)
            .await
            .expect("the mailbox never answered")
    }

    /// Everything ready, taken in serving order.
    fn order(mailbox: &mut Mailbox<Label>) -> Vec<&'static str> {
        std::iter::from_fn(|| mailbox.try_recv().map(|r| label(Some(r)))).collect()
    }

    #[test]
    fn levels_are_served_highest_first_and_fifo_within_each() {
        let (senders, mut mailbox) = mailbox::<Label>(8, 2, 1);
        for (level, text) in [
            (0, "metrics 1"),
            (1, "user 1"),
            (2, "critical 1"),
            (0, "metrics 2"),
            (2, "critical 2"),
            (1, "user 2"),
        ] {
            senders.lane(level).try_send(Label(text)).unwrap();
        }
        let expected = [
            "critical 1",
            "critical 2",
            "user 1",
            "user 2",
            "metrics 1",
            "metrics 2",
        ];
        assert_eq!(order(&mut mailbox), expected);
    }

    #[test]
    fn every_waiting_level_is_served_within_the_burst_bound() {
        let (senders, mut mailbox) = mailbox::<Label>(128, 2, 1);
        senders.lane(0).try_send(Label("low")).unwrap();
        senders.lane(1).try_send(Label("middle")).unwrap();
        for _ in 0..PRIORITY_BURST + 2 {
            senders.lane(2).try_send(Label("high")).unwrap();
        }
        let mut expected = vec!["high"; PRIORITY_BURST];
        // Both lower levels were passed over a burst's worth: the lowest
        // goes first, then the next.
        expected.extend(["low", "middle", "high", "high"]);
        assert_eq!(order(&mut mailbox), expected);
    }

    #[test]
    fn a_level_above_the_highest_is_lowered_to_it() {
        let (senders, mut two) = mailbox::<Label>(8, 1, 1);
        senders.lane(0).try_send(Label("normal")).unwrap();
        senders
            .lane(MAX_PRIORITY)
            .try_send(Label("urgent"))
            .unwrap();
        assert_eq!(order(&mut two), ["urgent", "normal"]);
        let (senders, mut one) = mailbox::<Label>(8, 0, 1);
        senders.lane(3).try_send(Label("only lane")).unwrap();
        assert_eq!(order(&mut one), ["only lane"]);
    }

    #[tokio::test]
    async fn waiting_on_several_levels_wakes_for_any_of_them() {
        // One replica (queues) and a pool (channels).
        for replicas in [1, 2] {
            let (senders, mut mailbox) = mailbox::<Label>(4, 3, replicas);
            let waiting = tokio::spawn(async move { label(within(mailbox.recv()).await) });
            tokio::task::yield_now().await;
            senders.lane(2).try_send(Label("level 2")).unwrap();
            assert_eq!(waiting.await.unwrap(), "level 2");
        }
    }

    #[test]
    fn a_pools_lanes_serve_in_the_same_order() {
        let (senders, mut mailbox) = mailbox::<Label>(8, 2, 3);
        let mut other = mailbox.clone();
        for (level, text) in [(0, "low"), (1, "middle"), (2, "high")] {
            senders.lane(level).try_send(Label(text)).unwrap();
        }
        assert_eq!(label(other.try_recv()), "high");
        assert_eq!(order(&mut mailbox), ["middle", "low"]);
        senders.close();
        assert!(senders.is_closed());
        assert_eq!(label(other.try_recv()), "none");
    }

    #[test]
    fn close_and_drain_empties_both_lanes_and_refuses_new_requests() {
        let (senders, mut mailbox) = mailbox::<Label>(4, 1, 1);
        senders.lane(0).try_send(Label("a")).unwrap();
        senders.lane(1).try_send(Label("b")).unwrap();
        mailbox.close_and_drain(&CallError::Closed);
        assert!(mailbox.try_recv().is_none());
        assert!(senders.lane(0).try_send(Label("c")).is_err());
        assert!(senders.lane(1).try_send(Label("d")).is_err());
        assert!(senders.is_closed());
    }

    #[tokio::test]
    async fn closing_refuses_new_requests_on_both_lanes_but_keeps_the_queued_ones() {
        let (senders, mut mailbox) = mailbox::<Label>(4, 1, 1);
        senders.lane(0).try_send(Label("normal")).unwrap();
        senders.lane(1).try_send(Label("urgent")).unwrap();
        senders.close();
        assert!(senders.lane(1).try_send(Label("late")).is_err());
        assert_eq!(label(within(mailbox.recv()).await), "urgent");
        assert_eq!(label(within(mailbox.recv()).await), "normal");
        assert_eq!(label(within(mailbox.recv()).await), "none");
    }

    #[tokio::test]
    async fn recv_returns_none_once_closed_and_empty_and_from_then_on() {
        // A server's own context holds a sender while it serves, so its
        // mailbox ends by being closed, never by its senders going away.
        for replicas in [1, 2] {
            let (senders, mut mailbox) = mailbox::<Label>(4, 1, replicas);
            senders.lane(0).try_send(Label("last")).unwrap();
            senders.close();
            drop(senders);
            assert_eq!(label(within(mailbox.recv()).await), "last");
            assert_eq!(label(within(mailbox.recv()).await), "none");
            assert_eq!(label(within(mailbox.recv()).await), "none");
        }
    }

    #[test]
    fn capacity_is_clamped_between_one_and_the_maximum() {
        let (senders, _mailbox) = mailbox::<Label>(0, 0, 1);
        assert!(senders.lane(0).try_send(Label("a")).is_ok());
        assert!(senders.lane(0).try_send(Label("b")).is_err());
        let (senders, _mailbox) = mailbox::<Label>(usize::MAX, 0, 1);
        let Sender::One(queue) = &senders.normal else {
            panic!("one replica, one queue");
        };
        assert_eq!(queue.capacity(), MAX_CAPACITY);
    }
}
