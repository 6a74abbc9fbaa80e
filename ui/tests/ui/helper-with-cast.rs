use patchboard::server;

struct Cleaner {
    dirty: Vec<String>,
}

#[server]
impl Cleaner {
    fn add(&mut self, path: String) {
        self.dirty.push(path);
        self.tidy();
    }

    #[helper]
    #[cast]
    fn tidy(&mut self) {
        self.dirty.dedup();
    }
}

fn main() {}
