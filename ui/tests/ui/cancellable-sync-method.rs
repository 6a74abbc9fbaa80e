use patchboard::server;

struct Search;

#[server]
impl Search {
    #[cancellable]
    fn lookup(&mut self, query: u32) -> u32 {
        query
    }
}

fn main() {}
