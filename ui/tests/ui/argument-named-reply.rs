use patchboard::server;

struct Mail;

#[server]
impl Mail {
    fn answer(&mut self, reply: String) {
        let _ = reply;
    }
}

fn main() {}
