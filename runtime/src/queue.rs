//! The mailbox lane of a server with one serve loop: a bounded queue with
//! one consumer, built for this runtime.
//!
//! Everything is under one uncontended `Mutex`: a send is one lock, a
//! push, and the wake-up of the consumer after the lock is released; a
//! receive is one lock and a pop. What async-channel does with a lock-free
//! queue and an event listener per wait (an allocation each time the
//! consumer waits) costs several times that for a single consumer
//! (BENCHMARKS.md). Closing is atomic with respect to sends because both
//! take the lock: once `close` returns, no request can arrive, and the ones
//! already queued can still be received.
//!
//! Senders that find the queue full wait in line (oldest first); each item
//! taken out wakes the oldest, and a waiting send dropped after it was woken
//! passes the turn on, so no room is ever left unclaimed while someone
//! waits. Pools, whose replicas share a lane, keep async-channel.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Why a `try_send` did not enqueue; the request is handed back.
pub(crate) enum TrySendError<R> {
    Full(R),
    Closed(R),
}

impl<R> fmt::Debug for TrySendError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

/// Why a [`Send`] ended without enqueueing; the request is handed back.
pub(crate) enum Unsent<R> {
    Closed(R),
    /// Woken for room in a queue it found empty, by a send that asked for
    /// its request back then ([`Queue::send_or_return`]): its caller may
    /// serve it itself now, the server having likely gone idle.
    Room(R),
}

/// Why a `try_recv` got nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    Empty,
    /// Closed, and nothing is left.
    Closed,
}

pub(crate) struct Queue<R> {
    inner: Mutex<Inner<R>>,
}

struct Inner<R> {
    items: VecDeque<R>,
    capacity: usize,
    closed: bool,
    /// The consumer, waiting for an item.
    receiver: Option<Waker>,
    /// Senders waiting for room, oldest first, by ticket.
    senders: VecDeque<(u64, Waker)>,
    next_ticket: u64,
}

