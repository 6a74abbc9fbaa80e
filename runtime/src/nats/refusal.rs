//! Refused subscriptions: what the NATS server refused on a connection,
//! told to the call that asked for the subscription ([`connect`]).
//!
//! A NATS server answers a subscription it refuses with one line, `-ERR
//! 'Permissions Violation for Subscription to "<subject>"'` (followed by
//! `using queue "<group>"` for a queue subscription; a configuration
//! reload that withdraws a permission says `(sid "<n>")` instead), and
//! nothing else. async-nats hands that line only to the connection's
//! event callback, which it runs on an events task of its own. A
//! connection made through [`connect`] has patchboard's callback: a
//! [`Watcher`] that tells each call subscribing on that connection
//! ([`Joining`]) of a refusal of one of its subjects.
//!
//! When the event is seen: the connection's task queues it for the events
//! task before it reads anything the NATS server sent after the refusal,
//! so once a round trip has come back the event is queued; the watcher
//! sees it when the events task next runs. [`Joining::joined`] gives that
//! task [`EVENTS_GRACE`] to do so, and what it has not seen by then ends
//! the service or the subscription later ([`Joined::refused`]). Nothing
//! surer is to be had: the events task is the only way the line comes
//! out of async-nats, and no event the client can cause, whatever the
//! user's permissions, would mark the end of what came before it (a
//! subscription to an invalid subject draws `-ERR 'Invalid Subject'` from
//! nats-server 2.9, but is logged there as a permission violation for a
//! user whose permissions do not cover it, and is no behaviour the
//! protocol promises).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::client::Statistics;
use async_nats::{Client, ConnectError, ConnectOptions, Event, ServerError, ToServerAddrs};
use tokio::sync::{mpsc, watch};

use super::{round_trip, round_trip_via};

/// How long [`Joining::joined`] gives async-nats' events task, once a
/// round trip has come back, to hand the watcher the refusals the NATS
/// server sent before the echo (queued for that task by then). The task
/// runs as soon as a worker of the runtime takes it, typically well
/// within a millisecond; what takes it longer (every worker busy, or the
/// operating system not scheduling the worker's thread) is seen later and
/// ends the service or subscription instead.
const EVENTS_GRACE: Duration = Duration::from_millis(20);

/// Events waiting for the caller's callback of [`connect_with`], as many
/// as async-nats' own queue holds: one that finds it full is dropped, as
/// async-nats drops one that finds its own full.
const EVENTS: usize = 128;

/// The watchers of the connections made through [`connect`], each found
/// by its connection's statistics: the one `Arc` every clone of a
/// connection's `Client` shares (held weakly, so that its address is not
/// reused while it is listed).
static WATCHED: Mutex<Vec<(Weak<Statistics>, Arc<Watcher>)>> = Mutex::new(Vec::new());

/// Connects to NATS as `options` say, with patchboard watching what the
/// NATS server refuses on the connection: on a client connected this way,
/// [`Service::serve`](super::Service::serve) and
/// [`subscribe`](super::subscribe) fail when the NATS server refuses one
/// of their subscriptions (a user without subscribe permission on one of
/// their subjects, or on `_INBOX.>`), naming the subject, instead of
/// returning `Ok` for a service nobody can reach. A refusal seen later
/// ends the service or the subscription. [Joining and
/// leaving](super#joining-and-leaving) says exactly when each happens.
///
/// ```no_run
/// # async fn run() -> Result<(), patchboard_runtime::nats::async_nats::Error> {
/// use patchboard_runtime::nats::{self, async_nats}; // `patchboard::nats`
///
/// let options = async_nats::ConnectOptions::new()
///     .user_and_password("teller".into(), "s3cret".into());
/// let client = nats::connect("nats://127.0.0.1:4222", options).await?;
/// # Ok(()) }
/// ```
///
/// Any `options` will do (credentials, TLS, reconnection), but not an
/// event callback of their own: patchboard's replaces it. To see the
/// connection's events as well, pass your callback to [`connect_with`].
/// A client connected any other way (`async_nats::connect`,
/// `ConnectOptions::connect`) works as before, and its refused
/// subscriptions go unseen: `serve` and `subscribe` return `Ok`, and calls
/// to such a service fail with `NoResponders`.
///
/// # Errors
///
/// As `ConnectOptions::connect`: the NATS server cannot be reached or
/// refuses the connection.
pub async fn connect<A: ToServerAddrs>(
    addrs: A,
    options: ConnectOptions,
) -> Result<Client, ConnectError> {
    watched(addrs, options, None).await
}

