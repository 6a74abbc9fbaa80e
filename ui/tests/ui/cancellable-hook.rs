use patchboard::server;

struct Search;

#[server]
impl Search {
    #[on_start]
    #[cancellable]
    async fn start(&mut self) {}

    fn lookup(&self) {}
}

fn main() {}
