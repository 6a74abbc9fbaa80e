use patchboard::server;

struct Hints;

#[server]
impl Hints {
    #[cast]
    fn hint(&mut self, path: String) -> usize {
        path.len()
    }
}

fn main() {}
