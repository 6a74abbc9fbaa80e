use patchboard::{Reply, server};

struct Weather;

#[server]
impl Weather {
    #[cast]
    fn temperature(&mut self, city: String, reply: Reply<f64>) {
        let _ = (city, reply);
    }
}

fn main() {}