/// [`connect`], and every event of the connection handed to `callback`
/// as well, in order, once patchboard has looked at it: what
/// `ConnectOptions::event_callback(callback)` would have been given.
///
/// ```no_run
/// # async fn run() -> Result<(), patchboard_runtime::nats::async_nats::Error> {
/// use patchboard_runtime::nats::{self, async_nats}; // `patchboard::nats`
///
/// let options = async_nats::ConnectOptions::new();
/// let client = nats::connect_with("nats://127.0.0.1:4222", options, |event| async move {
///     eprintln!("nats: {event}");
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// `callback` runs on a task of its own, one event after the other, so a
/// slow callback never delays what patchboard sees; events that find 128
/// others still waiting for it are dropped, as async-nats drops events
/// that find its own queue full. Setting `.event_callback(..)` on
/// `options` has no effect: patchboard's callback replaces it.
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_with<A, F, Fut>(
    addrs: A,
    options: ConnectOptions,
    callback: F,
) -> Result<Client, ConnectError>
where
    A: ToServerAddrs,
    F: Fn(Event) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (events, mut waiting) = mpsc::channel(EVENTS);
    tokio::spawn(async move {
        while let Some(event) = waiting.recv().await {
            callback(event).await;
        }
    });
    watched(addrs, options, Some(events)).await
}

/// Connects with a new [`Watcher`] as the event callback (handing each
/// event on to `forward`, if any), and lists it under the connection.
async fn watched<A: ToServerAddrs>(
    addrs: A,
    options: ConnectOptions,
    forward: Option<mpsc::Sender<Event>>,
) -> Result<Client, ConnectError> {
    let watcher = Arc::new(Watcher::default());
    let seeing = watcher.clone();
    // Seen at once and handed on without waiting: the events task is never
    // held, so it hands the watcher each event as soon as it runs.
    let options = options.event_callback(move |event| {
        seeing.see(&event);
        if let Some(forward) = &forward {
            let _ = forward.try_send(event);
        }
        std::future::ready(())
    });
    let client = options.connect(addrs).await?;
    let mut watched = lock(&WATCHED);
    watched.retain(|(connection, _)| connection.strong_count() > 0);
    watched.push((Arc::downgrade(&client.statistics()), watcher));
    Ok(client)
}

/// The watcher of the connection of `client`, if it was made through
/// [`connect`].
fn watcher_of(client: &Client) -> Option<Arc<Watcher>> {
    let statistics = client.statistics();
    lock(&WATCHED)
        .iter()
        .find(|(connection, _)| std::ptr::eq(connection.as_ptr(), Arc::as_ptr(&statistics)))
        .map(|(_, watcher)| watcher.clone())
}

/// Locks `mutex`, whose data stays valid whatever panicked while it was
/// held (every change is a single push, retain or store).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one connection's NATS server refused, told to the calls that are
/// joining or have joined on it, each through its [`Interest`].
#[derive(Debug, Default)]
struct Watcher {
    interests: Mutex<Vec<Weak<Interest>>>,
}

