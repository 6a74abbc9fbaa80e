use patchboard::{Down, server};

struct Supervisor;

#[server]
impl Supervisor {
    #[on_down]
    fn down(&mut self, down: Down, count: u32) {
        let _ = (down, count);
    }

    fn ping(&self) {}
}

fn main() {}
