use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[every(std::time::Duration::from_secs(1))]
    fn tick(self) {}
}

fn main() {}
