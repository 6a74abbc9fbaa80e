use patchboard::server;

struct Raw;

#[server]
impl Raw {
    unsafe fn poke(&mut self, address: usize) {
        let _ = address;
    }
}

fn main() {}
