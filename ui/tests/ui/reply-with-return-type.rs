use patchboard::{Reply, server};

struct Weather;

#[server]
impl Weather {
    fn temperature(&mut self, city: String, reply: Reply<f64>) -> f64 {
        let _ = (city, reply);
        0.0
    }
}

fn main() {}
