//! A fake, in-process social-network API with the shape of the one in the
//! essay: paginated timelines (`max_id` continuations), retweeter and
//! follower lists (cursors), and a per-token rate limit per window. Its data
//! is generated from the configuration, so a test can compute the expected
//! result straight from it ([`FakeApi::model`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The shape of the fake data and of the API's limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// The user whose timeline is analysed.
    pub user: String,
    /// Tweets on the user's timeline.
    pub tweets: u64,
    /// Other users, who retweet and have followers.
    pub users: u64,
    /// The user's own followers.
    pub own_followers: u64,
    /// How long every API call takes.
    pub latency: Duration,
    /// The rate-limit window.
    pub window: Duration,
    /// Calls one token may make per window.
    pub limit: u32,
    /// Tokens, each run by one worker of the pool.
    pub tokens: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            user: "gopher".to_owned(),
            tweets: 60,
            users: 120,
            own_followers: 130,
            latency: Duration::from_millis(2),
            window: Duration::from_secs(1),
            limit: 45,
            tokens: 5,
        }
    }
}

/// Tweets per timeline page.
pub const TIMELINE_PAGE: usize = 20;
/// Users per retweeter page.
pub const RETWEETERS_PAGE: usize = 10;
/// Names per follower page.
pub const FOLLOWERS_PAGE: usize = 50;

/// A request to the API.
#[derive(Clone, Debug)]
pub enum Request {
    /// The user's tweets older than `max_id` (the newest for `None`).
    Timeline { max_id: Option<u64> },
    /// Who retweeted `tweet`, from `cursor`.
    Retweeters { tweet: u64, cursor: usize },
    /// The followers of `user`, from `cursor`.
    Followers { user: String, cursor: usize },
}

/// One page of an answer.
#[derive(Clone, Debug)]
pub enum Page {
    /// Tweet ids, newest first, and the `max_id` of the next page.
    Tweets { ids: Vec<u64>, next: Option<u64> },
    /// User names, and the cursor of the next page.
    Users {
        names: Vec<String>,
        next: Option<usize>,
    },
}

/// What the API refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// The token made more calls than its limit in this window.
    RateLimited,
}

/// A token's number.
pub type Token = usize;

/// What the API saw of its callers.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Every call, by token.
    pub calls: BTreeMap<Token, u32>,
    /// The most calls one token made in one window.
    pub busiest_window: BTreeMap<Token, u32>,
    /// Calls refused for exceeding the limit.
    pub refused: u32,
}

/// The fake API: its data and its rate-limit bookkeeping.
pub struct FakeApi {
    config: Config,
    epoch: Instant,
    /// Calls per (token, window).
    windows: Mutex<HashMap<(Token, u64), u32>>,
    usage: Mutex<Usage>,
}

/// The analysis the pipeline produces, and the model computes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Report {
    /// For each tweet: how many retweeted it, and how many followers those
    /// retweeters have together (its reach).
    pub tweets: BTreeMap<u64, (usize, u64)>,
    /// Followers of every user the pipeline looked at.
    pub followers: BTreeMap<String, u64>,
}

impl FakeApi {
    pub fn new(config: Config) -> Self {
        FakeApi {
            config,
            epoch: Instant::now(),
            windows: Mutex::default(),
            usage: Mutex::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The window `at` falls in.
    pub fn window_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since / self.config.window.as_nanos()).unwrap_or(u64::MAX)
    }

    /// When `window` starts.
    pub fn window_start(&self, window: u64) -> Instant {
        let offset = self
            .config
            .window
            .saturating_mul(u32::try_from(window).unwrap_or(u32::MAX));
        self.epoch + offset
    }

    /// Serves `request`, sent by `token` at `sent_at`, after the API's
    /// latency; refuses it if the token is over its limit in that window.
    pub async fn call(
        &self,
        token: Token,
        sent_at: Instant,
        request: Request,
    ) -> Result<Page, ApiError> {
        let window = self.window_at(sent_at);
        let count = {
            let mut windows = self.windows.lock().unwrap();
            let count = windows.entry((token, window)).or_default();
            *count += 1;
            *count
        };
        {
            let mut usage = self.usage.lock().unwrap();
            *usage.calls.entry(token).or_default() += 1;
            let busiest = usage.busiest_window.entry(token).or_default();
            *busiest = (*busiest).max(count);
            if count > self.config.limit {
                usage.refused += 1;
                return Err(ApiError::RateLimited);
            }
        }
        tokio::time::sleep(self.config.latency).await;
        Ok(self.answer(request))
    }

    pub fn usage(&self) -> Usage {
        self.usage.lock().unwrap().clone()
    }

    fn answer(&self, request: Request) -> Page {
        match request {
            Request::Timeline { max_id } => {
                let ids: Vec<u64> = self
                    .tweet_ids()
                    .filter(|id| max_id.is_none_or(|max| *id < max))
                    .take(TIMELINE_PAGE)
                    .collect();
                let oldest = self.tweet_ids().last();
                let next = ids.last().copied().filter(|last| Some(*last) != oldest);
                Page::Tweets { ids, next }
            }
            Request::Retweeters { tweet, cursor } => {
                users_page(self.retweeters(tweet), cursor, RETWEETERS_PAGE)
            }
            Request::Followers { user, cursor } => {
                let count = self.follower_count(&user);
                let names = (0..count).map(|n| format!("{user}/follower-{n}")).collect();
                users_page(names, cursor, FOLLOWERS_PAGE)
            }
        }
    }

    /// The user's tweets, newest (highest id) first.
    fn tweet_ids(&self) -> impl Iterator<Item = u64> {
        (0..self.config.tweets).rev().map(|n| 1_000 + n)
    }

    /// Who retweeted `tweet`: a deterministic spread over the users.
    fn retweeters(&self, tweet: u64) -> Vec<String> {
        let users = self.config.users.max(1);
        let count = (tweet * 7) % 23;
        (0..count)
            .map(|k| format!("user-{}", (tweet * 31 + k * 17) % users))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn follower_count(&self, user: &str) -> u64 {
        if user == self.config.user {
            return self.config.own_followers;
        }
        let n: u64 = user.trim_start_matches("user-").parse().unwrap_or_default();
        (n * 37) % 230
    }

    /// The report, computed directly from the data.
    pub fn model(&self) -> Report {
        let mut report = Report::default();
        report
            .followers
            .insert(self.config.user.clone(), self.config.own_followers);
        for tweet in self.tweet_ids() {
            let retweeters = self.retweeters(tweet);
            let mut reach = 0;
            for user in &retweeters {
                let followers = self.follower_count(user);
                reach += followers;
                report.followers.insert(user.clone(), followers);
            }
            report.tweets.insert(tweet, (retweeters.len(), reach));
        }
        report
    }
}

fn users_page(names: Vec<String>, cursor: usize, size: usize) -> Page {
    let end = (cursor + size).min(names.len());
    let next = (end < names.len()).then_some(end);
    let names = names.get(cursor..end).unwrap_or_default().to_vec();
    Page::Users { names, next }
}
