use patchboard::{Reply, server};

struct Search;

#[server]
impl Search {
    #[cancellable]
    async fn lookup(&mut self, query: u32, reply: Reply<u32>) {
        let _ = reply.send(query);
    }
}

fn main() {}
