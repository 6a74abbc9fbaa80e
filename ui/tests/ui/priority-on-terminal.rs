use patchboard::server;

struct Account;

#[server]
impl Account {
    #[priority]
    fn close(self) -> u64 {
        0
    }
}

fn main() {}
