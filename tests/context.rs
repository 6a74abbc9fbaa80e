//! Context in handlers: a method, hook or timer that asks for
//! `ctx: &Context<Self>` reaches its own server, with no set-up after
//! `spawn()`, in pools and across restarts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{LIMIT, PAUSED_LIMIT, within};
use patchboard::{Builder, CallError, Context, Restart, WeakHandle, server};
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Pager {
    pages: Vec<u32>,
    /// Set by `#[on_start]` from its context.
    me: Option<WeakHandle<Pager>>,
    ticks_saw_name: Arc<AtomicUsize>,
}

#[server]
impl Pager {
    #[on_start]
    fn start(&mut self, ctx: &Context<Self>) {
        self.me = Some(ctx.weak());
    }

    #[every(Duration::from_millis(10))]
    fn tick(&mut self, ctx: &Context<Self>) {
        if ctx.name() == Some("pager") {
            self.ticks_saw_name.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Records `page`, then sends itself the next one, up to `last`.
    async fn fetch(&mut self, page: u32, last: u32, ctx: &Context<Self>) {
        self.pages.push(page);
        if page < last {
            let me = ctx.handle().expect("a caller holds a handle");
            me.fetch(page + 1, last).no_wait().await.unwrap();
        }
    }

    fn pages(&self) -> Vec<u32> {
        self.pages.clone()
    }

    /// A call through the context that waits for its own server.
    async fn ask_myself(&self, ctx: &Context<Self>) -> Result<Vec<u32>, CallError> {
        ctx.handle().expect("a handle").pages().await
    }

    fn started_with_a_context(&self) -> bool {
        self.me.as_ref().is_some_and(|me| me.upgrade().is_some())
    }

    fn boom(&mut self) {
        panic!("boom");
    }

    /// Sends `mark` through the context, then waits until it was served:
    /// only another replica of the pool can serve it meanwhile.
    async fn relay(&mut self, served: Arc<Notify>, ctx: &Context<Self>) {
        let me = ctx.handle().expect("a handle");
        me.mark(served.clone()).no_wait().await.unwrap();
        served.notified().await;
    }

    fn mark(&mut self, served: Arc<Notify>) {
        served.notify_one();
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_reaches_its_own_server_without_set_up() {
    within(PAUSED_LIMIT, async {
        let pager = Builder::new(Pager::default()).name("pager").spawn();
        pager.fetch(1, 5).await.unwrap();
        // The follow-ups were queued behind this call, in order.
        assert_eq!(pager.pages().await, Ok(vec![1, 2, 3, 4, 5]));
        assert_eq!(pager.started_with_a_context().await, Ok(true));
        assert_eq!(
            pager.ask_myself().await,
            Ok(Err(CallError::SelfCall)),
            "a call through the context still may not wait for itself"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn hooks_and_timers_get_the_context_too() {
    within(PAUSED_LIMIT, async {
        let state = Pager::default();
        let ticks = state.ticks_saw_name.clone();
        let pager = Builder::new(state).name("pager").spawn();
        tokio::time::sleep(Duration::from_millis(35)).await;
        assert_eq!(pager.started_with_a_context().await, Ok(true));
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            3,
            "every tick saw its server's name"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pool_the_context_reaches_the_pool() {
    within(LIMIT, async {
        let pool = Builder::new(Pager::default()).pool(2).spawn();
        // The relaying replica is busy until its follow-up is served: the
        // other replica serves it, from the one mailbox the context reaches.
        pool.relay(Arc::new(Notify::new())).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_restarted_server_keeps_its_identity() {
    within(LIMIT, async {
        let pager = Builder::new(Pager::default())
            .restart(Restart::new(Pager::default))
            .spawn();
        assert!(matches!(pager.boom().await, Err(CallError::Panicked(_))));
        // The new incarnation's context reaches the same mailbox.
        pager.fetch(1, 3).await.unwrap();
        assert_eq!(pager.pages().await, Ok(vec![1, 2, 3]));
        assert_eq!(pager.started_with_a_context().await, Ok(true));
    })
    .await;
}

/// A server whose outside handles are all gone can no longer get a strong
/// handle from its context (it would keep itself alive for ever), while
/// the weak one still names it.
#[tokio::test]
async fn the_context_does_not_keep_its_server_alive() {
    within(LIMIT, async {
        let (pager, exit) = Builder::new(Pager::default()).spawn_with_exit();
        pager.fetch(1, 1).await.unwrap();
        drop(pager);
        let exited = exit.await;
        assert_eq!(exited.reason, patchboard::StopReason::HandlesDropped);
        let me = exited.state.unwrap().me.unwrap();
        assert!(me.upgrade().is_none());
    })
    .await;
}
