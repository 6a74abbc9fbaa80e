use patchboard::server;

struct Account;

#[server]
impl Account {
    fn close(self: Box<Self>) {}
}

fn main() {}
