//! Every supported message shape in one server.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use patchboard::{CallError, Context, Down, Reply, Server, server};

pub struct Shapes {
    log: Vec<String>,
    period: Duration,
    backoff: Option<Duration>,
}

#[derive(Debug, PartialEq)]
pub struct Stats {
    pub entries: usize,
}

#[server(capacity = 8, timeout = "5s", on_panic = "continue")]
impl Shapes {
    /// Kept as it is: no receiver, no message.
    pub fn new() -> Self {
        Shapes { log: Vec::new(), period: Duration::from_secs(1), backoff: None }
    }

    #[on_start]
    async fn connect(&mut self) -> Result<(), std::io::Error> {
        Ok(())
    }

    #[on_stop]
    fn flush(&mut self, ctx: &Context<Self>) {
        let _ = ctx.name();
    }

    /// The context before the `Down`.
    #[on_down]
    async fn down(&mut self, ctx: &Context<Self>, down: Down) {
        self.log.push(format!("{down} seen by {:?}", ctx.name()));
    }

    #[every(self.period)]
    fn tick(&mut self) {}

    /// A period that may be off, changed at run time.
    #[every(self.backoff)]
    fn retry(&mut self, ctx: &Context<Self>) {
        self.backoff = self.backoff.map(|backoff| backoff * 2);
        ctx.reschedule();
    }

    #[every(Duration::from_millis(250))]
    async fn tock(&self, ctx: &patchboard::Context<Self>) {
        let _ = ctx.queued();
    }

    /// A context between other arguments, and a deferred reply.
    pub fn in_context(&mut self, first: u8, ctx: &Context<Self>, reply: Reply<u8>, last: u8) {
        let _ = ctx.weak();
        let _ = reply.send(first + last);
    }

    /// Dropped at its next await if the caller gives up.
    #[cancellable]
    pub async fn cancellable(&mut self, line: String) -> usize {
        tokio::task::yield_now().await;
        self.log.push(line);
        self.log.len()
    }

    /// A synchronous method may ask whether its caller gave up, too.
    pub fn still_wanted(&self, ctx: &Context<Self>) -> bool {
        !ctx.is_cancelled()
    }

    /// `&self`, a value back.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// `&mut self`, unit back, `mut` binding.
    pub fn push(&mut self, mut line: String) {
        line.push('!');
        self.log.push(line);
    }

    /// `async fn`.
    pub async fn push_later(&mut self, line: String) -> usize {
        tokio::task::yield_now().await;
        self.log.push(line);
        self.log.len()
    }

    /// `Self` in a type.
    pub fn snapshot(&self) -> Option<Box<Self>> {
        None
    }

    /// A `'static` borrow is owned enough.
    pub fn label(&self) -> &'static str {
        "shapes"
    }

    /// Deferred reply.
    pub fn later(&mut self, reply: Reply<usize>) {
        let _ = reply.send(self.log.len());
    }

    #[cast]
    #[priority(3)]
    pub fn urgent_hint(&mut self, line: String) {
        self.log.push(line);
    }

    #[cast]
    pub fn hint(&mut self, line: String) {
        self.log.push(line);
    }

    #[priority]
    #[timeout("100ms")]
    pub fn status(&self) -> Result<usize, String> {
        Ok(self.log.len())
    }

    #[cfg(any())]
    pub fn never_compiled(&self, x: NotAType) {}

    /// Terminal.
    pub fn into_stats(self) -> Stats {
        Stats { entries: self.log.len() }
    }

    fn r#type(&self) -> u8 {
        0
    }
}

pub struct Kv<K, V> {
    map: HashMap<K, V>,
}

#[server(handle = KvClient, request = KvMessage)]
impl<K, V> Kv<K, V>
where
    K: Hash + Eq,
    V: Clone,
{
    pub fn put(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    pub fn get(&self, key: K) -> Option<V> {
        self.map.get(&key).cloned()
    }
}

pub struct Unused<T> {
    count: u32,
    _marker: std::marker::PhantomData<fn() -> T>,
}

#[server]
impl<T> Unused<T> {
    pub fn count(&self) -> u32 {
        self.count
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), CallError> {
    assert_eq!(Shapes::new().spawn().in_context(1, 2).await?, 3);
    // A time limit, so that a hang fails the test instead of stalling it.
    tokio::time::timeout(Duration::from_secs(10), run())
        .await
        .expect("no hang")
}

async fn run() -> Result<(), CallError> {
    let shapes = Shapes::new().spawn();
    shapes.push("a".to_owned()).await?;
    assert_eq!(shapes.push_later("b".to_owned()).await?, 2);
    assert_eq!(shapes.cancellable("b2".to_owned()).await?, 3);
    assert!(shapes.still_wanted().await?);
    let stopped = Shapes::new().spawn();
    shapes.monitor(&stopped);
    stopped.stop().await;
    assert_eq!(shapes.len().await?, 4, "`#[on_down]` logged the stop");
    assert_eq!(shapes.later().await?, 4);
    shapes.hint("c".to_owned()).await?;
    // The cast is only enqueued; a normal call behind it sees its effect.
    assert_eq!(shapes.len().await?, 5);
    assert_eq!(shapes.status().await?, Ok(5));
    shapes.urgent_hint("d".to_owned()).await?;
    assert_eq!(shapes.status().priority(0).await?, Ok(6));
    assert_eq!(shapes.label().await?, "shapes");
    assert!(shapes.snapshot().await?.is_none());
    assert_eq!(shapes.r#type().await?, 0);
    assert_eq!(shapes.into_stats().await?, Stats { entries: 6 });

    let kv: KvClient<u8, String> = Kv { map: HashMap::new() }.spawn();
    let _: KvMessage<u8, String>;
    assert_eq!(kv.put(1, "one".to_owned()).await?, None);
    assert_eq!(kv.get(1).await?, Some("one".to_owned()));

    let unused: UnusedHandle<String> = Unused { count: 3, _marker: std::marker::PhantomData }.spawn();
    assert_eq!(unused.count().await?, 3);
    Ok(())
}
