use patchboard::server;

struct Machine;

#[server]
impl Machine {
    fn stop(&mut self) {}
}

fn main() {}
