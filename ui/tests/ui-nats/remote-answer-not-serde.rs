use patchboard::server;

struct Clock;

struct Moment(std::time::Instant);

#[server(remote)]
impl Clock {
    fn now(&self) -> Moment {
        Moment(std::time::Instant::now())
    }
}

fn main() {}
