//! The dining philosophers: five philosophers around a table, one fork
//! between each two, each needing both neighbouring forks to eat. Every
//! philosopher and every fork is a server; thinking and eating are one-shot
//! timers (`ctx.after`), so no task of ours sleeps; forks know who holds
//! them by `ServerId`. A philosopher who finds a fork taken puts back what
//! they hold and thinks a little longer (no one holds a fork while waiting
//! for another: no deadlock). Each stops after their last meal, and the
//! dinner ends by itself.
//!
//! Run with `cargo run --example philosophers`.

use std::time::Duration;

use patchboard::{Builder, Context, ServerId, server};

/// A fork: held by at most one philosopher at a time.
#[derive(Default)]
struct Fork {
    holder: Option<ServerId>,
    uses: u32,
}

#[server]
impl Fork {
    /// Takes the fork for `who`: `false` if someone holds it.
    fn take(&mut self, who: ServerId) -> bool {
        if self.holder.is_some() {
            return false;
        }
        self.holder = Some(who);
        self.uses += 1;
        true
    }

    /// Puts the fork back; only its holder can.
    #[cast]
    fn put(&mut self, who: ServerId) {
        if self.holder == Some(who) {
            self.holder = None;
        }
    }

    /// Who holds it, and how often it was used.
    fn state(&self) -> (Option<ServerId>, u32) {
        (self.holder, self.uses)
    }
}

/// A philosopher: thinks, gets hungry, eats when both forks are free.
struct Philosopher {
    name: &'static str,
    left: ForkHandle,
    right: ForkHandle,
    think: Duration,
    eat: Duration,
    meals: u32,
    wanted: u32,
    /// Times a fork was taken when hungry.
    thwarted: u32,
}

#[server]
impl Philosopher {
    #[on_start]
    fn sit_down(&mut self, ctx: &Context<Self>) {
        ctx.after(self.think, |me| me.hungry());
    }

    /// Done thinking: both forks and eat, or put back what was taken and
    /// think a little more.
    #[cast]
    async fn hungry(&mut self, ctx: &Context<Self>) {
        let me = ctx.id();
        if self.left.take(me).await == Ok(true) {
            if self.right.take(me).await == Ok(true) {
                println!("{} ({me}) eats meal {}", self.name, self.meals + 1);
                ctx.after(self.eat, |me| me.full());
                return;
            }
            let _ = self.left.put(me).await;
        }
        self.thwarted += 1;
        ctx.after(self.think / 2, |me| me.hungry());
    }

    /// Done eating: the forks back, then think again, or leave the table.
    #[cast]
    async fn full(&mut self, ctx: &Context<Self>) {
        let me = ctx.id();
        self.meals += 1;
        let _ = self.left.put(me).await;
        let _ = self.right.put(me).await;
        if self.meals == self.wanted {
            println!("{} ({me}) leaves the table", self.name);
            ctx.stop();
        } else {
            ctx.after(self.think, |me| me.hungry());
        }
    }
}

const NAMES: [&str; 5] = ["Aristotle", "Kant", "Spinoza", "Marx", "Russell"];
const MEALS: u32 = 5;

#[tokio::main]
async fn main() {
    let forks: Vec<ForkHandle> = NAMES
        .iter()
        .map(|_| Builder::new(Fork::default()).spawn())
        .collect();
    let mut seated = Vec::new();
    for (i, name) in NAMES.into_iter().enumerate() {
        let philosopher = Philosopher {
            name,
            left: forks[i].clone(),
            right: forks[(i + 1) % forks.len()].clone(),
            // Each at their own pace.
            think: Duration::from_millis(10 + 7 * i as u64),
            eat: Duration::from_millis(15 + 3 * i as u64),
            meals: 0,
            wanted: MEALS,
            thwarted: 0,
        };
        // The handle is kept until the end: a pending timer does not keep
        // a server alive.
        seated.push(Builder::new(philosopher).name(name).spawn_with_exit());
    }

    let mut meals = 0;
    for (handle, exit) in seated {
        let philosopher = exit.await.state.expect("each stops after the last meal");
        assert_eq!(philosopher.meals, MEALS);
        println!(
            "{} ({}) ate {} meals, thwarted {} times",
            philosopher.name,
            handle.id(),
            philosopher.meals,
            philosopher.thwarted
        );
        meals += philosopher.meals;
    }
    let mut uses = 0;
    for fork in &forks {
        let (holder, used) = fork.state().await.expect("forks are still on the table");
        assert_eq!(holder, None, "every fork is back");
        uses += used;
    }
    // Each meal used two forks; a thwarted attempt took one and put it back.
    assert!(uses >= 2 * meals);
    println!("{meals} meals; the forks were taken {uses} times");
}
