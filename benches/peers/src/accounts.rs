//! The account of `benches/impls/mod.rs`, three ways: `Patchboard` and
//! `TokioActor` copied from there (same capacity, same messages, same
//! handlers), and the same actor written with xtra.
//!
//! Copied, not included by path: this crate is its own workspace and
//! reuses nothing of the facade's benches.

#![allow(dead_code)]

use patchboard::{Builder, server};
use tokio::sync::{mpsc, oneshot};
use xtra::{Actor, Context, Handler, Mailbox};

/// Every mailbox's capacity: 64, as issue 31's independent harness used
/// (and `benches/impls/mod.rs`).
pub const CAPACITY: usize = 64;

/// The common face of the implementations (as `benches/impls/mod.rs`).
pub trait Account: Clone + Send + Sync + 'static {
    fn spawn() -> Self;
    fn deposit(&self, amount: u64) -> impl Future<Output = u64> + Send;
    fn deposit_cast(&self, amount: u64) -> impl Future<Output = ()> + Send;
    fn deposit_async(&self, amount: u64) -> impl Future<Output = u64> + Send;
    fn balance(&self) -> impl Future<Output = u64> + Send;
}

// patchboard (copied from benches/impls/mod.rs) -----------------------------

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

// Hand-written: tokio mpsc (copied from benches/impls/mod.rs) ---------------

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

// xtra ---------------------------------------------------------------------------

/// The account as an xtra actor: one message type per request, its
/// mailbox `Mailbox::bounded(CAPACITY)`, spawned with `xtra::spawn_tokio`.
pub struct XtraState {
    balance: u64,
}

impl Actor for XtraState {
    type Stop = ();

    async fn stopped(self) {}
}

pub struct Deposit(pub u64);
pub struct DepositCast(pub u64);
pub struct GetBalance;

impl Handler<Deposit> for XtraState {
    type Return = u64;

    async fn handle(&mut self, Deposit(amount): Deposit, _: &mut Context<Self>) -> u64 {
        self.balance += amount;
        self.balance
    }
}

impl Handler<DepositCast> for XtraState {
    type Return = ();

    async fn handle(&mut self, DepositCast(amount): DepositCast, _: &mut Context<Self>) {
        self.balance += amount;
    }
}

impl Handler<GetBalance> for XtraState {
    type Return = u64;

    async fn handle(&mut self, _: GetBalance, _: &mut Context<Self>) -> u64 {
        self.balance
    }
}

#[derive(Clone)]
pub struct XtraActor {
    address: xtra::Address<XtraState>,
}

impl Account for XtraActor {
    fn spawn() -> Self {
        let address = xtra::spawn_tokio(XtraState { balance: 0 }, Mailbox::bounded(CAPACITY));
        XtraActor { address }
    }

    async fn deposit(&self, amount: u64) -> u64 {
        self.address.send(Deposit(amount)).await.unwrap()
    }

    async fn deposit_cast(&self, amount: u64) {
        // Awaiting the send of a `()` message waits for its handler;
        // `detach` returns once it is in the mailbox, as a cast does.
        let reply = self.address.send(DepositCast(amount)).detach().await;
        drop(reply.unwrap());
    }

    async fn deposit_async(&self, amount: u64) -> u64 {
        self.deposit(amount).await
    }

    async fn balance(&self) -> u64 {
        self.address.send(GetBalance).await.unwrap()
    }
}
