use patchboard::server;

struct Supervisor;

#[server]
impl Supervisor {
    #[on_down]
    fn down(&mut self, name: String) {
        let _ = name;
    }
}

fn main() {}
