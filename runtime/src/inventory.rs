//! The servers running in this process, as Erlang's `observer` lists
//! processes: a [`snapshot`] of each one's id, name, type, state, mailbox
//! depth per lane, requests served, restarts, links and monitors, and
//! uptime; and [`events`], a stream told when a server starts and ends.
//!
//! Needs the `inventory` feature. Every server started with the feature on
//! is listed, from its spawn until its end is complete: once
//! [`Handle::closed`](crate::Handle::closed) (or `stop`, `drain`) returns,
//! the server is no longer in a snapshot. What it costs a server per spawn
//! and per call is measured in BENCHMARKS.md.
//!
//! ```
//! use patchboard::{server, Builder};
//! use patchboard_runtime::inventory; // `patchboard::inventory`
//!
//! struct Counter(u64);
//!
//! #[server]
//! impl Counter {
//!     fn bump(&mut self) -> u64 { self.0 += 1; self.0 }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut events = inventory::events(16);
//! let counter = Builder::new(Counter(0)).name("counter").spawn();
//! counter.bump().await.unwrap();
//!
//! let info = inventory::server(counter.id()).unwrap();
//! assert_eq!(info.name.as_deref(), Some("counter"));
//! assert!(info.server_type.ends_with("Counter"));
//! assert_eq!(info.served, 1);
//! assert_eq!(info.mailbox, [0]); // one lane, empty
//!
//! let id = counter.id();
//! counter.stop().await;
//! assert!(inventory::server(id).is_none());
//! assert!(matches!(events.recv().await, Some(inventory::Event::Started { id: started, .. }) if started == id));
//! assert!(matches!(events.recv().await, Some(inventory::Event::Ended { id: ended, .. }) if ended == id));
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::control::{Control, Then};
use crate::error::StopReason;
use crate::id::ServerId;
use crate::mailbox::Depths;
use crate::subscription::{Subscriber, Subscription, subscription};

/// One running server, as a [`snapshot`] saw it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Its identity, the same across restarts.
    pub id: ServerId,
    /// Its [`Builder::name`](crate::Builder::name), if it was given one.
    pub name: Option<Arc<str>>,
    /// The Rust type of its state (`std::any::type_name`).
    pub server_type: &'static str,
    /// The supervisor it was started under, if any.
    pub supervisor: Option<ServerId>,
    /// What it is doing.
    pub state: State,
    /// Requests waiting in each lane: the normal lane first, then priority
    /// levels 1, 2, … (one entry for a server without `#[priority]`).
    pub mailbox: Vec<usize>,
    /// Requests and casts whose handler ran to its end (or panicked),
    /// counting calls its callers served themselves; timer ticks and hooks
    /// not counted.
    pub served: u64,
    /// Times its state was replaced by a fresh one ([`Restart`](crate::Restart)).
    pub restarts: u64,
    /// Calls to it refused because they would have deadlocked: a handler
    /// calling its own server ([`CallError::SelfCall`](crate::CallError::SelfCall))
    /// or a server that waits for the caller
    /// ([`CallError::Deadlock`](crate::CallError::Deadlock)).
    pub deadlocks_refused: u64,
    /// The server whose code made the last of those calls.
    pub last_deadlock_from: Option<ServerId>,
    /// Serve loops still running: 1, or a pool's replicas.
    pub replicas: usize,
    /// Servers that watch this one, and what they do when it ends.
    pub watched_by: Vec<Watch>,
    /// Servers this one watches (among those in the same snapshot).
    pub watching: Vec<Watch>,
    /// Time since it was spawned.
    pub uptime: Duration,
}

impl ServerInfo {
    /// How long the handler running now has run, if one runs.
    pub fn serving_for(&self) -> Option<Duration> {
        match self.state {
            State::Serving { since } => Some(since.elapsed()),
            _ => None,
        }
    }

    /// Requests waiting in every lane.
    pub fn queued(&self) -> usize {
        self.mailbox.iter().sum()
    }
}

/// What a server is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Its `#[on_start]` hook has not returned yet (after a spawn, or a
    /// restart).
    Starting,
    /// Waiting for a request.
    Idle,
    /// A handler runs, since `since` (for a pool: the latest to begin).
    Serving {
        /// When the handler began.
        since: Instant,
    },
    /// Asked to stop or drain: what is queued is served, new calls from
    /// outside are refused.
    Draining,
}

/// One watch between two servers: [`Handle::monitor`](crate::Handle::monitor),
/// [`drain_after`](crate::Handle::drain_after) or
/// [`stop_with`](crate::Handle::stop_with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The server at the other end.
    pub id: ServerId,
    /// What the watcher does when the watched server ends.
    pub kind: WatchKind,
}

/// What a watcher does when the server it watches ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchKind {
    /// Is told (`#[on_down]`): OTP's monitor.
    Monitor,
    /// Drains.
    DrainAfter,
    /// Stops after its current handler: OTP's link, one way.
    StopWith,
}

impl From<Then> for WatchKind {
    fn from(then: Then) -> Self {
        match then {
            Then::Notify => WatchKind::Monitor,
            Then::Drain => WatchKind::DrainAfter,
            Then::Stop => WatchKind::StopWith,
        }
    }
}

/// A server started or ended, for [`events`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A server was spawned: it is listed from now on.
    Started {
        /// Its identity.
        id: ServerId,
        /// Its name, if it has one.
        name: Option<Arc<str>>,
        /// The Rust type of its state.
        server_type: &'static str,
    },
    /// A server has ended: it is listed no more.
    Ended {
        /// Its identity.
        id: ServerId,
        /// Its name, if it has one.
        name: Option<Arc<str>>,
        /// The Rust type of its state.
        server_type: &'static str,
        /// Why it ended.
        reason: StopReason,
    },
}

