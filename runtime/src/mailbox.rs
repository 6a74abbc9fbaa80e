//! The server's mailbox: a bounded normal lane, an optional priority lane,
//! and the order in which the loop takes from them.

use async_channel::{Receiver, Sender, TryRecvError};

use crate::__private::Message;
use crate::error::CallError;

/// At most this many priority requests are served in a row while normal
/// requests are waiting; then one normal request goes first.
pub const PRIORITY_BURST: usize = 32;

/// What travels through a mailbox.
pub(crate) enum Envelope<R> {
    /// A request built by a handle method.
    Request(R),
    /// [`Handle::stop`](crate::Handle::stop): everything queued before it is
    /// served, nothing after it.
    Stop,
}

/// The sending side, held by every handle.
pub(crate) struct Senders<R> {
    pub(crate) normal: Sender<Envelope<R>>,
    pub(crate) priority: Option<Sender<Envelope<R>>>,
}

impl<R> Senders<R> {
    /// Closes both lanes for senders and receivers alike.
    pub(crate) fn close(&self) {
        self.normal.close();
        if let Some(priority) = &self.priority {
            priority.close();
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

/// The receiving side, held by the serve loop (one per replica in a pool).
pub(crate) struct Mailbox<R> {
    normal: Lane<R>,
    priority: Option<Lane<R>>,
    /// Priority requests served since the last normal one.
    streak: usize,
}

struct Lane<R> {
    rx: Receiver<Envelope<R>>,
    /// The lane reported closed and empty; it is not polled again.
    done: bool,
}

impl<R> Clone for Mailbox<R> {
    fn clone(&self) -> Self {
        let lane = |lane: &Lane<R>| Lane {
            rx: lane.rx.clone(),
            done: false,
        };
        Mailbox {
            normal: lane(&self.normal),
            priority: self.priority.as_ref().map(lane),
            streak: 0,
        }
    }
}

/// A bounded mailbox of `capacity` slots per lane.
pub(crate) fn mailbox<R>(capacity: usize, priority: bool) -> (Senders<R>, Mailbox<R>) {
    let capacity = capacity.max(1);
    let (normal_tx, normal_rx) = async_channel::bounded(capacity);
    let (priority_tx, priority_rx) = if priority {
        let (tx, rx) = async_channel::bounded(capacity);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let lane = |rx| Lane { rx, done: false };
    (
        Senders {
            normal: normal_tx,
            priority: priority_tx,
        },
        Mailbox {
            normal: lane(normal_rx),
            priority: priority_rx.map(lane),
            streak: 0,
        },
    )
}

impl<R> Lane<R> {
    fn try_take(&mut self) -> Option<Envelope<R>> {
        if self.done {
            return None;
        }
        match self.rx.try_recv() {
            Ok(envelope) => Some(envelope),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => {
                self.done = true;
                None
            }
        }
    }

    /// The next envelope, waiting for one; `None` once the lane is closed
    /// and empty (and from then on).
    async fn take(&mut self) -> Option<Envelope<R>> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Ok(envelope) => Some(envelope),
            Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

impl<R: Message> Mailbox<R> {
    /// The next envelope in serving order, or `None` once every handle is
    /// gone (or the mailbox was closed) and both lanes are empty.
    ///
    /// Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn recv(&mut self) -> Option<Envelope<R>> {
        if self.priority.is_none() {
            // One lane: its own receive already tries before it waits.
            if self.normal.done {
                return None;
            }
            let envelope = self.normal.rx.recv().await.ok();
            self.normal.done = envelope.is_none();
            return envelope;
        }
        loop {
            if let Some(envelope) = self.try_recv() {
                return Some(envelope);
            }
            let priority_done = self.priority.as_ref().is_none_or(|lane| lane.done);
            if self.normal.done && priority_done {
                return None;
            }
            // Both lanes are empty: wait for whichever fills first. A lane
            // that reports closed is marked done and the loop looks again.
            let normal_done = self.normal.done;
            let envelope = match &mut self.priority {
                Some(priority) if !priority.done => tokio::select! {
                    biased;
                    envelope = priority.take() => envelope.map(|e| (e, true)),
                    envelope = self.normal.take(), if !normal_done => envelope.map(|e| (e, false)),
                },
                _ => self.normal.take().await.map(|e| (e, false)),
            };
            if let Some((envelope, urgent)) = envelope {
                self.streak = if urgent { self.streak + 1 } else { 0 };
                return Some(envelope);
            }
        }
    }

    /// The next envelope if one is ready: priority first, except that after
    /// [`PRIORITY_BURST`] priority requests in a row a waiting normal
    /// request goes first.
    fn try_recv(&mut self) -> Option<Envelope<R>> {
        let normal_first = self.streak >= PRIORITY_BURST;
        if !normal_first && let Some(envelope) = self.priority.as_mut().and_then(Lane::try_take) {
            self.streak += 1;
            return Some(envelope);
        }
        if let Some(envelope) = self.normal.try_take() {
            self.streak = 0;
            return Some(envelope);
        }
        let envelope = self.priority.as_mut().and_then(Lane::try_take)?;
        self.streak += 1;
        Some(envelope)
    }

    /// No priority lane: [`normal_receiver`](Self::normal_receiver) is all
    /// there is to receive from.
    pub(crate) fn has_one_lane(&self) -> bool {
        self.priority.is_none()
    }

    pub(crate) fn normal_receiver(&self) -> &Receiver<Envelope<R>> {
        &self.normal.rx
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
        while let Some(envelope) = self.try_recv() {
            if let Envelope::Request(mut request) = envelope
                && let Some(reply) = request.reply_slot()
            {
                reply.fail(error.clone());
            }
        }
    }
}
