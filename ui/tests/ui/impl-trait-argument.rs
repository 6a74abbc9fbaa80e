use patchboard::server;

struct Logger;

#[server]
impl Logger {
    fn log(&self, line: impl ToString) {
        let _ = line.to_string();
    }
}

fn main() {}
