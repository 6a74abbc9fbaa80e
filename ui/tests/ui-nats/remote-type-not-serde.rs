use patchboard::server;

struct Ledger;

// Crosses the wire, but has no serde derives.
#[derive(Debug)]
struct Entry {
    amount: u64,
}

#[server(remote)]
impl Ledger {
    fn record(&mut self, entry: Entry) -> u64 {
        entry.amount
    }
}

fn main() {}
