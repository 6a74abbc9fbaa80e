// One mistake in the impl gives exactly one error: the handle, its methods
// and `.spawn()` still exist, so the uses below add none.
use std::time::Duration;

use patchboard::{Builder, CallError, Server, server};

struct Counter {
    count: u64,
}

#[server(capacty = 8)]
impl Counter {
    fn bump(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }


    fn status(&self) -> u64 {
        self.count
    }
}

async fn uses() -> Result<u64, CallError> {
    let counter: CounterHandle = Counter { count: 0 }.spawn();
    let count: u64 = counter.bump(1).await?;
    let other = Builder::new(Counter { count }).capacity(4).spawn();
    other.bump(2).timeout(Duration::from_secs(1)).await?;
    counter.stop().await;
    Ok(other.bump(0).await?)
}

fn main() {
    let _ = uses();
}
