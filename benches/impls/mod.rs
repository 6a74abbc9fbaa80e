//! One workload, four implementations: an account whose `deposit` returns
//! the new balance, plus a one-way deposit and a read.
//!
//! - `Patchboard`: `#[server]`;
//! - `TokioActor`: hand-written, `tokio::sync::mpsc` (bounded) mailbox,
//!   `oneshot` replies, `while let Some(msg) = rx.recv().await { match .. }`;
//! - `ChannelActor`: the same with an `async_channel::bounded` mailbox;
//! - `MutexAccount`: `Arc<Mutex<u64>>`, the floor (no task, no messages).
//!
//! Every mailbox has the same capacity.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use patchboard::{Builder, server};
use tokio::sync::{mpsc, oneshot};

/// The mailbox capacity of every implementation: 64, as the independent
/// harness of issue 31 used.
pub const CAPACITY: usize = 64;

/// The common face of the four implementations.
pub trait Account: Clone + Send + Sync + 'static {
    fn spawn() -> Self;
    fn deposit(&self, amount: u64) -> impl Future<Output = u64> + Send;
    fn deposit_cast(&self, amount: u64) -> impl Future<Output = ()> + Send;
    /// `deposit` with an `async fn` handler (the hand-written actors'
    /// handlers are the same code either way).
    fn deposit_async(&self, amount: u64) -> impl Future<Output = u64> + Send;
    fn balance(&self) -> impl Future<Output = u64> + Send;
}

// patchboard ---------------------------------------------------------------

pub struct PatchboardState {
    balance: u64,
}

#[server(handle = Patchboard)]
impl PatchboardState {
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    #[cast]
    pub fn deposit_cast(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// An `async fn` handler: always served through the mailbox.
    pub async fn deposit_async(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    pub fn balance(&self) -> u64 {
        self.balance
    }
}

impl Account for Patchboard {
    fn spawn() -> Self {
        Builder::new(PatchboardState { balance: 0 })
            .capacity(CAPACITY)
            .spawn()
    }

    async fn deposit(&self, amount: u64) -> u64 {
        Patchboard::deposit(self, amount).await.unwrap()
    }

    async fn deposit_cast(&self, amount: u64) {
        Patchboard::deposit_cast(self, amount).await.unwrap()
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        Patchboard::deposit_async(self, amount).await.unwrap()
    }

    async fn balance(&self) -> u64 {
        Patchboard::balance(self).await.unwrap()
    }
}

// patchboard through a protocol client ------------------------------------------

/// The account's messages as a protocol, to measure a call through its
/// client against the concrete handle.
#[patchboard::protocol]
pub trait Ledger {
    fn deposit(&mut self, amount: u64) -> u64;
    #[cast]
    fn deposit_cast(&mut self, amount: u64);
    async fn deposit_async(&mut self, amount: u64) -> u64;
    fn balance(&self) -> u64;
}

pub struct LedgerState {
    balance: u64,
}

#[server(protocols(Ledger))]
impl LedgerState {}

#[server]
impl Ledger for LedgerState {
    fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    fn deposit_cast(&mut self, amount: u64) {
        self.balance += amount;
    }

    async fn deposit_async(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    fn balance(&self) -> u64 {
        self.balance
    }
}

impl Account for LedgerClient {
    fn spawn() -> Self {
        Builder::new(LedgerState { balance: 0 })
            .capacity(CAPACITY)
            .spawn()
            .into()
    }

    async fn deposit(&self, amount: u64) -> u64 {
        LedgerClient::deposit(self, amount).await.unwrap()
    }

    async fn deposit_cast(&self, amount: u64) {
        LedgerClient::deposit_cast(self, amount).await.unwrap()
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        LedgerClient::deposit_async(self, amount).await.unwrap()
    }

    async fn balance(&self) -> u64 {
        LedgerClient::balance(self).await.unwrap()
    }
}

// Hand-written: tokio mpsc -------------------------------------------------------

enum Msg {
    Deposit {
        amount: u64,
        reply: oneshot::Sender<u64>,
    },
    DepositCast {
        amount: u64,
    },
    Balance {
        reply: oneshot::Sender<u64>,
    },
}

fn handle(balance: &mut u64, msg: Msg) {
    match msg {
        Msg::Deposit { amount, reply } => {
            *balance += amount;
            let _ = reply.send(*balance);
        }
        Msg::DepositCast { amount } => *balance += amount,
        Msg::Balance { reply } => {
            let _ = reply.send(*balance);
        }
    }
}

#[derive(Clone)]
pub struct TokioActor {
    tx: mpsc::Sender<Msg>,
}

impl Account for TokioActor {
    fn spawn() -> Self {
        let (tx, mut rx) = mpsc::channel(CAPACITY);
        tokio::spawn(async move {
            let mut balance = 0;
            while let Some(msg) = rx.recv().await {
                handle(&mut balance, msg);
            }
        });
        TokioActor { tx }
    }

    async fn deposit(&self, amount: u64) -> u64 {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Deposit { amount, reply }).await.unwrap();
        rx.await.unwrap()
    }

    async fn deposit_cast(&self, amount: u64) {
        self.tx.send(Msg::DepositCast { amount }).await.unwrap();
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        self.deposit(amount).await
    }

    async fn balance(&self) -> u64 {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Balance { reply }).await.unwrap();
        rx.await.unwrap()
    }
}

// Hand-written: async-channel --------------------------------------------------------

#[derive(Clone)]
pub struct ChannelActor {
    tx: async_channel::Sender<Msg>,
}

impl Account for ChannelActor {
    fn spawn() -> Self {
        let (tx, rx) = async_channel::bounded(CAPACITY);
        tokio::spawn(async move {
            let mut balance = 0;
            while let Ok(msg) = rx.recv().await {
                handle(&mut balance, msg);
            }
        });
        ChannelActor { tx }
    }

    async fn deposit(&self, amount: u64) -> u64 {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Deposit { amount, reply }).await.unwrap();
        rx.await.unwrap()
    }

    async fn deposit_cast(&self, amount: u64) {
        self.tx.send(Msg::DepositCast { amount }).await.unwrap();
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        self.deposit(amount).await
    }

    async fn balance(&self) -> u64 {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Balance { reply }).await.unwrap();
        rx.await.unwrap()
    }
}

// The floor: a mutex ------------------------------------------------------------------

#[derive(Clone)]
pub struct MutexAccount {
    balance: Arc<Mutex<u64>>,
}

impl Account for MutexAccount {
    fn spawn() -> Self {
        MutexAccount {
            balance: Arc::new(Mutex::new(0)),
        }
    }

    async fn deposit(&self, amount: u64) -> u64 {
        let mut balance = self.balance.lock().unwrap();
        *balance += amount;
        *balance
    }

    async fn deposit_cast(&self, amount: u64) {
        *self.balance.lock().unwrap() += amount;
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        self.deposit(amount).await
    }

    async fn balance(&self) -> u64 {
        *self.balance.lock().unwrap()
    }
}
