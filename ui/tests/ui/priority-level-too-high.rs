use patchboard::server;

struct Mux;

#[server]
impl Mux {
    #[priority(8)]
    fn critical(&self) {}
}

fn main() {}
