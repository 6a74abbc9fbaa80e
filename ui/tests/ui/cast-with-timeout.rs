use patchboard::server;

struct Hints;

#[server]
impl Hints {
    #[cast]
    #[timeout("1s")]
    fn hint(&mut self, path: String) {
        let _ = path;
    }
}

fn main() {}