impl Watcher {
    /// Looks at one event of the connection: a refused subscription is
    /// told to every interest in its subject. Any other event, and any
    /// text it does not read as a refused subscription, is let pass.
    fn see(&self, event: &Event) {
        let Event::ServerError(ServerError::Other(text)) = event else {
            return;
        };
        let Some(refusal) = Refusal::parse(text) else {
            return;
        };
        let mut interests = lock(&self.interests);
        interests.retain(|interest| interest.strong_count() > 0);
        for interest in interests.iter().filter_map(Weak::upgrade) {
            interest.see(&refusal);
        }
    }

    /// A new interest in `wanted`, told of every refusal from now on.
    fn interest(&self, wanted: Vec<Wanted>) -> Arc<Interest> {
        let interest = Arc::new(Interest {
            wanted,
            refused: watch::Sender::new(None),
        });
        lock(&self.interests).push(Arc::downgrade(&interest));
        interest
    }
}

/// What one call subscribes to, and why NATS refused the first of them it
/// refused, once it has.
#[derive(Debug)]
struct Interest {
    wanted: Vec<Wanted>,
    refused: watch::Sender<Option<String>>,
}

impl Interest {
    fn see(&self, refusal: &Refusal) {
        if !self.wanted.iter().any(|wanted| wanted.covers(refusal)) {
            return;
        }
        self.refused.send_if_modified(|refused| {
            let first = refused.is_none();
            if first {
                *refused = Some(refusal.to_string());
            }
            first
        });
    }

    async fn refused(&self) -> String {
        let mut refused = self.refused.subscribe();
        let reason = match refused.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // Not while `self` holds the sender.
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// A subscription a call makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// To `subject`, in the queue group `queue` if any.
    Exact {
        subject: String,
        queue: Option<String>,
    },
    /// To `<prefix>.<one token>`, outside any queue group: a subject whose
    /// last token is only known once subscribed (a service's id).
    Under(String),
}

impl Wanted {
    pub(crate) fn exact(subject: impl Into<String>, queue: Option<&str>) -> Self {
        Wanted::Exact {
            subject: subject.into(),
            queue: queue.map(str::to_owned),
        }
    }

    fn covers(&self, refusal: &Refusal) -> bool {
        match self {
            Wanted::Exact { subject, queue } => {
                *subject == refusal.subject
                    && match (&refusal.queue, queue) {
                        (Queue::Unsaid, _) | (Queue::None, None) => true,
                        (Queue::Group(refused), Some(queue)) => refused == queue,
                        _ => false,
                    }
            }
            Wanted::Under(prefix) => {
                !matches!(refusal.queue, Queue::Group(_))
                    && refusal
                        .subject
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|token| !token.is_empty() && !token.contains('.'))
            }
        }
    }
}

/// A call about to subscribe on `client`: what it will subscribe to is
/// in its connection's watcher (if it has one) before it does, so that no
/// refusal can come before it is looked for.
#[derive(Debug)]
pub(crate) struct Joining {
    client: Client,
    watched: Option<(Arc<Watcher>, Arc<Interest>)>,
}

impl Joining {
    pub(crate) fn new(client: &Client, wanted: Vec<Wanted>) -> Self {
        let watched = watcher_of(client).map(|watcher| {
            let interest = watcher.interest(wanted);
            (watcher, interest)
        });
        Joining {
            client: client.clone(),
            watched,
        }
    }

    /// Returns once the NATS server has the subscriptions made since
    /// [`new`](Self::new) (a round trip), or the refusal of one of them.
    ///
    /// Without a watcher, that is all. With one, the round trip's own
    /// subscription is watched too (refused, its echo never comes: the
    /// refusal ends the wait); once the echo is back, every refusal of
    /// the subscriptions is queued for the events task, which is given
    /// [`EVENTS_GRACE`] to hand it over. Only a call that was not refused
    /// waits it out.
    pub(crate) async fn joined(self) -> Result<Joined, NotJoined> {
        let lost = NotJoined::from;
        let Some((watcher, interest)) = self.watched else {
            round_trip(&self.client).await.map_err(lost)?;
            return Ok(Joined { interest: None });
        };
        let inbox = self.client.new_inbox();
        let echo = watcher.interest(vec![Wanted::exact(inbox.as_str(), None)]);
        tokio::select! {
            biased;
            reason = echo.refused() => return Err(lost(reason.into())),
            echoed = round_trip_via(&self.client, inbox) => echoed.map_err(lost)?,
        }
        match tokio::time::timeout(EVENTS_GRACE, interest.refused()).await {
            Ok(reason) => Err(NotJoined {
                error: reason.into(),
                echoes: true,
            }),
            Err(_) => Ok(Joined {
                interest: Some(interest),
            }),
        }
    }
}

