//! `ServerId`: who a server is, as a small value.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity of one server: unique in the process, the same for the
/// server's whole life, restarts included (a restart keeps the handle, and
/// so the id). OTP's pid, ractor's `ActorId`, as a plain value.
///
/// Ask for it with [`Handle::id`](crate::Handle::id),
/// [`WeakHandle::id`](crate::WeakHandle::id),
/// [`Context::id`](crate::Context::id); a [`Down`](crate::Down) carries the
/// id of the server that ended, so the two compare directly:
///
/// ```
/// use patchboard::{server, Down, Server, ServerId};
///
/// struct Worker;
/// #[server]
/// impl Worker {
///     fn work(&self) {}
/// }
///
/// #[derive(Default)]
/// struct Watcher { ended: Vec<ServerId> }
/// #[server]
/// impl Watcher {
///     #[on_down]
///     fn down(&mut self, down: Down) { self.ended.push(down.id); }
///     fn ended(&self) -> Vec<ServerId> { self.ended.clone() }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (one, two) = (Worker.spawn(), Worker.spawn());
/// assert_ne!(one.id(), two.id());
/// let watcher = Watcher::default().spawn();
/// watcher.monitor(&one);
/// watcher.monitor(&two);
/// two.stop().await;
/// assert_eq!(watcher.ended().await.unwrap(), [two.id()]);
/// println!("{} ended", two.id()); // "#2 ended", or another number
/// # }
/// ```
///
/// Ids are handed out by one process-wide counter, in spawn order, and are
/// never reused (64 bits: at a billion spawns a second, for 584 years).
/// They order servers by when they were spawned. An id means nothing in
/// another process: a remote server's handle has an id of this process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(NonZeroU64);

/// The next id to hand out.
static NEXT: AtomicU64 = AtomicU64::new(1);

impl ServerId {
    /// A new id, never handed out before.
    pub(crate) fn next() -> ServerId {
        // Relaxed: only uniqueness matters, which the read-modify-write
        // gives on its own.
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        match NonZeroU64::new(id) {
            Some(id) => ServerId(id),
            // 2^64 spawns: not in this universe's lifetime.
            None => unreachable!("server ids exhausted"),
        }
    }

    /// The id as a number (for metrics labels, logs, a map keyed by `u64`).
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The id whose number is `id` (0 is none), for a figure kept in an
    /// atomic.
    #[cfg(feature = "inventory")]
    pub(crate) fn from_u64(id: u64) -> Option<ServerId> {
        NonZeroU64::new(id).map(ServerId)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({})", self.0)
    }
}

/// `#42`.
impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_ordered_and_print_as_numbers() {
        let (one, two) = (ServerId::next(), ServerId::next());
        assert!(one < two);
        assert_eq!(format!("{two}"), format!("#{}", two.get()));
        assert_eq!(format!("{two:?}"), format!("ServerId({})", two.get()));
    }
}
