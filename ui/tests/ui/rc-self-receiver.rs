use std::rc::Rc;

use patchboard::server;

struct Account;

#[server]
impl Account {
    fn peek(self: Rc<Self>) {}
}

fn main() {}
