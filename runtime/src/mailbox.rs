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

    fn label(envelope: Option<Envelope<Label>>) -> &'static str {
        match envelope {
            Some(Envelope::Request(Label(text))) => text,
            Some(Envelope::Stop) => "stop",
            None => "none",
        }
    }

    #[test]
    fn priority_goes_first_but_never_more_than_a_burst_in_a_row() {
        let (senders, mut mailbox) = mailbox::<Label>(128, true);
        senders
            .normal
            .try_send(Envelope::Request(Label("normal 1")))
            .unwrap();
        senders
            .normal
            .try_send(Envelope::Request(Label("normal 2")))
            .unwrap();
        let priority = senders.priority.as_ref().unwrap();
        for _ in 0..PRIORITY_BURST + 2 {
            priority
                .try_send(Envelope::Request(Label("urgent")))
                .unwrap();
        }
        let order: Vec<_> =
            std::iter::from_fn(|| mailbox.try_recv().map(|e| label(Some(e)))).collect();
        let mut expected = vec!["urgent"; PRIORITY_BURST];
        expected.push("normal 1");
        expected.extend(["urgent", "urgent"]);
        expected.push("normal 2");
        assert_eq!(order, expected);
    }

    #[test]
    fn close_and_drain_empties_both_lanes_and_refuses_new_requests() {
        let (senders, mut mailbox) = mailbox::<Label>(4, true);
        senders
            .normal
            .try_send(Envelope::Request(Label("a")))
            .unwrap();
        senders
            .priority
            .as_ref()
            .unwrap()
            .try_send(Envelope::Request(Label("b")))
            .unwrap();
        mailbox.close_and_drain(&CallError::Closed);
        assert!(mailbox.try_recv().is_none());
        assert!(senders.normal.try_send(Envelope::Stop).is_err());
        assert!(senders.normal.is_closed());
    }

    #[tokio::test]
    async fn recv_returns_none_once_every_sender_is_gone_and_the_lanes_are_empty() {
        let (senders, mut mailbox) = mailbox::<Label>(4, true);
        senders
            .normal
            .try_send(Envelope::Request(Label("last")))
            .unwrap();
        drop(senders);
        assert_eq!(label(mailbox.recv().await), "last");
        assert_eq!(label(mailbox.recv().await), "none");
        assert_eq!(label(mailbox.recv().await), "none");
    }

    #[test]
    fn capacity_zero_is_raised_to_one() {
        let (senders, _mailbox) = mailbox::<Label>(0, false);
        assert!(senders.normal.try_send(Envelope::Stop).is_ok());
        assert!(senders.normal.try_send(Envelope::Stop).is_err());
    }
}
