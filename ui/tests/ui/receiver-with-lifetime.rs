use patchboard::server;

struct Account;

#[server]
impl Account {
    fn peek<'a>(&'a self) -> u8 {
        0
    }
}

fn main() {}
