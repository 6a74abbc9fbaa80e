//! The `#[server]` attribute of [switchboard](https://docs.rs/switchboard).
//! Use it through the `switchboard` crate; its documentation lists every
//! option and shows what the macro generates.

mod args;
mod ast;
mod attr;
mod check;
mod ctxt;
mod duration;
mod expand;
mod symbol;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block into a typed message server.
///
/// See the [`switchboard` crate documentation](https://docs.rs/switchboard)
/// for the full reference.
#[proc_macro_attribute]
pub fn server(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::server(args.into(), input.into()).into()
}
