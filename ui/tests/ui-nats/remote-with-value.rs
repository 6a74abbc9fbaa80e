use patchboard::server;

struct Bank;

#[server(remote = "bank")]
impl Bank {
    fn open(&self) {}
}

fn main() {}
