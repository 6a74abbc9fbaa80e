use patchboard::server;

struct Mux;

#[server]
impl Mux {
    #[priority(0)]
    fn metrics(&self) {}
}

fn main() {}