impl<R> Queue<R> {
    /// An empty queue with room for `capacity` items (at least one). The
    /// room is allocated as it is first used (doubling up to `capacity`), so
    /// an idle server with a large mailbox costs little.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Queue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                capacity,
                closed: false,
                receiver: None,
                senders: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    /// No code that can panic runs under the lock, but a poisoned lock
    /// would still hold consistent data: use it.
    fn lock(&self) -> MutexGuard<'_, Inner<R>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    pub(crate) fn try_send(&self, item: R) -> Result<(), TrySendError<R>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(TrySendError::Closed(item));
        }
        if inner.items.len() >= inner.capacity {
            return Err(TrySendError::Full(item));
        }
        inner.items.push_back(item);
        let receiver = inner.receiver.take();
        drop(inner);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        Ok(())
    }

    /// Waits for room, then enqueues `item`; `Err(Closed(item))` if the
    /// queue is closed first.
    pub(crate) fn send(&self, item: R) -> Send<'_, R> {
        Send {
            queue: self,
            item: Some(item),
            ticket: None,
            returns: false,
        }
    }

    /// As [`send`](Self::send), except that once it has waited, room in a
    /// queue found empty ends it with `Err(Room(item))`: the loop has
    /// taken everything, so its caller may find the server idle and serve
    /// the request itself, which costs less than the queue (a flood of
    /// casts would otherwise stay in the queue for good: each waiting
    /// sender refills it).
    pub(crate) fn send_or_return(&self, item: R) -> Send<'_, R> {
        Send {
            queue: self,
            item: Some(item),
            ticket: None,
            returns: true,
        }
    }

    pub(crate) fn try_recv(&self) -> Result<R, TryRecvError> {
        let mut inner = self.lock();
        match inner.items.pop_front() {
            Some(item) => {
                let sender = inner.senders.pop_front();
                drop(inner);
                if let Some((_, sender)) = sender {
                    sender.wake();
                }
                Ok(item)
            }
            None if inner.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item; `None` once the queue is closed and empty; else the
    /// task is woken when an item arrives or the queue closes.
    #[inline]
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<R>> {
        let mut inner = self.lock();
        match inner.items.pop_front() {
            Some(item) => {
                let sender = inner.senders.pop_front();
                drop(inner);
                if let Some((_, sender)) = sender {
                    sender.wake();
                }
                Poll::Ready(Some(item))
            }
            None if inner.closed => Poll::Ready(None),
            None => {
                match &mut inner.receiver {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Refuses every later send; wakes the consumer and every waiting
    /// sender so that they see it.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        let receiver = inner.receiver.take();
        let senders = std::mem::take(&mut inner.senders);
        drop(inner);
        if let Some(receiver) = receiver {
            receiver.wake();
        }
        for (_, sender) in senders {
            sender.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Open and empty.
    pub(crate) fn idle(&self) -> bool {
        let inner = self.lock();
        !inner.closed && inner.items.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.lock().capacity
    }
}

impl<R> fmt::Debug for Queue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Queue")
            .field("len", &inner.items.len())
            .field("capacity", &inner.capacity)
            .field("closed", &inner.closed)
            .finish()
    }
}

/// A send waiting for room ([`Queue::send`]). Dropping it before it
/// resolves enqueues nothing.
pub(crate) struct Send<'a, R> {
    queue: &'a Queue<R>,
    item: Option<R>,
    /// Its place in line, once it has waited.
    ticket: Option<u64>,
    /// Hands its item back when woken for room in an empty queue.
    returns: bool,
}

impl<R> Unpin for Send<'_, R> {}

impl<R> Future for Send<'_, R> {
    type Output = Result<(), Unsent<R>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Unsent<R>>> {
        let this = &mut *self;
        let mut inner = this.queue.lock();
        let item = this.item.take().expect("polled after completion");
        if inner.closed {
            return Poll::Ready(Err(Unsent::Closed(item)));
        }
        if inner.items.len() < inner.capacity {
            let waited = this.ticket.take();
            if let Some(ticket) = waited {
                inner.senders.retain(|(other, _)| *other != ticket);
            }
            if this.returns && waited.is_some() && inner.items.is_empty() {
                // The room is not taken here: the next in line gets its
                // turn too, as when a woken send is dropped.
                let next = inner.senders.pop_front();
                drop(inner);
                if let Some((_, next)) = next {
                    next.wake();
                }
                return Poll::Ready(Err(Unsent::Room(item)));
            }
            inner.items.push_back(item);
            let receiver = inner.receiver.take();
            drop(inner);
            if let Some(receiver) = receiver {
                receiver.wake();
            }
            return Poll::Ready(Ok(()));
        }
        this.item = Some(item);
        let waiting = this
            .ticket
            .and_then(|ticket| inner.senders.iter_mut().find(|(other, _)| *other == ticket));
        match waiting {
            Some((_, waker)) => {
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                }
            }
            // First wait, or woken for room that another send took: back in
            // line, at the end.
            None => {
                let ticket = inner.next_ticket;
                inner.next_ticket += 1;
                inner.senders.push_back((ticket, cx.waker().clone()));
                this.ticket = Some(ticket);
            }
        }
        Poll::Pending
    }
}

impl<R> Drop for Send<'_, R> {
    fn drop(&mut self) {
        let (Some(ticket), Some(_)) = (self.ticket, &self.item) else {
            return;
        };
        let mut inner = self.queue.lock();
        let before = inner.senders.len();
        inner.senders.retain(|(other, _)| *other != ticket);
        let woken = inner.senders.len() == before;
        // Woken for room it will not use: the next in line gets it.
        let next = if woken && inner.items.len() < inner.capacity {
            inner.senders.pop_front()
        } else {
            None
        };
        drop(inner);
        if let Some((_, next)) = next {
            next.wake();
        }
    }
}

