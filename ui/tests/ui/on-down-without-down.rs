use patchboard::server;

struct Supervisor;

#[server]
impl Supervisor {
    #[on_down]
    fn down(&mut self) {}

    fn ping(&self) {}
}

fn main() {}
