use patchboard::server;

struct Counter;

#[server(local = true)]
impl Counter {
    fn bump(&self) {}
}

fn main() {}
