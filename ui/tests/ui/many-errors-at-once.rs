use patchboard::server;

struct Account;

#[server]
impl Account {
    fn name(&self, prefix: &str) -> String {
        prefix.to_owned()
    }

    fn rename<T>(&mut self, value: T) {
        drop(value);
    }
}

fn main() {}
