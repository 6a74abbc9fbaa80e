use patchboard::server;

struct Counter;

#[server(on_panic = "restart")]
impl Counter {
    fn bump(&mut self) {}
}

fn main() {}
