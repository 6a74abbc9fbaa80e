use patchboard::server;

struct Counter;

#[server(capacty = 8)]
impl Counter {
    fn bump(&mut self) {}
}

fn main() {}
