//! The account and key-value store of the other examples, served by one
//! process and called from another over NATS, with the same calling code
//! that calls them in-process.
//!
//! With a `nats-server` running on 127.0.0.1:4222 (`apt-get install -y
//! nats-server && nats-server -a 127.0.0.1`), in two terminals:
//!
//! ```text
//! cargo run --features nats --example remote_bank -- serve
//! cargo run --features nats --example remote_bank -- call
//! ```
//!
//! `-- local` runs the same calls against in-process servers, without
//! NATS. `NATS_URL` chooses another server (loopback only in tests).

use std::collections::HashMap;
use std::process::ExitCode;

use patchboard::nats::{Remote, Service, async_nats};
use patchboard::{CallError, Server, server};
use serde::{Deserialize, Serialize};

/// One balance, owned by the server task.
#[derive(Default)]
pub struct Account {
    balance: u64,
}

/// A withdrawal larger than the balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insufficient {
    /// The balance at the time of the request.
    pub balance: u64,
    /// What was asked for.
    pub requested: u64,
}

#[server(remote)]
impl Account {
    /// Adds `amount` and returns the new balance.
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    /// Takes `amount` out, or says why not.
    pub fn withdraw(&mut self, amount: u64) -> Result<u64, Insufficient> {
        if amount > self.balance {
            return Err(Insufficient {
                balance: self.balance,
                requested: amount,
            });
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// The current balance.
    pub fn balance(&self) -> u64 {
        self.balance
    }
}

/// Strings by name.
#[derive(Default)]
pub struct KvStore {
    map: HashMap<String, String>,
}

#[server(remote)]
impl KvStore {
    /// Stores `value` under `key`, returning the previous value.
    pub fn put(&mut self, key: String, value: String) -> Option<String> {
        self.map.insert(key, value)
    }

    /// A copy of the value under `key`.
    pub fn get(&self, key: String) -> Option<String> {
        self.map.get(&key).cloned()
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The calling code: the same for local and remote servers.
async fn use_the_bank(account: &AccountHandle, store: &KvStoreHandle) -> Result<(), CallError> {
    let before = account.balance().await?;
    let after = account.deposit(100).await?;
    println!("deposited 100: balance {before} -> {after}");
    match account.withdraw(after + 1).await? {
        Ok(balance) => println!("withdrew, balance {balance}"),
        Err(refused) => println!(
            "withdrawal of {} refused: balance is {}",
            refused.requested, refused.balance
        ),
    }
    println!("withdrew 30: balance {:?}", account.withdraw(30).await?);

    let depositors: Vec<_> = (0..10)
        .map(|_| {
            let account = account.clone();
            tokio::spawn(async move { account.deposit(1).await })
        })
        .collect();
    for depositor in depositors {
        depositor.await.expect("depositor task")?;
    }
    println!(
        "10 concurrent deposits: balance {}",
        account.balance().await?
    );

    store.put("owner".to_owned(), "ada".to_owned()).await?;
    println!(
        "store: owner = {:?}, {} key(s)",
        store.get("owner".to_owned()).await?,
        store.len().await?
    );
    Ok(())
}

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn connect() -> Result<async_nats::Client, ExitCode> {
    let url = nats_url();
    // Through `nats::connect`, so that a subscription the NATS server
    // refuses (a user without permission) fails `serve` instead of
    // passing unseen.
    let options =
        async_nats::ConnectOptions::new().connection_timeout(std::time::Duration::from_secs(2));
    patchboard::nats::connect(url.as_str(), options)
        .await
        .map_err(|error| {
            eprintln!(
                "no NATS server reachable at {url} ({error}).\n\
                 Start one with `nats-server -a 127.0.0.1` (Debian: apt-get install -y nats-server), \
                 or set NATS_URL."
            );
            ExitCode::from(2)
        })
}

async fn serve() -> Result<(), ExitCode> {
    let client = connect().await?;
    // One account, so one serving process: every process that serves the
    // same name joins its queue group, which suits stateless servers and
    // pools (each replica has its own state).
    let account = Account::default().spawn();
    let store = KvStore::default().spawn();
    let failed = |error: async_nats::Error| {
        eprintln!("NATS refused the service: {error}");
        ExitCode::FAILURE
    };
    let bank = Service::new(&client, "bank")
        .description("the remote_bank example's account")
        .serve(&account)
        .await
        .map_err(failed)?;
    let kv = Service::new(&client, "kv")
        .serve(&store)
        .await
        .map_err(failed)?;
    println!(
        "serving {:?} and {:?}; Ctrl-C stops",
        bank.subjects(),
        kv.subjects()
    );
    let _ = tokio::signal::ctrl_c().await;
    bank.stop().await;
    kv.stop().await;
    println!("stopped");
    Ok(())
}

async fn call() -> Result<(), ExitCode> {
    let client = connect().await?;
    let account: AccountHandle = Remote::new(&client, "bank").handle::<Account>();
    let store: KvStoreHandle = Remote::new(&client, "kv").handle::<KvStore>();
    use_the_bank(&account, &store).await.map_err(|error| {
        eprintln!("a call failed: {error} (is `remote_bank serve` running?)");
        ExitCode::FAILURE
    })
}

async fn local() -> Result<(), ExitCode> {
    let account = Account::default().spawn();
    let store = KvStore::default().spawn();
    use_the_bank(&account, &store).await.map_err(|error| {
        eprintln!("a call failed: {error}");
        ExitCode::FAILURE
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let role = std::env::args().nth(1).unwrap_or_default();
    let outcome = match role.as_str() {
        "serve" => serve().await,
        "call" => call().await,
        "local" => local().await,
        _ => {
            eprintln!("usage: remote_bank serve | call | local");
            Err(ExitCode::from(2))
        }
    };
    outcome.err().unwrap_or(ExitCode::SUCCESS)
}
