//! The options of `#[server(..)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Ident, LitInt, LitStr, Path};

use crate::duration::Duration;
use crate::symbol::{CAPACITY, CRATE, HANDLE, ON_PANIC, REQUEST, SERVER_KEYS, TIMEOUT};

/// `#[server(handle = Bank, request = BankMsg, capacity = 64, timeout = "5s",
/// on_panic = "continue", crate = path)]`
#[derive(Default)]
pub struct Args {
    pub handle: Option<Ident>,
    pub request: Option<Ident>,
    pub capacity: Option<usize>,
    pub timeout: Option<Duration>,
    pub on_panic_continue: bool,
    pub krate: Option<Path>,
}

impl Args {
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        syn::meta::parser(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(Ident::to_string)
                .or_else(|| meta.path.is_ident("crate").then(|| CRATE.to_owned()))
                .unwrap_or_default();
            if seen.contains(&key) {
                return Err(meta.error(format!("duplicate option `{key}`: give it once")));
            }
            args.parse_key(&key, &meta)?;
            seen.push(key);
            Ok(())
        })
        .parse2(tokens)?;
        Ok(args)
    }

    fn parse_key(&mut self, key: &str, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        match key {
            HANDLE => self.handle = Some(meta.value()?.parse()?),
            REQUEST => self.request = Some(meta.value()?.parse()?),
            CAPACITY => {
                let lit: LitInt = meta.value()?.parse()?;
                let capacity: usize = lit.base10_parse()?;
                if capacity == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a mailbox needs room for at least one request: write `capacity = 1` or more",
                    ));
                }
                self.capacity = Some(capacity);
            }
            TIMEOUT => {
                let lit: LitStr = meta.value()?.parse()?;
                self.timeout = Some(Duration::parse(&lit)?);
            }
            ON_PANIC => {
                let lit: LitStr = meta.value()?.parse()?;
                self.on_panic_continue = match lit.value().as_str() {
                    "stop" => false,
                    "continue" => true,
                    other => {
                        return Err(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown panic policy `{other}`: expected `\"stop\"` or `\"continue\"`"
                            ),
                        ));
                    }
                };
            }
            CRATE => {
                let value = meta.value()?;
                self.krate = Some(if value.peek(LitStr) {
                    value.parse::<LitStr>()?.parse()?
                } else {
                    value.parse()?
                });
            }
            _ => {
                return Err(meta.error(format!("unknown option: expected one of: {SERVER_KEYS}")));
            }
        }
        Ok(())
    }
}
