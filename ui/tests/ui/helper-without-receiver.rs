use patchboard::server;

struct Cleaner {
    dirty: Vec<String>,
}

#[server]
impl Cleaner {
    fn add(&mut self, path: String) {
        self.dirty.push(path);
        Self::tidy(&mut self.dirty);
    }

    #[helper]
    fn tidy(dirty: &mut Vec<String>) {
        dirty.dedup();
    }
}

fn main() {}
