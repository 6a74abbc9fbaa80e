use patchboard::server;

struct Machine;

#[server]
impl Machine {
    fn id(&mut self) {}
}

fn main() {}
