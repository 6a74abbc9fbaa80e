//! The analyzer's servers: a pool of rate-limited workers, one per API
//! token, and the stages timeline → retweeters → followers → reducer.
//!
//! Each stage pages through the API by sending itself the next page, sends
//! what it learns downstream as soon as it has it, and finishes after the
//! stage before it (`drain_after`): nobody sends end-of-input markers.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use patchboard::{Builder, CallError, Context, Exit, Reply, Server, server};
use tokio::time::Instant;

use crate::api::{ApiError, FakeApi, Page, Report, Request, Token};

/// What went wrong anywhere in the pipeline: a call that failed, a
/// follow-up a stage could not send itself. Nothing is dropped silently.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Notes `result` if it is an error.
    fn check<T, E: Debug>(&self, what: impl Debug, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.lock().unwrap().push(format!("{what:?}: {error:?}"));
                None
            }
        }
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// One API token: a replica of the worker pool.
#[derive(Clone)]
pub struct Worker {
    api: Arc<FakeApi>,
    /// Tokens not yet claimed by a replica.
    tokens: Arc<Mutex<Vec<Token>>>,
    token: Option<Token>,
    window: u64,
    used: u32,
    suspensions: Arc<AtomicU32>,
}

#[server(capacity = 64)]
impl Worker {
    /// Each replica claims a token of its own.
    #[on_start]
    fn claim(&mut self) -> Result<(), &'static str> {
        self.token = self.tokens.lock().unwrap().pop();
        self.token
            .map(|_| ())
            .ok_or("no token left for this worker")
    }

    /// Calls the API with this worker's token. Once the token has used its
    /// calls for the window, the worker answers and then suspends itself
    /// until the next window: it never hits the limit, and the pool's other
    /// workers take the requests meanwhile.
    async fn fetch(&mut self, request: Request, reply: Reply<Result<Page, ApiError>>) {
        let Some(token) = self.token else {
            return; // Unreachable after `claim`; the caller gets `NoReply`.
        };
        let sent_at = Instant::now();
        let window = self.api.window_at(sent_at);
        if window != self.window {
            self.window = window;
            self.used = 0;
        }
        self.used += 1;
        let page = self.api.call(token, sent_at, request).await;
        let _ = reply.send(page);
        if self.used == self.api.config().limit {
            self.suspensions.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(self.api.window_start(window + 1)).await;
        }
    }
}

/// Fetches `request` through the pool; `None` (noted) if it failed.
async fn fetch(workers: &WorkerHandle, journal: &Journal, request: Request) -> Option<Page> {
    let answer = journal.check(&request, workers.fetch(request.clone()).await)?;
    journal.check(&request, answer)
}

/// Reads the user's timeline, newest first, and asks for the retweeters of
/// every tweet.
pub struct Timeline {
    workers: WorkerHandle,
    retweeters: RetweetersHandle,
    journal: Journal,
}

#[server]
impl Timeline {
    /// Starts reading from the newest tweet.
    #[cast]
    async fn read(&mut self, ctx: &Context<Self>) {
        self.page(None, ctx).await;
    }

    /// The page older than `max_id`. A priority lane that only a stage's
    /// own continuations use: the next page goes before new work, and the
    /// lane never fills up (one continuation waits at a time).
    #[cast]
    #[priority]
    async fn older(&mut self, max_id: u64, ctx: &Context<Self>) {
        self.page(Some(max_id), ctx).await;
    }
}

impl Timeline {
    async fn page(&mut self, max_id: Option<u64>, ctx: &Context<Self>) {
        let request = Request::Timeline { max_id };
        let Some(Page::Tweets { ids, next }) = fetch(&self.workers, &self.journal, request).await
        else {
            return;
        };
        if let Some(max_id) = next {
            let sent = match ctx.handle() {
                Some(me) => me.older(max_id).await,
                None => Err(CallError::Closed),
            };
            self.journal.check(("timeline follow-up", max_id), sent);
        }
        for tweet in ids {
            let sent = self.retweeters.tweet(tweet).await;
            self.journal.check(("retweeters of", tweet), sent);
        }
    }
}

/// Reads who retweeted each tweet: the lists go straight to the reducer,
/// the names to the followers stage.
pub struct Retweeters {
    workers: WorkerHandle,
    followers: FollowersHandle,
    reducer: ReducerHandle,
    journal: Journal,
}

#[server(capacity = 64)]
impl Retweeters {
    #[cast]
    async fn tweet(&mut self, tweet: u64, ctx: &Context<Self>) {
        self.page(tweet, 0, ctx).await;
    }

    #[cast]
    #[priority]
    async fn more(&mut self, tweet: u64, cursor: usize, ctx: &Context<Self>) {
        self.page(tweet, cursor, ctx).await;
    }
}

impl Retweeters {
    async fn page(&mut self, tweet: u64, cursor: usize, ctx: &Context<Self>) {
        let request = Request::Retweeters { tweet, cursor };
        let Some(Page::Users { names, next }) = fetch(&self.workers, &self.journal, request).await
        else {
            return;
        };
        if let Some(cursor) = next {
            let sent = match ctx.handle() {
                Some(me) => me.more(tweet, cursor).await,
                None => Err(CallError::Closed),
            };
            self.journal.check(("retweeters follow-up", tweet), sent);
        }
        // The list goes to the reducer at once, the names on to the next
        // stage.
        let sent = self.reducer.retweeted(tweet, names.clone()).await;
        self.journal.check(("reduce retweeters of", tweet), sent);
        for name in names {
            let sent = self.followers.user(name.clone()).await;
            self.journal.check(("followers of", name), sent);
        }
    }
}

