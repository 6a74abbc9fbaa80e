use patchboard::server;

struct Counter;

#[server(capacity = 0)]
impl Counter {
    fn bump(&mut self) {}
}

fn main() {}