impl<R> fmt::Debug for Send<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send")
            .field("waiting", &self.ticket.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter::default());
        (counter.clone(), Waker::from(counter))
    }

    fn poll_send<R>(send: &mut Send<'_, R>, waker: &Waker) -> Poll<Result<(), Unsent<R>>> {
        Pin::new(send).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn items_come_out_in_order_and_a_full_queue_refuses() {
        let queue = Queue::new(2);
        assert!(queue.try_send(1).is_ok());
        assert!(queue.try_send(2).is_ok());
        assert!(matches!(queue.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.try_recv(), Ok(1));
        assert_eq!(queue.try_recv(), Ok(2));
        assert_eq!(queue.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn closing_refuses_sends_but_keeps_what_was_queued() {
        let queue = Queue::new(4);
        queue.try_send("queued").ok();
        queue.close();
        assert!(queue.is_closed());
        assert!(matches!(
            queue.try_send("late"),
            Err(TrySendError::Closed("late"))
        ));
        assert_eq!(queue.try_recv(), Ok("queued"));
        assert_eq!(queue.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn the_consumer_is_woken_by_a_send_and_by_a_close() {
        let queue = Queue::new(1);
        let (woken, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(queue.poll_recv(&mut cx), Poll::Pending);
        queue.try_send(7).ok();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(queue.poll_recv(&mut cx), Poll::Pending);
        queue.close();
        assert_eq!(woken.0.load(Ordering::SeqCst), 2);
        assert_eq!(queue.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn waiting_senders_get_room_oldest_first() {
        let queue = Queue::new(1);
        queue.try_send(0).ok();
        let (first_woken, first_waker) = waker();
        let (second_woken, second_waker) = waker();
        let mut first = queue.send(1);
        let mut second = queue.send(2);
        assert!(poll_send(&mut first, &first_waker).is_pending());
        assert!(poll_send(&mut second, &second_waker).is_pending());
        assert_eq!(queue.try_recv(), Ok(0));
        assert_eq!(first_woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(second_woken.0.load(Ordering::SeqCst), 0);
        assert!(matches!(
            poll_send(&mut first, &first_waker),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(queue.try_recv(), Ok(1));
        assert_eq!(second_woken.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll_send(&mut second, &second_waker),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(queue.try_recv(), Ok(2));
    }

    #[test]
    fn a_woken_send_that_is_dropped_passes_its_turn_on() {
        let queue = Queue::new(1);
        queue.try_send(0).ok();
        let (_, first_waker) = waker();
        let (second_woken, second_waker) = waker();
        let mut first = queue.send(1);
        let mut second = queue.send(2);
        assert!(poll_send(&mut first, &first_waker).is_pending());
        assert!(poll_send(&mut second, &second_waker).is_pending());
        assert_eq!(queue.try_recv(), Ok(0)); // wakes `first`
        drop(first); // which never uses the room
        assert_eq!(second_woken.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll_send(&mut second, &second_waker),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(queue.try_recv(), Ok(2));
        assert_eq!(queue.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_dropped_send_that_was_never_woken_leaves_the_line() {
        let queue = Queue::new(1);
        queue.try_send(0).ok();
        let (_, waker_one) = waker();
        let mut waiting = queue.send(1);
        assert!(poll_send(&mut waiting, &waker_one).is_pending());
        drop(waiting);
        assert!(queue.lock().senders.is_empty());
        assert_eq!(queue.try_recv(), Ok(0));
        assert_eq!(queue.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn closing_fails_every_waiting_send_and_hands_the_item_back() {
        let queue = Queue::new(1);
        queue.try_send(0).ok();
        let (woken, waker) = waker();
        let mut waiting = queue.send(1);
        assert!(poll_send(&mut waiting, &waker).is_pending());
        queue.close();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll_send(&mut waiting, &waker),
            Poll::Ready(Err(Unsent::Closed(1)))
        ));
    }

    #[test]
    fn a_send_handed_back_its_item_passes_the_turn_on() {
        let queue = Queue::new(1);
        queue.try_send(0).ok();
        let (_, first_waker) = waker();
        let (second, second_waker) = waker();
        let mut first = queue.send_or_return(1);
        let mut second_send = queue.send(2);
        assert!(poll_send(&mut first, &first_waker).is_pending());
        assert!(poll_send(&mut second_send, &second_waker).is_pending());
        // Room in an empty queue: the first gets its item back, and the
        // second, next in line, is woken for the room the first left.
        assert_eq!(queue.try_recv(), Ok(0));
        assert!(matches!(
            poll_send(&mut first, &first_waker),
            Poll::Ready(Err(Unsent::Room(1)))
        ));
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll_send(&mut second_send, &second_waker),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(queue.try_recv(), Ok(2));
    }

    #[test]
    fn a_send_that_waited_keeps_its_item_when_the_queue_is_not_empty() {
        let queue = Queue::new(2);
        queue.try_send(0).ok();
        queue.try_send(1).ok();
        let (_, waker) = waker();
        let mut send = queue.send_or_return(2);
        assert!(poll_send(&mut send, &waker).is_pending());
        assert_eq!(queue.try_recv(), Ok(0));
        // One still queued: the request goes in behind it, in order.
        assert!(matches!(poll_send(&mut send, &waker), Poll::Ready(Ok(()))));
        assert_eq!(queue.try_recv(), Ok(1));
        assert_eq!(queue.try_recv(), Ok(2));
    }

    #[test]
    fn many_threads_send_while_one_receives_and_nothing_is_lost() {
        let queue = Arc::new(Queue::new(4));
        let senders: Vec<_> = (0..4)
            .map(|thread| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for n in 0..1_000 {
                        let mut item = thread * 1_000 + n;
                        loop {
                            match queue.try_send(item) {
                                Ok(()) => break,
                                Err(TrySendError::Full(back)) => {
                                    item = back;
                                    std::thread::yield_now();
                                }
                                Err(TrySendError::Closed(_)) => panic!("closed"),
                            }
                        }
                    }
                })
            })
            .collect();
        let mut received = Vec::new();
        // A lost item fails the test at this deadline instead of hanging it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while received.len() < 4_000 {
            assert!(std::time::Instant::now() < deadline, "items were lost");
            match queue.try_recv() {
                Ok(item) => received.push(item),
                Err(_) => std::thread::yield_now(),
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }
        // Each thread's items arrive in the order it sent them.
        for thread in 0..4 {
            let mine: Vec<_> = received
                .iter()
                .filter(|item| **item / 1_000 == thread)
                .collect();
            assert!(mine.windows(2).all(|pair| pair[0] < pair[1]));
        }
        received.sort_unstable();
        assert_eq!(received, (0..4_000).collect::<Vec<_>>());
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        TrySend(u32),
        TryRecv,
        PollRecv,
        Close,
        /// Start a send that may have to wait (polled once).
        Send(u32),
        /// Poll waiting send number `n` (modulo how many wait).
        PollSend(usize),
        /// Drop waiting send number `n`.
        DropSend(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => any::<u32>().prop_map(Op::TrySend),
            3 => Just(Op::TryRecv),
            1 => Just(Op::PollRecv),
            1 => Just(Op::Close),
            3 => any::<u32>().prop_map(Op::Send),
            3 => any::<usize>().prop_map(Op::PollSend),
            2 => any::<usize>().prop_map(Op::DropSend),
        ]
    }

    /// A send still waiting, with the wake-ups it has had since its last
    /// poll.
    struct Waiting<'a> {
        send: Send<'a, u32>,
        item: u32,
        woken: Arc<Counter>,
        waker: Waker,
        seen: usize,
    }

    impl Waiting<'_> {
        fn woken_since_poll(&self) -> bool {
            self.woken.0.load(Ordering::SeqCst) > self.seen
        }
    }

    proptest::proptest! {
        /// The queue against a model (a `VecDeque`, its capacity, a closed
        /// flag): every item sent is received once, in order, unless it was
        /// refused; a full or closed queue refuses; and no wake-up is lost —
        /// whenever there is room and sends wait, one of them has been woken
        /// to take it, and a closed queue has woken all of them.
        #[test]
        fn the_queue_behaves_like_its_model(
            capacity in 1usize..5,
            ops in proptest::collection::vec(op(), 1..80),
        ) {
            let queue = Queue::new(capacity);
            let mut model: VecDeque<u32> = VecDeque::new();
            let mut closed = false;
            let mut waiting: Vec<Waiting<'_>> = Vec::new();
            let (receiver_woken, receiver_waker) = waker();
            let mut receiver_seen = 0;
            let mut receiver_waits = false;
            for op in ops {
                match op {
                    Op::TrySend(item) => {
                        let room = !closed && model.len() < capacity;
                        match queue.try_send(item) {
                            Ok(()) => {
                                proptest::prop_assert!(room);
                                model.push_back(item);
                            }
                            Err(TrySendError::Full(back)) => {
                                proptest::prop_assert!(!closed && !room);
                                proptest::prop_assert_eq!(back, item);
                            }
                            Err(TrySendError::Closed(back)) => {
                                proptest::prop_assert!(closed);
                                proptest::prop_assert_eq!(back, item);
                            }
                        }
                    }
                    Op::TryRecv => match queue.try_recv() {
                        Ok(item) => proptest::prop_assert_eq!(Some(item), model.pop_front()),
                        Err(TryRecvError::Empty) => {
                            proptest::prop_assert!(model.is_empty() && !closed)
                        }
                        Err(TryRecvError::Closed) => {
                            proptest::prop_assert!(model.is_empty() && closed)
                        }
                    },
                    Op::PollRecv => {
                        let mut cx = Context::from_waker(&receiver_waker);
                        receiver_seen = receiver_woken.0.load(Ordering::SeqCst);
                        match queue.poll_recv(&mut cx) {
                            Poll::Ready(Some(item)) => {
                                proptest::prop_assert_eq!(Some(item), model.pop_front());
                                receiver_waits = false;
                            }
                            Poll::Ready(None) => {
                                proptest::prop_assert!(model.is_empty() && closed);
                                receiver_waits = false;
                            }
                            Poll::Pending => {
                                proptest::prop_assert!(model.is_empty() && !closed);
                                receiver_waits = true;
                            }
                        }
                    }
                    Op::Close => {
                        queue.close();
                        closed = true;
                    }
                    Op::Send(item) => {
                        let (woken, waker) = waker();
                        // Odd items ask for themselves back on room.
                        let mut send = if item % 2 == 1 {
                            queue.send_or_return(item)
                        } else {
                            queue.send(item)
                        };
                        let room = !closed && model.len() < capacity;
                        match poll_send(&mut send, &waker) {
                            Poll::Ready(Ok(())) => {
                                proptest::prop_assert!(room);
                                model.push_back(item);
                            }
                            Poll::Ready(Err(Unsent::Room(_))) => {
                                proptest::prop_assert!(false, "returned before it waited");
                            }
                            Poll::Ready(Err(Unsent::Closed(back))) => {
                                proptest::prop_assert!(closed);
                                proptest::prop_assert_eq!(back, item);
                            }
                            Poll::Pending => {
                                proptest::prop_assert!(!room && !closed);
                                waiting.push(Waiting { send, item, woken, waker, seen: 0 });
                            }
                        }
                    }
                    Op::PollSend(n) if !waiting.is_empty() => {
                        let at = n % waiting.len();
                        let room = !closed && model.len() < capacity;
                        let entry = &mut waiting[at];
                        entry.seen = entry.woken.0.load(Ordering::SeqCst);
                        match poll_send(&mut entry.send, &entry.waker.clone()) {
                            Poll::Ready(Ok(())) => {
                                proptest::prop_assert!(room);
                                model.push_back(entry.item);
                                waiting.remove(at);
                            }
                            Poll::Ready(Err(Unsent::Room(back))) => {
                                // Only a send that asked, into an empty queue.
                                proptest::prop_assert!(room && model.is_empty());
                                proptest::prop_assert_eq!(back % 2, 1);
                                proptest::prop_assert_eq!(back, entry.item);
                                waiting.remove(at);
                            }
                            Poll::Ready(Err(Unsent::Closed(back))) => {
                                proptest::prop_assert!(closed);
                                proptest::prop_assert_eq!(back, entry.item);
                                waiting.remove(at);
                            }
                            Poll::Pending => proptest::prop_assert!(!room && !closed),
                        }
                    }
                    Op::DropSend(n) if !waiting.is_empty() => {
                        let at = n % waiting.len();
                        drop(waiting.remove(at));
                    }
                    Op::PollSend(_) | Op::DropSend(_) => {}
                }
                // No lost wake-ups.
                let room = model.len() < capacity;
                if closed {
                    proptest::prop_assert!(waiting.iter().all(Waiting::woken_since_poll));
                } else if room && !waiting.is_empty() {
                    proptest::prop_assert!(
                        waiting.iter().any(Waiting::woken_since_poll),
                        "room for a waiting send, and none of them was woken"
                    );
                }
                if receiver_waits && (closed || !model.is_empty()) {
                    proptest::prop_assert!(
                        receiver_woken.0.load(Ordering::SeqCst) > receiver_seen,
                        "an item or the close arrived and the consumer was not woken"
                    );
                }
                proptest::prop_assert_eq!(queue.len(), model.len());
            }
        }
    }
}