/// Reads the followers of every user it is sent, once per user.
pub struct Followers {
    workers: WorkerHandle,
    reducer: ReducerHandle,
    journal: Journal,
    seen: HashSet<String>,
}

#[server(capacity = 256)]
impl Followers {
    /// Reads `user`'s followers, unless it has already.
    #[cast]
    async fn user(&mut self, user: String, ctx: &Context<Self>) {
        if self.seen.insert(user.clone()) {
            self.page(user, 0, ctx).await;
        }
    }

    #[cast]
    #[priority]
    async fn more(&mut self, user: String, cursor: usize, ctx: &Context<Self>) {
        self.page(user, cursor, ctx).await;
    }
}

impl Followers {
    async fn page(&mut self, user: String, cursor: usize, ctx: &Context<Self>) {
        let request = Request::Followers {
            user: user.clone(),
            cursor,
        };
        let Some(Page::Users { names, next }) = fetch(&self.workers, &self.journal, request).await
        else {
            return;
        };
        if let Some(cursor) = next {
            let sent = match ctx.handle() {
                Some(me) => me.more(user.clone(), cursor).await,
                None => Err(CallError::Closed),
            };
            self.journal.check(("followers follow-up", &user), sent);
        }
        let count = names.len() as u64;
        let sent = self.reducer.followed(user.clone(), count).await;
        self.journal.check(("reduce followers of", &user), sent);
    }
}

/// Gathers the results.
#[derive(Default)]
pub struct Reducer {
    retweeters: BTreeMap<u64, BTreeSet<String>>,
    followers: BTreeMap<String, u64>,
}

#[server(capacity = 256)]
impl Reducer {
    #[cast]
    fn retweeted(&mut self, tweet: u64, users: Vec<String>) {
        self.retweeters.entry(tweet).or_default().extend(users);
    }

    #[cast]
    fn followed(&mut self, user: String, count: u64) {
        *self.followers.entry(user).or_default() += count;
    }
}

impl Reducer {
    /// The analysis: each tweet's retweeters and reach.
    pub fn report(&self) -> Report {
        let tweets = self
            .retweeters
            .iter()
            .map(|(tweet, users)| {
                let reach = users.iter().filter_map(|u| self.followers.get(u)).sum();
                (*tweet, (users.len(), reach))
            })
            .collect();
        Report {
            tweets,
            followers: self.followers.clone(),
        }
    }
}

/// The running pipeline.
pub struct Pipeline {
    pub timeline: TimelineHandle,
    pub retweeters: RetweetersHandle,
    pub followers: FollowersHandle,
    pub reducer: ReducerHandle,
    pub workers: WorkerHandle,
    /// The reducer's final state, once it has drained.
    pub done: Exit<Reducer>,
    pub journal: Journal,
    /// Times a worker suspended itself to stay within its limit.
    pub suspensions: Arc<AtomicU32>,
}

impl Pipeline {
    /// Starts every server, links the stages in pipeline order, asks for
    /// the user's own followers (early, before the timeline is read) and
    /// starts reading the timeline.
    pub async fn start(api: Arc<FakeApi>) -> Result<Pipeline, CallError> {
        let config = api.config().clone();
        let journal = Journal::default();
        let suspensions = Arc::new(AtomicU32::new(0));
        let worker = Worker {
            api,
            tokens: Arc::new(Mutex::new((0..config.tokens).collect())),
            token: None,
            window: 0,
            used: 0,
            suspensions: suspensions.clone(),
        };
        let workers = Builder::new(worker).pool(config.tokens).spawn();
        let (reducer, done) = Builder::new(Reducer::default()).spawn_with_exit();
        let followers = Followers {
            workers: workers.clone(),
            reducer: reducer.clone(),
            journal: journal.clone(),
            seen: HashSet::new(),
        }
        .spawn();
        let retweeters = Retweeters {
            workers: workers.clone(),
            followers: followers.clone(),
            reducer: reducer.clone(),
            journal: journal.clone(),
        }
        .spawn();
        let timeline = Timeline {
            workers: workers.clone(),
            retweeters: retweeters.clone(),
            journal: journal.clone(),
        }
        .spawn();
        // Each stage finishes once the one feeding it has finished and it
        // has served everything it was sent and sent itself.
        retweeters.drain_after(&timeline);
        followers.drain_after(&retweeters);
        reducer.drain_after(&followers);

        followers.user(config.user.clone()).await?;
        timeline.read().await?;
        Ok(Pipeline {
            timeline,
            retweeters,
            followers,
            reducer,
            workers,
            done,
            journal,
            suspensions,
        })
    }

    /// Lets the pipeline finish: the timeline stage drains, every stage
    /// after it drains in turn, and the reducer's final report comes back.
    pub async fn finish(self) -> Report {
        // The other handles stay alive until the report is in: the stages
        // finish because each drains after the one feeding it.
        let Pipeline { timeline, done, .. } = self;
        timeline.drain().await;
        done.await
            .state
            .map(|reducer| reducer.report())
            .unwrap_or_default()
    }

    /// Stops every server at once and waits until each has stopped.
    pub async fn cancel(&self) {
        tokio::join!(
            self.timeline.stop(),
            self.retweeters.stop(),
            self.followers.stop(),
            self.reducer.stop(),
            self.workers.stop(),
        );
    }
}
