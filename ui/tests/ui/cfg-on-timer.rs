use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[cfg(test)]
    #[every(std::time::Duration::from_secs(1))]
    fn tick(&mut self) {}
}

fn main() {}
