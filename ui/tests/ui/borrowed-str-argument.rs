use patchboard::server;

struct Greeter;

#[server]
impl Greeter {
    fn greet(&self, name: &str) -> String {
        format!("hello {name}")
    }
}

fn main() {}