/// Why a call could not join, and whether a round trip can still confirm
/// its leaving: not when the round trip's own subscription was refused,
/// or a round trip failed.
#[derive(Debug)]
pub(crate) struct NotJoined {
    pub(crate) error: async_nats::Error,
    pub(crate) echoes: bool,
}

/// An error of the call itself (a subscription the client could not
/// send): no round trip is tried after it.
impl From<async_nats::Error> for NotJoined {
    fn from(error: async_nats::Error) -> Self {
        NotJoined {
            error,
            echoes: false,
        }
    }
}

impl From<NotJoined> for async_nats::Error {
    fn from(not_joined: NotJoined) -> Self {
        not_joined.error
    }
}

/// A call that has joined: kept as long as its subscriptions are, to hear
/// of a refusal seen after [`Joining::joined`] returned.
#[derive(Debug)]
pub(crate) struct Joined {
    interest: Option<Arc<Interest>>,
}

impl Joined {
    /// Why the NATS server refused one of the subscriptions, once it has:
    /// a refusal the events task handed over late, or a permission
    /// withdrawn since (a configuration reload; a reconnection, which
    /// subscribes again, as a user who has lost it). Never, on a client
    /// without a watcher.
    pub(crate) async fn refused(&self) -> String {
        match &self.interest {
            Some(interest) => interest.refused().await,
            None => std::future::pending().await,
        }
    }
}

/// A subscription the NATS server refused, as its error line names it.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    subject: String,
    queue: Queue,
}

/// The queue group of a refused subscription.
#[derive(Debug, PartialEq, Eq)]
enum Queue {
    /// A plain subscription.
    None,
    /// A subscription in this group.
    Group(String),
    /// Not said (a configuration reload names the subscription's id
    /// instead).
    Unsaid,
}

impl Refusal {
    /// The line of a NATS server (async-nats has taken off `-ERR` and the
    /// quotes around it): `Permissions Violation for Subscription to
    /// "<subject>"`, then nothing, ` using queue "<group>"` or ` (sid
    /// "<n>")`, each string quoted as Go's `%q` quotes it. Anything else
    /// is not a refused subscription.
    fn parse(text: &str) -> Option<Refusal> {
        let rest = text
            .trim()
            .strip_prefix("Permissions Violation for Subscription to ")?;
        let (subject, rest) = unquote(rest)?;
        let queue = if rest.is_empty() {
            Queue::None
        } else if let Some(group) = rest.strip_prefix(" using queue ") {
            let (group, rest) = unquote(group)?;
            if !rest.is_empty() {
                return None;
            }
            Queue::Group(group)
        } else {
            let (_, rest) = unquote(rest.strip_prefix(" (sid ")?)?;
            if rest != ")" {
                return None;
            }
            Queue::Unsaid
        };
        Some(Refusal { subject, queue })
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the NATS server refused the subscription to `{}`",
            self.subject
        )?;
        if let Queue::Group(group) = &self.queue {
            write!(f, " in queue group `{group}`")?;
        }
        write!(
            f,
            ": check the subscribe permission of the NATS user this client connects as"
        )
    }
}

