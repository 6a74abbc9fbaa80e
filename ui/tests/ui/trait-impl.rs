use patchboard::server;

struct Account;

#[server]
impl Clone for Account {
    fn clone(&self) -> Self {
        Account
    }
}

fn main() {}
