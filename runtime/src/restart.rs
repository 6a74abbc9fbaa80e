//! Restarting a server whose handler panicked (OTP's supervisor, for one
//! server): a factory rebuilds the state, within a restart intensity.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::StopReason;

/// A supervisor's side of one supervised server (`supervisor.rs`): told
/// when an incarnation has started, and asked, after one ends, whether the
/// next one may start. The serve task waits for the answer, so that a
/// supervisor can restart several children in its own order.
pub(crate) trait Supervision: Send + Sync {
    /// `#[on_start]` of the current incarnation returned `Ok`.
    fn started(&self);

    /// The current incarnation ended: `Some(reason)` for a failure (a
    /// panic, a failed start, a factory that panicked), `None` because the
    /// supervisor asked it to end (`Control::request_restart`). Resolves
    /// to what comes next.
    fn ended(&self, reason: Option<StopReason>) -> Pin<Box<dyn Future<Output = Verdict> + Send>>;
}

/// What a supervisor decides for its child between two incarnations.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Build the next state with the factory and start it.
    Restart,
    /// End the server for good, for this reason.
    End(StopReason),
}

/// When and how to restart a server: pass to
/// [`Builder::restart`](crate::Builder::restart).
///
/// After a handler panics (and, with
/// [`on_start_failure`](Self::on_start_failure), after `#[on_start]`
/// fails), `#[on_stop]` runs for the broken instance, `factory` builds a new
/// state, `#[on_start]` runs for it, and serving continues **from the same
/// mailbox**: requests queued across the restart are served by the new
/// instance, and every handle stays valid. The call that panicked still gets
/// [`CallError::Panicked`](crate::CallError::Panicked).
///
/// At most [`max_restarts`](Self::max_restarts) restarts (default 3) may
/// happen within any [`window`](Self::window) (default 5 seconds); one more
/// and the server stops for good, as without a policy. Restarts older than
/// the window no longer count.
///
/// ```
/// use std::time::Duration;
/// use patchboard::{server, Builder, CallError, Restart};
///
/// #[derive(Default)]
/// struct Flaky { calls: u32 }
///
/// #[server]
/// impl Flaky {
///     fn call(&mut self, fail: bool) -> u32 {
///         assert!(!fail, "asked to fail");
///         self.calls += 1;
///         self.calls
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flaky = Builder::new(Flaky::default())
///     .restart(Restart::new(Flaky::default).max_restarts(5).window(Duration::from_secs(10)))
///     .spawn();
/// assert_eq!(flaky.call(false).await, Ok(1));
/// assert!(matches!(flaky.call(true).await, Err(CallError::Panicked(_))));
/// assert_eq!(flaky.call(false).await, Ok(1)); // a fresh state, same handle
/// # }
/// ```
pub struct Restart<S> {
    factory: Arc<dyn Fn() -> S + Send + Sync>,
    max_restarts: usize,
    window: Duration,
    on_start_failure: bool,
    /// A supervisor decides instead of the limits above.
    supervision: Option<Arc<dyn Supervision>>,
}

impl<S> Restart<S> {
    /// Restarts with states built by `factory`.
    pub fn new(factory: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Restart {
            factory: Arc::new(factory),
            max_restarts: 3,
            window: Duration::from_secs(5),
            on_start_failure: false,
            supervision: None,
        }
    }

    /// Restarts decided by a supervisor.
    pub(crate) fn supervised(mut self, supervision: Arc<dyn Supervision>) -> Self {
        self.supervision = Some(supervision);
        self
    }

    /// At most `max` restarts within one [`window`](Self::window); `0`
    /// never restarts, `usize::MAX` always does.
    pub fn max_restarts(mut self, max: usize) -> Self {
        self.max_restarts = max;
        self
    }

    /// The time window the restart limit counts in. A zero window forgets
    /// every restart at once, so the limit never applies; `Duration::MAX`
    /// never forgets, so at most `max_restarts` happen in the server's
    /// life. A failed restart (the factory panicked) counts as one.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Also restart when `#[on_start]` fails or panics (off by default:
    /// a server that cannot start usually cannot start a moment later
    /// either).
    pub fn on_start_failure(mut self, restart: bool) -> Self {
        self.on_start_failure = restart;
        self
    }

    pub(crate) fn tracker(&self) -> Restarts<S> {
        Restarts {
            policy: self.clone(),
            recent: VecDeque::new(),
        }
    }
}

impl<S> Clone for Restart<S> {
    fn clone(&self) -> Self {
        Restart {
            factory: self.factory.clone(),
            max_restarts: self.max_restarts,
            window: self.window,
            on_start_failure: self.on_start_failure,
            supervision: self.supervision.clone(),
        }
    }
}

impl<S> fmt::Debug for Restart<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restart")
            .field("max_restarts", &self.max_restarts)
            .field("window", &self.window)
            .field("on_start_failure", &self.on_start_failure)
            .field("supervised", &self.supervision.is_some())
            .finish()
    }
}

/// One serve loop's restart history.
pub(crate) struct Restarts<S> {
    policy: Restart<S>,
    recent: VecDeque<Instant>,
}

impl<S> Restarts<S> {
    /// Whether the policy allows another restart after a stop (`started`:
    /// after a handler panic; else after a failed start), counting it.
    pub(crate) fn allow(&mut self, started: bool) -> bool {
        if !started && !self.policy.on_start_failure {
            return false;
        }
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// The supervisor that decides this server's restarts, if it has one.
    pub(crate) fn supervision(&self) -> Option<&Arc<dyn Supervision>> {
        self.policy.supervision.as_ref()
    }

    /// A fresh state from the factory (which may panic: the caller catches).
    pub(crate) fn build(&self) -> S {
        (self.policy.factory)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_max_restarts_within_the_window_then_none() {
        let mut restarts = Restart::new(|| 1u8)
            .max_restarts(2)
            .window(Duration::from_secs(10))
            .tracker();
        assert!(restarts.allow(true));
        assert!(restarts.allow(true));
        assert!(!restarts.allow(true));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(restarts.allow(true), "old restarts stopped counting");
        assert_eq!(restarts.build(), 1);
    }

    #[test]
    fn start_failures_restart_only_when_asked() {
        let mut plain = Restart::new(|| 1u8).tracker();
        assert!(!plain.allow(false));
        let mut asked = Restart::new(|| 1u8).on_start_failure(true).tracker();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert!(runtime.block_on(async { asked.allow(false) }));
    }
}
