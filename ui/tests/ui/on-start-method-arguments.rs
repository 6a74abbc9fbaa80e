use patchboard::server;

struct Worker;

#[server]
impl Worker {
    #[on_start]
    fn connect(&mut self, url: String) {
        let _ = url;
    }
}

fn main() {}
