//! The options of `#[server(..)]`: each checked on its own, so that every
//! mistake among them is reported at once.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitInt, LitStr, Meta, Path, Token};

use crate::ctxt::Ctxt;
use crate::duration::Duration;
use crate::symbol::{
    CAPACITY, CRATE, HANDLE, LOCAL, ON_PANIC, PROTOCOLS, REMOTE, REQUEST, SERVER_KEYS, TIMEOUT,
};

/// `#[server(handle = Bank, request = BankMsg, capacity = 64, timeout = "5s",
/// on_panic = "continue", crate = path)]`
#[derive(Default)]
pub struct Args {
    pub handle: Option<Ident>,
    pub request: Option<Ident>,
    pub capacity: Option<usize>,
    pub timeout: Option<Duration>,
    pub on_panic_continue: bool,
    /// `local`: the state need not be `Send`; the server runs on the
    /// current thread's `LocalSet`.
    pub local: bool,
    /// `remote`: the server can be offered over NATS and called from other
    /// processes (the `nats` feature); the span of the word, for errors.
    pub remote: Option<proc_macro2::Span>,
    pub krate: Option<Path>,
    /// `protocols(SessionStore, ..)`: the `#[protocol]` traits the server
    /// implements (each in a `#[server] impl Trait for Server`).
    pub protocols: Vec<Path>,
}

impl Args {
    /// The options, with every error pushed to `cx` (an option in error is
    /// left at its default).
    pub fn parse(tokens: TokenStream, cx: &mut Ctxt) -> Self {
        let mut args = Args::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(metas) => metas,
            Err(error) => {
                cx.push(error);
                return args;
            }
        };
        let mut seen: Vec<String> = Vec::new();
        for meta in &metas {
            let path = meta.path();
            let key = path.get_ident().map(Ident::to_string).unwrap_or_else(|| {
                let is_crate = path.segments.len() == 1 && path.segments[0].ident == CRATE;
                if is_crate {
                    CRATE.to_owned()
                } else {
                    String::new()
                }
            });
            if seen.contains(&key) {
                cx.error(path, format!("duplicate option `{key}`: give it once"));
                continue;
            }
            if let Err(error) = args.set(&key, meta) {
                cx.push(error);
            }
            seen.push(key);
        }
        args
    }

    /// No option but `crate = ..` was given.
    pub fn only_crate(&self) -> bool {
        self.remote.is_none() && self.only_crate_or_remote()
    }

    /// No option but `crate = ..` and `remote` was given.
    pub fn only_crate_or_remote(&self) -> bool {
        self.handle.is_none()
            && self.request.is_none()
            && self.capacity.is_none()
            && self.timeout.is_none()
            && !self.on_panic_continue
            && !self.local
            && self.protocols.is_empty()
    }

    fn set(&mut self, key: &str, meta: &Meta) -> syn::Result<()> {
        if ![
            HANDLE, REQUEST, CAPACITY, TIMEOUT, ON_PANIC, LOCAL, REMOTE, CRATE, PROTOCOLS,
        ]
        .contains(&key)
        {
            return Err(syn::Error::new_spanned(
                meta.path(),
                format!("unknown option: expected one of: {SERVER_KEYS}"),
            ));
        }
        if key == LOCAL {
            return match meta {
                Meta::Path(_) => {
                    self.local = true;
                    Ok(())
                }
                _ => Err(syn::Error::new_spanned(
                    meta,
                    "`local` takes no value: write `#[server(local)]`",
                )),
            };
        }
        if key == REMOTE {
            return match meta {
                Meta::Path(path) => {
                    self.remote = Some(syn::spanned::Spanned::span(path));
                    Ok(())
                }
                _ => Err(syn::Error::new_spanned(
                    meta,
                    "`remote` takes no value: write `#[server(remote)]`",
                )),
            };
        }
        if key == PROTOCOLS {
            let hint = "`protocols` lists `#[protocol]` traits: write \
                        `#[server(protocols(SessionStore, Metrics))]`";
            let Meta::List(list) = meta else {
                // Still the server's protocol (one mistake, one error).
                if let Meta::NameValue(pair) = meta
                    && let Expr::Path(path) = &pair.value
                {
                    self.protocols.push(path.path.clone());
                }
                return Err(syn::Error::new_spanned(meta, hint));
            };
            let paths = list
                .parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
                .map_err(|error| syn::Error::new(error.span(), hint))?;
            if paths.is_empty() {
                return Err(syn::Error::new_spanned(meta, hint));
            }
            self.protocols = paths.into_iter().collect();
            return Ok(());
        }
        let Meta::NameValue(pair) = meta else {
            return Err(syn::Error::new_spanned(
                meta,
                format!("`{key}` needs a value: write `{key} = ..`"),
            ));
        };
        let value = &pair.value;
        match key {
            HANDLE => self.handle = Some(ident(value)?),
            REQUEST => self.request = Some(ident(value)?),
            CAPACITY => self.capacity = Some(capacity(value)?),
            TIMEOUT => self.timeout = Some(Duration::parse(&lit_str(value)?)?),
            ON_PANIC => self.on_panic_continue = on_panic(value)?,
            _ => {
                self.krate = Some(match value {
                    Expr::Lit(_) => lit_str(value)?.parse()?,
                    other => syn::parse2(quote::ToTokens::to_token_stream(other))?,
                });
            }
        }
        Ok(())
    }
}

fn ident(value: &Expr) -> syn::Result<Ident> {
    match value {
        Expr::Path(path) if path.qself.is_none() => path
            .path
            .get_ident()
            .cloned()
            .ok_or_else(|| syn::Error::new_spanned(path, "expected a plain name, like `Bank`")),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a plain name, like `Bank`",
        )),
    }
}

fn lit_str(value: &Expr) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a string literal, like \"5s\"",
        )),
    }
}

fn capacity(value: &Expr) -> syn::Result<usize> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(
            value,
            "expected a whole number, like `64`",
        ));
    };
    let lit: &LitInt = lit;
    let capacity: usize = lit.base10_parse()?;
    if capacity == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "a mailbox needs room for at least one request: write `capacity = 1` or more",
        ));
    }
    Ok(capacity)
}

fn on_panic(value: &Expr) -> syn::Result<bool> {
    let lit = lit_str(value)?;
    match lit.value().as_str() {
        "stop" => Ok(false),
        "continue" => Ok(true),
        other => Err(syn::Error::new(
            lit.span(),
            format!("unknown panic policy `{other}`: expected `\"stop\"` or `\"continue\"`"),
        )),
    }
}
