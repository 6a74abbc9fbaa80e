use std::rc::Rc;

use switchboard::server;

struct Account;

#[server]
impl Account {
    fn peek(self: Rc<Self>) {}
}

fn main() {}
