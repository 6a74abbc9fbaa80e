//! A bank account as a server: deposits, withdrawals that can be refused,
//! and many concurrent depositors.
//!
//! Run with `cargo run --example account`.

use patchboard::{CallError, Server, server};

/// The state: one balance, owned by the server task.
pub struct Account {
    /// The money in the account.
    pub balance: u64,
}

/// A withdrawal larger than the balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    /// The balance at the time of the request.
    pub balance: u64,
    /// What was asked for.
    pub requested: u64,
}

#[server]
impl Account {
    /// Adds `amount` and returns the new balance.
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    /// Takes `amount` out, or refuses without changing anything.
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

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let account = Account { balance: 0 }.spawn();

    println!("deposit 100 -> balance {}", account.deposit(100).await?);
    match account.withdraw(500).await? {
        Ok(balance) => println!("withdrew 500, balance {balance}"),
        Err(refused) => println!("withdraw 500 refused: {refused:?}"),
    }
    println!("withdraw 30 -> {:?}", account.withdraw(30).await?);

    // 50 depositors, 100 deposits of 1 each, all at once.
    let depositors: Vec<_> = (0..50)
        .map(|_| {
            let account = account.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    account.deposit(1).await?;
                }
                Ok::<_, CallError>(())
            })
        })
        .collect();
    for depositor in depositors {
        depositor.await.expect("depositor task")?;
    }

    let balance = account.balance().await?;
    println!("after 50 x 100 concurrent deposits of 1: balance {balance}");
    assert_eq!(balance, 100 - 30 + 50 * 100);

    account.stop().await;
    println!(
        "stopped; a call now fails with: {}",
        account.balance().await.unwrap_err()
    );
    Ok(())
}
