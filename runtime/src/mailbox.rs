//! The server's mailbox: a bounded normal lane, an optional priority lane,
//! and the order in which the serve loop takes from them.
//!
//! Closing is how a server stops taking requests: async-channel's close is
//! atomic with respect to sends, so once a lane is closed no request can
//! arrive, while everything already queued can still be received. `stop()`
//! closes both lanes and lets the loop serve what was queued; the loop's end
//! closes them and answers what is left with an error.

use async_channel::{Receiver, Sender, TryRecvError, WeakSender};

use crate::error::CallError;
use crate::message::Message;

/// The mailbox capacity when neither `#[server(capacity = N)]` nor
/// [`Builder::capacity`](crate::Builder::capacity) says otherwise.
pub const DEFAULT_CAPACITY: usize = 16;

/// The largest mailbox capacity (per lane); larger ones are lowered to it.
/// A mailbox allocates its slots up front, so this bounds what one setting
/// can allocate (the request's size plus 8 bytes per slot).
pub const MAX_CAPACITY: usize = 1 << 20;

/// At most this many priority requests are served in a row while normal
/// requests are waiting; then one normal request goes first.
pub const PRIORITY_BURST: usize = 32;

/// The sending side, held by every handle.
pub(crate) struct Senders<R> {
    normal: Sender<R>,
    priority: Option<Sender<R>>,
}

/// The sending side without keeping the server alive.
pub(crate) struct WeakSenders<R> {
    normal: WeakSender<R>,
    priority: Option<WeakSender<R>>,
}

/// The receiving side, held by the serve loop (one per replica in a pool).
pub(crate) struct Mailbox<R> {
    normal: Lane<R>,
    priority: Option<Lane<R>>,
    /// Priority requests served since the last normal one.
    streak: usize,
}

struct Lane<R> {
    rx: Receiver<R>,
    /// The lane reported closed and empty; it is not polled again.
    done: bool,
}

