use patchboard::server;

struct Names {
    first: String,
}

#[server]
impl Names {
    fn first(&self) -> &String {
        &self.first
    }
}

fn main() {}
