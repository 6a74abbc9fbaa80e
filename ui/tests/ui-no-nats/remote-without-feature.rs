use patchboard::server;

struct Bank;

#[server(remote)]
impl Bank {
    fn open(&self) {}
}

fn main() {}
