use patchboard::{Down, server};

struct Supervisor;

#[server]
impl Supervisor {
    #[on_down]
    fn down(&mut self, down: Down) {
        let _ = down;
    }

    #[on_down]
    fn again(&mut self, down: Down) {
        let _ = down;
    }
}

fn main() {}