/// The servers running now, by id (the order they were spawned in).
pub fn snapshot() -> Vec<ServerInfo> {
    snapshot_with(|_| ())
        .into_iter()
        .map(|(info, ())| info)
        .collect()
}

/// A [`snapshot`], each server with what `read` reads of its `Control`.
pub(crate) fn snapshot_with<T>(read: impl Fn(&Control) -> T) -> Vec<(ServerInfo, T)> {
    let entries: Vec<Entry> = table().servers.values().cloned().collect();
    let mut infos: Vec<ServerInfo> = entries.iter().map(Entry::read).collect();
    // Who watches whom, seen from the watcher's side.
    let mut watching: BTreeMap<ServerId, Vec<Watch>> = BTreeMap::new();
    for info in &infos {
        for watch in &info.watched_by {
            watching.entry(watch.id).or_default().push(Watch {
                id: info.id,
                kind: watch.kind,
            });
        }
    }
    for info in &mut infos {
        info.watching = watching.remove(&info.id).unwrap_or_default();
    }
    infos
        .into_iter()
        .zip(&entries)
        .map(|(info, entry)| (info, read(&entry.control)))
        .collect()
}

/// The server `id`, if it runs. (Its [`watching`](ServerInfo::watching) is
/// left empty: only a [`snapshot`] sees both ends of every watch.)
pub fn server(id: ServerId) -> Option<ServerInfo> {
    let entry = table().servers.get(&id).cloned()?;
    Some(entry.read())
}

/// How many servers run now.
pub fn len() -> usize {
    table().servers.len()
}

/// A stream of servers starting and ending, from now on, buffering up to
/// `capacity` events (at least one). A subscriber that falls behind loses
/// the events that find its buffer full, counted by
/// [`Subscription::missed`]: take a [`snapshot`] then to catch up. The
/// stream never ends by itself; drop it to unsubscribe. (Created by a
/// server's code, it ends with that server, like every
/// [`subscription`](crate::subscription).)
pub fn events(capacity: usize) -> Subscription<Event> {
    let (subscriber, subscription) = subscription(capacity);
    let mut table = table();
    table
        .subscribers
        .retain(|subscriber| !subscriber.is_closed());
    table.subscribers.push(subscriber);
    subscription
}

/// A server's mailbox lanes, whatever its request type.
pub(crate) trait Lanes: Send + Sync {
    fn depths(&self) -> Vec<usize>;
}

impl<R: Send> Lanes for Depths<R> {
    fn depths(&self) -> Vec<usize> {
        self.read()
    }
}

/// What the table keeps of one server.
#[derive(Clone)]
struct Entry {
    control: Arc<Control>,
    server_type: &'static str,
    lanes: Arc<dyn Lanes>,
}

impl Entry {
    fn read(&self) -> ServerInfo {
        let control = &self.control;
        let stats = control.stats().read();
        let signals = control.signals();
        let state = if !stats.started {
            State::Starting
        } else if signals.draining() || signals.stopping() || signals.stops_now() {
            State::Draining
        } else if let Some(since) = stats.serving_since {
            State::Serving { since }
        } else {
            State::Idle
        };
        ServerInfo {
            id: control.id(),
            name: control.shared_name(),
            server_type: self.server_type,
            supervisor: stats.supervisor,
            state,
            mailbox: self.lanes.depths(),
            served: stats.served,
            restarts: stats.restarts,
            deadlocks_refused: stats.cycles,
            last_deadlock_from: stats.cycle_from,
            replicas: control.live(),
            watched_by: control
                .watchers()
                .into_iter()
                .map(|(id, then)| Watch {
                    id,
                    kind: then.into(),
                })
                .collect(),
            watching: Vec::new(),
            uptime: stats.uptime,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.control.id())
            .field("server_type", &self.server_type)
            .finish_non_exhaustive()
    }
}

/// Every running server, and who is told of starts and ends.
struct Table {
    servers: BTreeMap<ServerId, Entry>,
    subscribers: Vec<Subscriber<Event>>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    servers: BTreeMap::new(),
    subscribers: Vec::new(),
});

fn table() -> MutexGuard<'static, Table> {
    // Held for a few instructions of ours, never across user code: a
    // poisoned lock is sound.
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    fn tell(&mut self, event: impl FnOnce() -> Event) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = event();
        self.subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_connected());
    }
}

/// Lists a server that is about to be spawned.
pub(crate) fn add(control: &Arc<Control>, server_type: &'static str, lanes: Arc<dyn Lanes>) {
    let mut table = table();
    table.servers.insert(
        control.id(),
        Entry {
            control: control.clone(),
            server_type,
            lanes,
        },
    );
    table.tell(|| Event::Started {
        id: control.id(),
        name: control.shared_name(),
        server_type,
    });
}

/// Unlists a server whose end is complete.
pub(crate) fn remove(control: &Control) {
    let mut table = table();
    let Some(entry) = table.servers.remove(&control.id()) else {
        return;
    };
    table.tell(|| Event::Ended {
        id: control.id(),
        name: control.shared_name(),
        server_type: entry.server_type,
        reason: control.reason().cloned().unwrap_or(StopReason::Aborted),
    });
    // The entry (and the server's `Control`, if it was the last to hold
    // it) is dropped after the lock is released.
    drop(table);
    drop(entry);
}
