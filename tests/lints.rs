//! A documented server compiles without a single warning under strict lints:
//! generated items carry docs, generated code uses no needless paths.

#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unused_results,
    rust_2018_idioms,
    unreachable_pub,
    private_interfaces,
    private_bounds
)]

use std::collections::HashMap;
use std::time::Duration;

use patchboard::{CallError, Context, Reply, Scheduled, Server, protocol, server};

/// A documented key-value server.
#[derive(Debug)]
pub struct Documented {
    map: HashMap<String, u64>,
}

/// An error of the server's own.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing;

#[server]
impl Documented {
    /// Clears the map every `period`; the timer is returned, to cancel.
    /// (A synchronous handler that returns a future, as a value: the
    /// generated code yields it without a lint.)
    pub fn clear_every(&mut self, period: Duration, ctx: &Context<Self>) -> Scheduled<()> {
        ctx.interval(period, |me| me.clear())
    }

    /// Clears the map.
    #[cast]
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Sets a value.
    pub fn set(&mut self, key: String, value: u64) {
        let _previous = self.map.insert(key, value);
    }

    /// Reads a value.
    pub fn get(&self, key: String) -> Result<u64, Missing> {
        self.map.get(&key).copied().ok_or(Missing)
    }

    /// Answers later.
    pub fn size(&self, reply: Reply<usize>) {
        let _unsent = reply.send(self.map.len());
    }

    /// Ends the server.
    pub fn finish(self) -> HashMap<String, u64> {
        self.map
    }
}

/// A private server with private types: the generated public items must not
/// warn about them.
struct Hidden {
    secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Secret(u8);

#[server]
impl Hidden {
    fn reveal(&self) -> Secret {
        self.secret
    }

    fn replace(&mut self, secret: Secret) {
        self.secret = secret;
    }
}

/// A documented protocol.
#[protocol]
pub trait Counting {
    /// Adds one; returns the count.
    fn bump(&mut self) -> u64;
    /// Resets, one-way.
    #[cast]
    fn reset(&mut self);
    /// The count, later.
    async fn count(&self) -> u64;
}

/// A private server implementing a public protocol, with a helper.
struct Counter {
    count: u64,
}

#[server(protocols(Counting))]
impl Counter {
    #[helper]
    fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }
}

#[server]
impl Counting for Counter {
    fn bump(&mut self) -> u64 {
        self.add(1)
    }

    fn reset(&mut self) {
        self.count = 0;
    }

    async fn count(&self) -> u64 {
        self.count
    }
}

#[tokio::test]
async fn strict_lints_pass() -> Result<(), CallError> {
    tokio::time::timeout(Duration::from_secs(10), calls())
        .await
        .expect("no hang")
}

async fn calls() -> Result<(), CallError> {
    let server = Documented {
        map: HashMap::new(),
    }
    .spawn();
    server.set("a".to_owned(), 1).await?;
    assert_eq!(server.get("a".to_owned()).await?, Ok(1));
    assert_eq!(server.get("b".to_owned()).await?, Err(Missing));
    assert_eq!(server.size().await?, 1);
    assert_eq!(server.finish().await?.len(), 1);

    let hidden = Hidden { secret: Secret(1) }.spawn();
    hidden.replace(Secret(2)).await?;
    assert_eq!(hidden.reveal().await?, Secret(2));

    let counting = CountingClient::from(Counter { count: 0 }.spawn());
    assert_eq!(counting.bump().await?, 1);
    counting.reset().await?;
    assert_eq!(counting.count().await?, 0);
    Ok(())
}
