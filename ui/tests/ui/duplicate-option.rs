use patchboard::server;

struct Counter;

#[server(capacity = 8, capacity = 16)]
impl Counter {
    fn bump(&mut self) {}
}

fn main() {}