/// A bounded mailbox of `capacity` slots per lane, clamped to
/// `1..=MAX_CAPACITY`.
pub(crate) fn mailbox<R>(capacity: usize, priority: bool) -> (Senders<R>, Mailbox<R>) {
    let capacity = capacity.clamp(1, MAX_CAPACITY);
    let (normal_tx, normal_rx) = async_channel::bounded(capacity);
    let (priority_tx, priority_rx) = if priority {
        let (tx, rx) = async_channel::bounded(capacity);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let senders = Senders {
        normal: normal_tx,
        priority: priority_tx,
    };
    let mailbox = Mailbox {
        normal: Lane::new(normal_rx),
        priority: priority_rx.map(Lane::new),
        streak: 0,
    };
    (senders, mailbox)
}

impl<R> Senders<R> {
    /// The lane a request goes to: the priority lane if asked for and the
    /// server has one.
    pub(crate) fn lane(&self, priority: bool) -> &Sender<R> {
        match &self.priority {
            Some(lane) if priority => lane,
            _ => &self.normal,
        }
    }

    /// Refuses new requests on both lanes; queued ones can still be
    /// received.
    pub(crate) fn close(&self) {
        self.normal.close();
        if let Some(priority) = &self.priority {
            priority.close();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.normal.is_closed()
    }

    /// Requests waiting in both lanes.
    pub(crate) fn len(&self) -> usize {
        self.normal.len() + self.priority.as_ref().map_or(0, Sender::len)
    }

    pub(crate) fn downgrade(&self) -> WeakSenders<R> {
        WeakSenders {
            normal: self.normal.downgrade(),
            priority: self.priority.as_ref().map(Sender::downgrade),
        }
    }
}

impl<R> Clone for Senders<R> {
    fn clone(&self) -> Self {
        Senders {
            normal: self.normal.clone(),
            priority: self.priority.clone(),
        }
    }
}

impl<R> WeakSenders<R> {
    /// Full senders, or `None` once the mailbox is closed or every full
    /// sender is gone.
    pub(crate) fn upgrade(&self) -> Option<Senders<R>> {
        let normal = self.normal.upgrade()?;
        let priority = match &self.priority {
            Some(weak) => Some(weak.upgrade()?),
            None => None,
        };
        Some(Senders { normal, priority })
    }
}

impl<R> Clone for WeakSenders<R> {
    fn clone(&self) -> Self {
        WeakSenders {
            normal: self.normal.clone(),
            priority: self.priority.clone(),
        }
    }
}

impl<R> Clone for Mailbox<R> {
    /// Another receiver of the same lanes, for another replica of a pool.
    fn clone(&self) -> Self {
        Mailbox {
            normal: Lane::new(self.normal.rx.clone()),
            priority: self
                .priority
                .as_ref()
                .map(|lane| Lane::new(lane.rx.clone())),
            streak: 0,
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

    /// The next request, waiting for one; `None` once the lane is closed
    /// and empty (and from then on).
    async fn take(&mut self) -> Option<R> {
        if self.done {
            return None;
        }
        let request = self.rx.recv().await.ok();
        self.done = request.is_none();
        request
    }
}

impl<R: Message> Mailbox<R> {
    /// The next request in serving order, or `None` once both lanes are
    /// closed (by `stop()`, by the loop, or because every handle is gone)
    /// and empty.
    ///
    /// Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn recv(&mut self) -> Option<R> {
        match &self.priority {
            Some(priority) if !priority.done => {}
            _ => return self.recv_one().await,
        }
        loop {
            if let Some(request) = self.try_recv() {
                return Some(request);
            }
            let priority = self.priority.as_mut()?;
            if self.normal.done && priority.done {
                return None;
            }
            // Both lanes are empty: wait for whichever fills first. A lane
            // that reports closed is marked done and the loop looks again.
            let normal_done = self.normal.done;
            let taken = if priority.done {
                self.normal.take().await.map(|request| (request, false))
            } else {
                tokio::select! {
                    biased;
                    request = priority.take() => request.map(|request| (request, true)),
                    request = self.normal.take(), if !normal_done => {
                        request.map(|request| (request, false))
                    }
                }
            };
            if let Some((request, urgent)) = taken {
                self.streak = if urgent { self.streak + 1 } else { 0 };
                return Some(request);
            }
        }
    }

    /// The next request from the normal lane: all there is to receive from
    /// when the server has no priority lane (the common case), and the
    /// serve loop's fast path.
    pub(crate) async fn recv_one(&mut self) -> Option<R> {
        if self.normal.done {
            return None;
        }
        let request = self.normal.rx.recv().await.ok();
        self.normal.done = request.is_none();
        request
    }

    /// No priority lane: [`recv_one`](Self::recv_one) receives everything.
    pub(crate) fn has_one_lane(&self) -> bool {
        self.priority.is_none()
    }

    /// The next request if one is ready: priority first, except that after
    /// [`PRIORITY_BURST`] priority requests in a row a waiting normal
    /// request goes first.
    fn try_recv(&mut self) -> Option<R> {
        let normal_first = self.streak >= PRIORITY_BURST;
        if !normal_first && let Some(request) = self.priority.as_mut().and_then(Lane::try_take) {
            self.streak += 1;
            return Some(request);
        }
        if let Some(request) = self.normal.try_take() {
            self.streak = 0;
            return Some(request);
        }
        let request = self.priority.as_mut().and_then(Lane::try_take)?;
        self.streak += 1;
        Some(request)
    }

    /// Refuses new requests: senders fail at once from now on.
    pub(crate) fn close(&self) {
        self.normal.rx.close();
        if let Some(priority) = &self.priority {
            priority.rx.close();
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
        let (senders, mut mailbox) = mailbox::<Label>(128, true);
        let (normal, priority) = (senders.lane(false), senders.lane(true));
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

    #[test]
    fn close_and_drain_empties_both_lanes_and_refuses_new_requests() {
        let (senders, mut mailbox) = mailbox::<Label>(4, true);
        senders.lane(false).try_send(Label("a")).unwrap();
        senders.lane(true).try_send(Label("b")).unwrap();
        mailbox.close_and_drain(&CallError::Closed);
        assert!(mailbox.try_recv().is_none());
        assert!(senders.lane(false).try_send(Label("c")).is_err());
        assert!(senders.lane(true).try_send(Label("d")).is_err());
        assert!(senders.is_closed());
    }

    #[tokio::test]
    async fn closing_refuses_new_requests_on_both_lanes_but_keeps_the_queued_ones() {
        let (senders, mut mailbox) = mailbox::<Label>(4, true);
        senders.lane(false).try_send(Label("normal")).unwrap();
        senders.lane(true).try_send(Label("urgent")).unwrap();
        senders.close();
        assert!(senders.lane(true).try_send(Label("late")).is_err());
        assert_eq!(label(mailbox.recv().await), "urgent");
        assert_eq!(label(mailbox.recv().await), "normal");
        assert_eq!(label(mailbox.recv().await), "none");
    }

    #[tokio::test]
    async fn recv_returns_none_once_every_sender_is_gone_and_the_lanes_are_empty() {
        let (senders, mut mailbox) = mailbox::<Label>(4, true);
        senders.lane(false).try_send(Label("last")).unwrap();
        drop(senders);
        assert_eq!(label(mailbox.recv().await), "last");
        assert_eq!(label(mailbox.recv().await), "none");
        assert_eq!(label(mailbox.recv().await), "none");
    }

    #[test]
    fn capacity_is_clamped_between_one_and_the_maximum() {
        let (senders, _mailbox) = mailbox::<Label>(0, false);
        assert!(senders.lane(false).try_send(Label("a")).is_ok());
        assert!(senders.lane(false).try_send(Label("b")).is_err());
        let (senders, _mailbox) = mailbox::<Label>(usize::MAX, false);
        assert_eq!(senders.normal.capacity(), Some(MAX_CAPACITY));
    }
}
