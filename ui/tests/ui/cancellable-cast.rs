use patchboard::server;

struct Search;

#[server]
impl Search {
    #[cast]
    #[cancellable]
    async fn warm(&mut self, query: u32) {
        let _ = query;
    }
}

fn main() {}
