use patchboard::{Server, server};

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
    fn tidy(&mut self) {
        self.dirty.dedup();
    }
}

#[tokio::main]
async fn main() {
    let cleaner = Cleaner { dirty: Vec::new() }.spawn();
    cleaner.tidy().await.unwrap();
}
