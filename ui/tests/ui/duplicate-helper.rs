use patchboard::server;

struct Hints;

#[server]
impl Hints {
    #[cast]
    #[cast]
    fn hint(&mut self, path: String) {
        let _ = path;
    }
}

fn main() {}
