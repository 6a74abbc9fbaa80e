use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[every(std::time::Duration::from_secs(1))]
    fn tick(&mut self, times: u32) {
        let _ = times;
    }
}

fn main() {}