/// The string quoted at the start of `text` as Go's `%q` quotes it
/// (`strconv.Quote`), and what follows it; `None` if `text` does not start
/// with one, or it is not UTF-8 (then it is no subject of ours).
fn unquote(text: &str) -> Option<(String, &str)> {
    let inside = text.strip_prefix('"')?;
    let mut bytes = Vec::new();
    let mut chars = inside.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let string = String::from_utf8(bytes).ok()?;
                return Some((string, &inside[at + 1..]));
            }
            '\\' => {
                let (_, escape) = chars.next()?;
                let mut digits = |count: usize, radix: u32| {
                    (0..count).try_fold(0u32, |value, _| {
                        let digit = chars.next()?.1.to_digit(radix)?;
                        Some(value * radix + digit)
                    })
                };
                let byte = match escape {
                    'a' => 0x07,
                    'b' => 0x08,
                    'f' => 0x0c,
                    'n' => b'\n',
                    'r' => b'\r',
                    't' => b'\t',
                    'v' => 0x0b,
                    '\\' | '"' | '\'' => escape as u8,
                    'x' => u8::try_from(digits(2, 16)?).ok()?,
                    'u' | 'U' => {
                        let c = char::from_u32(digits(if escape == 'u' { 4 } else { 8 }, 16)?)?;
                        bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        continue;
                    }
                    '0'..='7' => {
                        let first = escape.to_digit(8)?;
                        let rest = digits(2, 8)?;
                        u8::try_from(first * 64 + rest).ok()?
                    }
                    _ => return None,
                };
                bytes.push(byte);
            }
            c => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(subject: &str, queue: Queue) -> Option<Refusal> {
        Some(Refusal {
            subject: subject.to_owned(),
            queue,
        })
    }

    #[test]
    fn the_lines_of_nats_server_are_read() {
        let plain = r#"Permissions Violation for Subscription to "bank.deposit""#;
        assert_eq!(Refusal::parse(plain), refusal("bank.deposit", Queue::None));
        let queued = r#"Permissions Violation for Subscription to "bank.deposit" using queue "q""#;
        assert_eq!(
            Refusal::parse(queued),
            refusal("bank.deposit", Queue::Group("q".into()))
        );
        let reload = r#"Permissions Violation for Subscription to "bank.deposit" (sid "12")"#;
        assert_eq!(
            Refusal::parse(reload),
            refusal("bank.deposit", Queue::Unsaid)
        );
    }

    #[test]
    fn odd_quoting_is_read_as_go_writes_it() {
        // nats-server 2.9.10 on `SUB 'we"ird' 7`: the `'` of async-nats'
        // trimming stay inside the quotes.
        let odd = r#"Permissions Violation for Subscription to "'we\"ird'""#;
        assert_eq!(Refusal::parse(odd), refusal("'we\"ird'", Queue::None));
        let escapes = r#"Permissions Violation for Subscription to "a\\b\t\x01\u00a0\U0001f600\101\n" using queue "q\"r""#;
        assert_eq!(
            Refusal::parse(escapes),
            refusal("a\\b\t\u{1}\u{a0}\u{1f600}A\n", Queue::Group("q\"r".into()))
        );
        assert_eq!(
            Refusal::parse(r#"Permissions Violation for Subscription to "é.ü""#),
            refusal("é.ü", Queue::None)
        );
    }

    #[test]
    fn no_text_panics_and_only_refused_subscriptions_are_read() {
        let long = format!(
            r#"Permissions Violation for Subscription to "{}""#,
            "x.".repeat(50_000)
        );
        assert!(Refusal::parse(&long).is_some());
        let lines = [
            "",
            "Authorization Violation",
            "Permissions Violation for Publish to \"bank.deposit\"",
            "Permissions Violation for Subscription to ",
            "Permissions Violation for Subscription to \"",
            "Permissions Violation for Subscription to \"a\\",
            "Permissions Violation for Subscription to \"a\\x\"",
            "Permissions Violation for Subscription to \"a\\xzz\"",
            "Permissions Violation for Subscription to \"a\\xff\"",
            "Permissions Violation for Subscription to \"a\\u12\"",
            "Permissions Violation for Subscription to \"a\\ud800\"",
            "Permissions Violation for Subscription to \"a\\U7fffffff\"",
            "Permissions Violation for Subscription to \"a\\777\"",
            "Permissions Violation for Subscription to \"a\\q\"",
            "Permissions Violation for Subscription to \"a\" using queue",
            "Permissions Violation for Subscription to \"a\" using queue \"q",
            "Permissions Violation for Subscription to \"a\" using queue \"q\" more",
            "Permissions Violation for Subscription to \"a\" (sid \"1\"",
            "Permissions Violation for Subscription to \"a\"\nsecond line",
            "Permissions Violation for Subscription to a",
        ];
        for line in lines {
            assert_eq!(Refusal::parse(line), None, "{line:?}");
        }
        // Every cut of a valid line, at every character: never a panic.
        let valid = r#"Permissions Violation for Subscription to "a\"\u00e9\x01é" using queue "q""#;
        for (at, _) in valid.char_indices() {
            let _ = Refusal::parse(&valid[..at]);
            let _ = Refusal::parse(&valid[at..]);
        }
    }

    #[test]
    fn a_refusal_is_told_to_the_interests_in_its_subject_only() {
        let queued = Wanted::exact("bank.deposit", Some("q"));
        let plain = Wanted::exact("ticks", None);
        let service = Wanted::Under("$SRV.PING.bank".into());
        let read = |line: &str| Refusal::parse(line).unwrap();
        let in_q =
            read(r#"Permissions Violation for Subscription to "bank.deposit" using queue "q""#);
        let in_other =
            read(r#"Permissions Violation for Subscription to "bank.deposit" using queue "r""#);
        let no_queue = read(r#"Permissions Violation for Subscription to "bank.deposit""#);
        let reload = read(r#"Permissions Violation for Subscription to "bank.deposit" (sid "3")"#);
        assert!(queued.covers(&in_q) && queued.covers(&reload));
        assert!(!queued.covers(&in_other) && !queued.covers(&no_queue));
        assert!(plain.covers(&read(
            r#"Permissions Violation for Subscription to "ticks""#
        )));
        assert!(!plain.covers(&read(
            r#"Permissions Violation for Subscription to "ticks.a""#
        )));
        assert!(!plain.covers(&in_q));
        let id = read(r#"Permissions Violation for Subscription to "$SRV.PING.bank.Xy12""#);
        assert!(service.covers(&id));
        for other in [
            r#"Permissions Violation for Subscription to "$SRV.PING.bank""#,
            r#"Permissions Violation for Subscription to "$SRV.PING.bank.""#,
            r#"Permissions Violation for Subscription to "$SRV.PING.bank.a.b""#,
            r#"Permissions Violation for Subscription to "$SRV.PING.banker.a""#,
            r#"Permissions Violation for Subscription to "$SRV.PING.bank.a" using queue "q""#,
        ] {
            assert!(!service.covers(&read(other)), "{other}");
        }
    }

    #[test]
    fn the_first_refusal_is_kept_and_names_its_subject() {
        let interest = Watcher::default().interest(vec![
            Wanted::exact("bank.deposit", Some("q")),
            Wanted::exact("bank.balance", Some("q")),
        ]);
        let refusal = || interest.refused.borrow().clone();
        assert_eq!(refusal(), None);
        interest.see(
            &Refusal::parse(r#"Permissions Violation for Subscription to "shop.buy""#).unwrap(),
        );
        assert_eq!(refusal(), None);
        for subject in ["bank.deposit", "bank.balance"] {
            let line =
                format!(r#"Permissions Violation for Subscription to "{subject}" using queue "q""#);
            interest.see(&Refusal::parse(&line).unwrap());
        }
        let reason = refusal().unwrap();
        assert!(
            reason.contains("`bank.deposit` in queue group `q`"),
            "{reason}"
        );
        assert!(reason.contains("subscribe permission"), "{reason}");
    }
}
