use patchboard::server;

#[server]
struct Account {
    balance: u64,
}

fn main() {}
