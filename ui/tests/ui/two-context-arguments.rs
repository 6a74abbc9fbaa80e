use patchboard::{Context, server};

struct Pager;

#[server]
impl Pager {
    fn fetch(&mut self, page: u32, ctx: &Context<Self>, again: &Context<Self>) -> u32 {
        let _ = (ctx, again);
        page
    }
}

fn main() {}
